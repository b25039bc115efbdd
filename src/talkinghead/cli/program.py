"""The ``talkinghead`` command line: one sub-command per job, one module per command group.

Each sub-command defines its options and calls library code; nothing here is needed to use
the library from Python. This module builds the parser and decides how every command ends.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from talkinghead import __version__
from talkinghead.cli.animate import add_animate, add_app, add_demo, add_upscale
from talkinghead.cli.data import add_inspect, add_prepare, add_prepare_sr, add_print_config
from talkinghead.cli.evaluate import add_evaluate
from talkinghead.cli.exits import (
    Terminated, disk_error, forget_requested_stops, interrupted_message, os_error_line, raise_interrupt,
    raise_terminated, requested_stop,
)
from talkinghead.cli.export import add_export, add_weights
from talkinghead.cli.training import add_finetune, add_train


def build_parser() -> argparse.ArgumentParser:
    """The ``talkinghead`` parser with every sub-command (builds import torch and the libraries: seconds)."""
    parser = argparse.ArgumentParser(
        prog="talkinghead",
        description="Few-shot neural talking-head synthesis: prepare data, train, fine-tune, animate, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"talkinghead {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_prepare, add_prepare_sr, add_inspect, add_train, add_finetune, add_animate, add_upscale,
                add_demo, add_app, add_evaluate, add_export, add_weights, add_print_config):
        add(sub)
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line's arguments; building the parser imports torch and the libraries (seconds)."""
    try:
        # torch first: it loads numpy, whose C start-up, when cv2 triggers it, prints a Ctrl-C
        # landing inside it as a traceback before turning it into an ImportError
        import torch  # noqa: F401

        args = build_parser().parse_args(argv)
    except Exception as err:
        stop = requested_stop()
        if stop is None:
            raise
        raise stop from err  # Ctrl-C during an import that turned it into an ImportError
    stop = requested_stop()
    if stop is not None:  # Ctrl-C during an import that swallowed it
        raise stop
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``talkinghead`` console script.

    Every way a command ends is decided here: its exit code (0), a user error as one line
    (exit 2), an I/O error a user can act on (full or read-only disk, no permission) as one
    line with the path and the fix (exit 2), and Ctrl-C / SIGTERM at any moment, also while
    the parser imports the libraries, as one line saying what was kept (exit 130 / 143).
    Temporaries are removed on the way out by the writers' own clean-up. When run as the
    program (``argv`` None) an interrupted process ends without the interpreter's shutdown,
    where native threads (mediapipe's) could abort it.
    """
    import signal

    command = None
    handlers = {}
    forget_requested_stops()
    if threading.current_thread() is threading.main_thread():
        handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_terminated)}  # clean up like Ctrl-C
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job (`cmd &`) keeps ignoring it
            handlers[signal.SIGINT] = signal.signal(signal.SIGINT, raise_interrupt)
    code = 0
    try:
        try:
            args = _parse(argv)
            command = args.command
            if args.verbose:
                os.environ.setdefault("TALKINGHEAD_VERBOSE", "1")  # shows mediapipe's start-up log lines
            logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                                format="%(levelname)s: %(message)s")
            from talkinghead.errors import TalkingHeadError

            try:
                return int(args.func(args) or 0)
            except TalkingHeadError as err:
                if args.verbose:
                    raise
                print(f"error: {err}", file=sys.stderr)
                return 2
            except Exception as err:
                stop = requested_stop()
                if stop is not None:  # a library turned the Ctrl-C into its own error
                    raise stop from err
                disk = disk_error(err)
                if disk is None or args.verbose:
                    raise  # a bug: its traceback
                if disk.filename is None:  # said in words only: the command's output is the path written
                    disk.filename = getattr(args, "output", None) or getattr(args, "run_dir", None)
                print(os_error_line(disk), file=sys.stderr)
                return 2
        except KeyboardInterrupt as stop:
            code = 143 if isinstance(stop, Terminated) else 130
            print(interrupted_message(command), file=sys.stderr)
            if argv is None:  # the program itself: skip shutdown, where native threads may abort
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            return code
    finally:
        for signum, previous in handlers.items():
            # The program's work is done: a Ctrl-C now (while the interpreter shuts down) has
            # nothing left to stop, and must not kill the process with no word after a success.
            signal.signal(signum, signal.SIG_IGN if argv is None and signum == signal.SIGINT else previous)
