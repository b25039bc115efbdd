"""``python -m dump_rank_weights ARGS``: the ``talkinghead`` CLI, and each process writes its final weights.

For the distributed test: every rank saves its live and EMA weights to ``$DUMP_RANK_WEIGHTS/rank<R>.safetensors``
when its trainer closes, so the test compares the ranks' weights itself rather than trusting
the trainer's own report that they are in sync.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DUMP_ENV = "DUMP_RANK_WEIGHTS"


def _install() -> None:
    from safetensors.torch import save_file

    from talkinghead.training.trainer import Trainer
    from talkinghead.training.distributed import unwrap

    close = Trainer.close

    def close_and_dump(self) -> None:
        tensors = {}
        for name, net in self.ema_networks().items():  # what the release holds
            tensors.update({f"{name}.{k}": v for k, v in unwrap(net).state_dict().items()})
        for name, net in self.networks.items():  # what the ranks train
            tensors.update({f"live.{name}.{k}": v for k, v in unwrap(net).state_dict().items()})
        folder = Path(os.environ[DUMP_ENV])
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().clone() for k, v in tensors.items()},
                  folder / f"rank{self.context.rank}.safetensors")
        close(self)

    Trainer.close = close_and_dump


if __name__ == "__main__":
    _install()
    from talkinghead.cli import main

    sys.exit(main(sys.argv[1:]))
