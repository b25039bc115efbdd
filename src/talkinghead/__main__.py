"""The program's entry point: ``python -m talkinghead`` and the ``talkinghead`` console script.

It only installs the interrupt handling, then imports the command line and the libraries
its parser needs. Importing :mod:`talkinghead.cli` takes about 100 ms (its top-level imports
load the config schemas), and a Ctrl-C there used to print Python's KeyboardInterrupt
traceback, because the CLI's own handling starts only when :func:`talkinghead.cli.main` runs;
a KeyboardInterrupt raised while torch imports is worse (swallowed, or an abort). Nothing is
written while importing, so a signal then ends the process at once with one line.
"""

import os

# The built-in ``_signal``, not ``signal``: importing ``signal`` loads ``enum`` first (about 15 ms),
# during which a Ctrl-C would still end in a traceback. ``os`` is loaded by Python's start-up.
import _signal

# Said when the command had not started yet (the CLI says what was kept once it runs).
_STOPPED_WHILE_STARTING = "interrupted; the command had not started, nothing was written; run it again\n"


def _stop_while_starting(signum, frame) -> None:
    """Exit ``128 + signum`` (130 for Ctrl-C, 143 for SIGTERM) with one line on stderr.

    Raising KeyboardInterrupt instead would not do: an import half-way through a class
    body turns it into another error with its own traceback.
    """
    os.write(2, _STOPPED_WHILE_STARTING.encode())
    os._exit(128 + signum)


def main() -> int:
    """Run the command line with Ctrl-C and SIGTERM handled from the first moment.

    Returns:
        The command's exit code (see :func:`talkinghead.cli.main`).
    """
    previous = {_signal.SIGTERM: _signal.signal(_signal.SIGTERM, _stop_while_starting)}
    if _signal.getsignal(_signal.SIGINT) != _signal.SIG_IGN:  # a background job (`cmd &`) keeps ignoring it
        previous[_signal.SIGINT] = _signal.signal(_signal.SIGINT, _stop_while_starting)
    try:
        from talkinghead import cli

        # Building the parser imports the libraries every command uses (torch, numpy, av, cv2: about
        # 1.5 s). Done here, a Ctrl-C meanwhile ends the process at once; the CLI's KeyboardInterrupt
        # raised inside torch's import is swallowed there (the command then runs on) or aborts.
        cli.build_parser()
        # The CLI installs its own handlers first thing, so no moment is left without one.
        return cli.main()
    finally:
        for signum, handler in previous.items():
            if _signal.getsignal(signum) is _stop_while_starting:
                _signal.signal(signum, handler)


if __name__ == "__main__":
    raise SystemExit(main())
