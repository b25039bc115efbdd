"""One shared test for every network: shape, determinism, gradients, release round trip.

A test class subclasses :class:`ModelTesterMixin` and fills in ``build`` (a fresh network
from the current RNG state), ``inputs`` and ``expected_shapes``; ``forward`` and
``unused_parameters`` adapt it to networks with several outputs or optional heads.
"""

from __future__ import annotations

import torch
from torch import nn

from talkinghead.weights.release import load_release, save_release


class ModelTesterMixin:
    """Test methods shared by every network (the subclass's name must start with ``Test``)."""

    batch_size = 2
    # parameter names the tested forward does not use (they must get no gradient)
    unused_parameters: frozenset[str] = frozenset()

    def build(self) -> nn.Module:
        """A fresh network, initialised from the current RNG state."""
        raise NotImplementedError

    def inputs(self, batch_size: int) -> tuple:
        """Positional arguments of the forward, as float32 tensors (b = batch_size)."""
        raise NotImplementedError

    def expected_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        """Shapes of the tensors :meth:`forward` returns."""
        raise NotImplementedError

    def forward(self, model: nn.Module, inputs: tuple) -> list[torch.Tensor]:
        """The network's outputs as a list of tensors."""
        out = model(*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    # helpers

    def seeded_model(self, seed: int = 0) -> nn.Module:
        """:meth:`build` after ``torch.manual_seed(seed)``."""
        torch.manual_seed(seed)
        return self.build()

    def seeded_inputs(self, seed: int = 1) -> tuple:
        """:meth:`inputs` for ``batch_size`` after ``torch.manual_seed(seed)``."""
        torch.manual_seed(seed)
        return self.inputs(self.batch_size)

    # tests

    def test_output_shape(self):
        model = self.seeded_model().eval()
        with torch.no_grad():
            outputs = self.forward(model, self.seeded_inputs())
        assert [tuple(o.shape) for o in outputs] == self.expected_shapes(self.batch_size)
        assert all(torch.isfinite(o).all() for o in outputs)

    def test_same_seed_same_weights(self):
        a, b, c = (
            self.seeded_model(0).state_dict(),
            self.seeded_model(0).state_dict(),
            self.seeded_model(1).state_dict(),
        )
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
        assert any(not torch.equal(a[name], c[name]) for name in a)

    def test_same_input_same_output_in_eval(self):
        model = self.seeded_model().eval()
        inputs = self.seeded_inputs()
        with torch.no_grad():
            first, second = self.forward(model, inputs), self.forward(model, inputs)
        for x, y in zip(first, second):
            torch.testing.assert_close(x, y, rtol=0, atol=0)

    def test_gradients_reach_every_used_parameter(self):
        model = self.seeded_model().train()
        outputs = self.forward(model, self.seeded_inputs())
        torch.manual_seed(2)
        loss = sum((o * torch.randn_like(o)).sum() for o in outputs)
        loss.backward()
        names = {name for name, _ in model.named_parameters()}
        assert self.unused_parameters <= names, f"unknown unused parameters {self.unused_parameters - names}"
        for name, param in model.named_parameters():
            if name in self.unused_parameters:
                assert param.grad is None, f"{name} should be unused by this forward"
            else:
                assert param.grad is not None, f"no gradient reaches {name}"
                assert torch.isfinite(param.grad).all(), name
                assert param.grad.abs().sum() > 0, f"zero gradient for {name}"

    def test_release_round_trip(self, tmp_path):
        # Through the real release path: save_release writes config.json + safetensors, load_release reads them.
        model = self.seeded_model(0).eval()
        folder = save_release(tmp_path / "release", {"network": type(model).__name__}, {"network": model})
        config, states = load_release(folder)
        assert config == {"network": type(model).__name__}
        fresh = self.seeded_model(1).eval()
        fresh.load_state_dict(states["network"], strict=True)
        inputs = self.seeded_inputs()
        with torch.no_grad():
            for x, y in zip(self.forward(model, inputs), self.forward(fresh, inputs)):
                torch.testing.assert_close(x, y, rtol=0, atol=0)

    def test_channels_last_and_bf16_autocast(self):
        model = self.seeded_model().eval()
        inputs = self.seeded_inputs()
        with torch.no_grad():
            reference = self.forward(model, inputs)
        model = model.train().to(memory_format=torch.channels_last)
        fast_inputs = tuple(x.to(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = self.forward(model, fast_inputs)
            loss = sum(o.float().square().mean() for o in outputs)
        loss.backward()
        for out, ref in zip(outputs, reference):
            assert out.shape == ref.shape
            # train vs eval makes no difference here (no batch norm, no dropout); bf16 does
            torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
