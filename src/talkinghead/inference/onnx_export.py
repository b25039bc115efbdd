"""Export a model's per-frame synthesis to ONNX and run it with onnxruntime, for any method.

At inference a method encodes a person once (its *person state*: LSR's z^l and z^s from
the K source frames, LSR Eq. 1 and 3) and then runs only its synthesis networks for every
driving frame. That per-frame part is what is exported, with the landmark image first and
the person state's tensors after it, in the order the method declares them::

    landmarks (b, c, s, s), <state tensor> (b, ...), ...  ->  image (b, 3, s, s)
    (LSR: landmarks, z_layout (b, d), z_style (b, d))

with a dynamic batch dimension and the model's fixed frame size ``s``. The export folder
holds::

    synthesis.onnx       # weights embedded (external data only for models over 2 GB)
    onnx_export.json     # inputs, outputs, value ranges, the model config, the check

onnx, onnxscript and onnxruntime are optional dependencies, imported only when needed.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from talkinghead.config import to_dict
from talkinghead.errors import InputNotFoundError, MissingDependencyError, OutputExistsError, TalkingHeadError
from talkinghead.models.inference_model import InferenceModel
from talkinghead.utils.atomic import atomic_directory, atomic_write_json
from talkinghead.weights.checkpoint import code_version
from talkinghead.utils.output_guard import check_replaceable_folder, check_writable

ONNX_FILE = "synthesis.onnx"
MANIFEST_FILE = "onnx_export.json"
MANIFEST_FORMAT = 1
LANDMARKS_INPUT = "landmarks"
OUTPUT_NAME = "image"
CHECK_BATCH_SIZES = (1, 3)
CHECK_SEED = 0
DEFAULT_OPSET = 18  # ONNX opset of an export
DEFAULT_TOLERANCE = 1e-3  # largest accepted max |onnxruntime - PyTorch| of the export check
INSTALL_HINT = 'pip install -e ".[onnx]"'


class OnnxExportError(TalkingHeadError, RuntimeError):
    """An export that failed or did not match PyTorch (nothing was written)."""


def _import_optional(name: str) -> ModuleType:
    """Import an optional ONNX dependency, or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise MissingDependencyError(
            f"ONNX export and inference need the optional package {name!r}, which is not installed; "
            f"install the ONNX extras with: {INSTALL_HINT}"
        ) from err


class SynthesisNetwork(nn.Module):
    """A method's per-frame synthesis as a module with positional tensor inputs, for ONNX export.

    ``forward(landmarks, *state)`` computes exactly what the inference model computes for
    ``(landmarks, {name: tensor})`` (it calls it), with the state's tensors in the order of
    :meth:`InferenceModel.person_state_spec`.

    Args:
        model: the inference model (shared, not copied: later weight changes show through).
    """

    def __init__(self, model: InferenceModel) -> None:
        super().__init__()
        self.model = model
        self.state_names = list(model.person_state_spec())

    @classmethod
    def from_model(cls, model: InferenceModel) -> SynthesisNetwork:
        """Wrap ``model`` (no copy)."""
        return cls(model)

    @property
    def input_names(self) -> list[str]:
        """The graph's input names: the landmark image, then the person state's tensors."""
        return [LANDMARKS_INPUT, *self.state_names]

    def forward(self, landmarks: torch.Tensor, *state: torch.Tensor) -> torch.Tensor:
        """Synthesise frames.

        Args:
            landmarks: (b, c, s, s) rasterised target landmark images x_t in [-1, 1].
            state: the person state's tensors, each (b, ...), in the declared order.

        Returns:
            (b, 3, s, s) frames in [-1, 1].
        """
        return self.model(landmarks, dict(zip(self.state_names, state)))


