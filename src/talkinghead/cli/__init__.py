"""The ``talkinghead`` command line (console entry point ``talkinghead.cli:main``).

One module per command group: :mod:`~talkinghead.cli.data` (prepare, prepare-sr, inspect,
print-config), :mod:`~talkinghead.cli.training` (train, finetune), :mod:`~talkinghead.cli.animate`
(animate, upscale, demo, app), :mod:`~talkinghead.cli.evaluate`, :mod:`~talkinghead.cli.export`
(export, weights); :mod:`~talkinghead.cli.program` builds the parser and runs a command.
"""

from talkinghead.cli.program import build_parser, main

__all__ = ["build_parser", "main"]