@dataclass
class OnnxExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the exported ``synthesis.onnx``.
        max_abs_diff: largest |onnxruntime - PyTorch| over the checked batches (NaN when
            the check was skipped).
        batch_sizes_checked: batch sizes run through onnxruntime (empty without a check).
        opset: the ONNX opset of the graph.
        seconds: wall time of the export and the check.
    """

    path: Path
    max_abs_diff: float
    batch_sizes_checked: list[int]
    opset: int
    seconds: float


def example_inputs(
    model: InferenceModel, batch_size: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, ...]:
    """Random (landmarks, *state) for ``model``, float32 on the CPU.

    Landmarks are uniform in [-1, 1] (the range of rasterised landmark images); the
    person state's tensors are standard normal.
    """
    size, channels = model.image_size, model.landmark_channels
    landmarks = torch.rand(batch_size, channels, size, size, generator=generator) * 2 - 1  # (b, c, s, s)
    state = [torch.randn(batch_size, *spec.shape, generator=generator) for spec in model.person_state_spec().values()]
    return (landmarks, *state)


def _describe(model: InferenceModel) -> dict[str, Any]:
    """The inputs and outputs of the exported graph, for onnx_export.json."""
    size, channels = model.image_size, model.landmark_channels
    state = [
        {"name": name, "shape": ["batch", *spec.shape], "dtype": "float32", "description": spec.description}
        for name, spec in model.person_state_spec().items()
    ]
    return {
        "inputs": [
            {
                "name": LANDMARKS_INPUT,
                "shape": ["batch", channels, size, size],
                "dtype": "float32",
                "range": [-1.0, 1.0],
                "description": f"target landmark images x_t, rasterised ({model.landmark_style}) "
                "and scaled from uint8 to [-1, 1]",
            },
            *state,
        ],
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "shape": ["batch", 3, size, size],
                "dtype": "float32",
                "range": [-1.0, 1.0],
                "description": "synthesised RGB frames, (x + 1) * 127.5 gives uint8",
            }
        ],
    }


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's informational logs and known harmless warnings; errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*LeafSpec.*", category=FutureWarning
            )
            warnings.filterwarnings(
                "ignore",
                message=r".*The axis name: .* will not be used",
                category=UserWarning,
            )
            yield
    finally:
        logger.setLevel(level)


def load_synthesis_session(
    path: str | Path, *, providers: Sequence[str] | None = None, threads: int | None = None
) -> Any:
    """An onnxruntime ``InferenceSession`` for an exported synthesis graph.

    Args:
        path: ``synthesis.onnx`` or the export folder holding it.
        providers: onnxruntime execution providers (default: the CPU provider).
        threads: intra-op threads (default: onnxruntime's choice, one per core).
    """
    ort = _import_optional("onnxruntime")
    path = Path(path)
    if path.is_dir():
        path = path / ONNX_FILE
    if not path.is_file():
        raise InputNotFoundError(
            f"{path}: no such ONNX file; write one with talkinghead's ONNX export first"
        )
    options = ort.SessionOptions()
    # Errors only: onnxruntime's notes about graph rewrites are not for users.
    options.log_severity_level = 3
    if threads is not None:
        # One process's thread budget (e.g. 1 beside other jobs), as torch.set_num_threads.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # onnxruntime raises its own pybind11 types (InvalidProtobuf, Fail, ...), no common base.
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=list(providers or ["CPUExecutionProvider"]),
        )
    except Exception as err:
        raise OnnxExportError(
            f"{path}: onnxruntime cannot load it ({type(err).__name__}: {err}); the file is damaged, "
            "incomplete or from an incompatible export: export it again"
        ) from err


def _run_session(session: Any, names: Sequence[str], inputs: Sequence[torch.Tensor]) -> np.ndarray:
    feeds = {name: tensor.numpy() for name, tensor in zip(names, inputs)}
    return session.run([OUTPUT_NAME], feeds)[0]


def _check_export(onnx_path: Path, network: SynthesisNetwork) -> float:
    """Largest |onnxruntime - PyTorch| over seeded random inputs of every checked batch size."""
    session = load_synthesis_session(onnx_path)
    generator = torch.Generator().manual_seed(CHECK_SEED)
    diffs = []
    for batch_size in CHECK_BATCH_SIZES:
        inputs = example_inputs(network.model, batch_size, generator=generator)
        with torch.no_grad():
            expected = network(*inputs).numpy()  # (b, 3, s, s)
        actual = _run_session(session, network.input_names, inputs)
        if actual.shape != expected.shape:
            raise OnnxExportError(
                f"{onnx_path}: onnxruntime returned shape {actual.shape} for batch {batch_size}, "
                f"PyTorch {expected.shape}"
            )
        diffs.append(
            np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max()
        )
    return float(np.max(diffs))  # NaN propagates, and the caller rejects it


def _check_output(output: Path, overwrite: bool, check: bool) -> None:
    """Refuse an output that is a file, or a folder that is not ours to replace; need the ONNX packages."""
    if output.exists() and not output.is_dir():
        raise OutputExistsError(
            f"{output}: exists and is not a folder; the ONNX export needs a folder path"
        )
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{output}: folder already exists; pass --overwrite to replace it, or choose another folder"
        )
    if overwrite:
        check_replaceable_folder(output, "export onnx")
    check_writable(output)
    for name in ("onnx", "onnxscript", *(["onnxruntime"] if check else [])):
        _import_optional(name)


def _write_graph(network: SynthesisNetwork, onnx_path: Path, opset: int, what: str) -> int:
    """Export ``network`` with a dynamic batch axis to ``onnx_path``; returns the graph's opset.

    Args:
        network: the CPU float32 synthesis network in eval mode.
        onnx_path: the ``.onnx`` file to write.
        opset: the requested opset.
        what: what is exported, for the error message.
    """
    # Trace at batch 2: torch.export specialises sizes 0 and 1.
    args = example_inputs(network.model, 2, generator=torch.Generator().manual_seed(CHECK_SEED))
    batch = torch.export.Dim("batch", min=1)
    # torch.export names the positional inputs after forward's parameters: landmarks, *state.
    dynamic_shapes = ({0: batch}, tuple({0: batch} for _ in network.state_names))
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                network,
                args,
                None,
                input_names=network.input_names,
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as err:
        raise OnnxExportError(f"{what} to ONNX failed: {err}") from err
    # external_data=False embeds the weights; ONNXProgram.save still switches to an
    # external data file beside the graph for models over protobuf's 2 GB limit.
    program.save(onnx_path, external_data=False)
    return int(program.model.opset_imports.get("", opset))


def _manifest(model: InferenceModel, network: SynthesisNetwork, folder: Path, opset: int,
              check: dict[str, Any], start: float) -> dict[str, Any]:
    """What the export folder's manifest records: files, inputs, model config, the check, versions."""
    return {
        "format": MANIFEST_FORMAT,
        "method": model.method,
        "file": ONNX_FILE,
        "files": sorted(p.name for p in folder.iterdir()) + [MANIFEST_FILE],
        "opset": opset,
        **_describe(network.model),
        "dynamic_axes": {
            name: {"0": "batch"} for name in (*network.input_names, OUTPUT_NAME)
        },
        "model": to_dict(model.config),
        "check": check,
        "torch_version": torch.__version__,
        "code_version": code_version(),
        "seconds": round(time.perf_counter() - start, 3),
    }


def export_onnx(
    model: InferenceModel,
    output: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    overwrite: bool = False,
) -> OnnxExportResult:
    """Export the per-frame synthesis of ``model`` (any method) to ``output/synthesis.onnx``.

    The folder is written beside ``output`` under a hidden temporary name and moved into
    place only once complete (and checked), so a failure leaves no partial export. The
    model itself is not modified (a CPU float32 copy in eval mode is exported).

    Args:
        model: the trained inference model.
        output: the export folder.
        opset: ONNX opset of the graph.
        check: run the file in onnxruntime (CPU) on seeded random inputs of batch sizes
            1 and 3 and compare with PyTorch.
        tolerance: largest accepted max abs difference of that check.
        overwrite: replace an existing non-empty ``output`` folder that an earlier ONNX
            export wrote (its marker file lists every file in it); any other folder is refused.

    Raises:
        OutputExistsError: ``output`` exists (and is not empty) and ``overwrite`` is False.
        MissingDependencyError: onnx, onnxscript or onnxruntime is missing.
        OnnxExportError: the export failed, or the check exceeded ``tolerance``; an existing
            folder at ``output`` is then left as it was.
    """
    start = time.perf_counter()
    output = Path(output)
    _check_output(output, overwrite, check)
    # A private copy in eval mode, on the CPU, in float32: the caller's model is untouched.
    network = SynthesisNetwork.from_model(copy.deepcopy(model))
    network = network.to("cpu", torch.float32).eval().requires_grad_(False)
    with atomic_directory(output, overwrite=overwrite, command="export onnx") as tmp:
        onnx_path = tmp / ONNX_FILE
        graph_opset = _write_graph(network, onnx_path, opset, f"{output}: exporting the {model.method} synthesis network")
        max_abs_diff, checked = float("nan"), []
        if check:
            max_abs_diff = _check_export(onnx_path, network)
            checked = list(CHECK_BATCH_SIZES)
            if not max_abs_diff <= tolerance:  # also catches NaN
                raise OnnxExportError(
                    f"{output / ONNX_FILE}: onnxruntime and PyTorch differ by up to {max_abs_diff:.3g} on random "
                    f"inputs (tolerance {tolerance:g}); the export was discarded"
                )
        check_record = {
            "batch_sizes": checked,
            "max_abs_diff": None if math.isnan(max_abs_diff) else max_abs_diff,
            "tolerance": tolerance if check else None,
            "provider": "CPUExecutionProvider" if check else None,
        }
        atomic_write_json(tmp / MANIFEST_FILE, _manifest(model, network, tmp, graph_opset, check_record, start))

    return OnnxExportResult(
        path=output / ONNX_FILE,
        max_abs_diff=max_abs_diff,
        batch_sizes_checked=checked,
        opset=graph_opset,
        seconds=time.perf_counter() - start,
    )
