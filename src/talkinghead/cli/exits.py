"""How a command ends when it does not end well: Ctrl-C / SIGTERM, and I/O errors a user can act on."""

from __future__ import annotations

import os
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every temporary output is cleaned up on the way out."""


# The stops the signals asked for. Kept because a library may swallow the KeyboardInterrupt a
# handler raised: numpy's C import machinery prints it as "ignored" and cv2's start-up then
# fails with an ImportError, which must still end as an interruption, not as a bug.
_requested: list[KeyboardInterrupt] = []


def raise_terminated(signum, frame) -> None:
    """SIGTERM's handler: stop the command as Ctrl-C does."""
    stop = Terminated()
    _requested.append(stop)
    raise stop


def raise_interrupt(signum, frame) -> None:
    """The first Ctrl-C stops the command; more while it cleans up do not stop the clean-up."""
    import signal

    signal.signal(signal.SIGINT, _cleaning_up)
    stop = KeyboardInterrupt()
    _requested.append(stop)
    raise stop


def requested_stop() -> KeyboardInterrupt | None:
    """The interruption a signal asked for since :func:`forget_requested_stops`, or None."""
    return _requested[0] if _requested else None


def forget_requested_stops() -> None:
    """Start a command with no interruption asked for."""
    _requested.clear()


def _cleaning_up(signum, frame) -> None:
    print("interrupted; removing temporary files, a moment", file=sys.stderr, flush=True)


# What an interrupted command leaves behind, said as it is (the rest: nothing is written half).
_INTERRUPTED = {
    "prepare": "finished clips are kept; run the same command again to resume",
    "prepare-sr": "finished clips are kept; run the same command again to resume",
    "evaluate": "finished videos are cached in the --output folder; run the same command again to resume",
    "train": "checkpoints already saved in the run folder are kept; continue with --resume",
    "app": "the app stopped and removed its temporary folder (uploads and results)",
    "finetune": "nothing was written (outputs appear only when complete); run the command again",
    "animate": "nothing was kept and the output is untouched (the partial result was removed); "
               "run the command again to start over",
    "demo": "nothing was kept and the output folder is untouched (the partial result was removed); "
            "run the command again to start over",
}


def interrupted_message(command: str | None) -> str:
    """The one line an interrupted ``command`` ends with: what was kept and how to go on."""
    return "interrupted; " + _INTERRUPTED.get(
        command, "nothing was written (outputs appear only when complete); run the command again"
    )


# errno -> what to do, for the I/O errors a user can act on (the rest are bugs and keep a traceback)
_OS_ERROR_FIXES = {
    "ENOSPC": "the disk is full: free some space there or choose an output on another disk, then run the "
              "command again",
    "EDQUOT": "the disk quota is used up: free some space or choose an output elsewhere, then run the command again",
    "EROFS": "that disk is mounted read-only: choose an output on a writable disk",
    "EACCES": "this user may not use that path: choose one you can read and write, or fix its permissions",
    "EPERM": "this user may not use that path: choose one you can read and write, or fix its permissions",
    "EIO": "the disk reported an input/output error: check the disk, or choose an output on another one",
}


def os_error_line(err: OSError) -> str | None:
    """One line for an I/O error a user can act on (path, reason, fix), or None for any other."""
    import errno

    name = errno.errorcode.get(err.errno or -1)
    if name not in _OS_ERROR_FIXES:
        return None
    path = err.filename if err.filename is not None else "writing an output"
    return f"error: {path}: {err.strerror or os.strerror(err.errno)}; {_OS_ERROR_FIXES[name]}"


def disk_error(err: BaseException) -> OSError | None:
    """The I/O error behind ``err`` (itself or a cause), also when a library reports it in words only.

    torch.save raises ``RuntimeError("... PytorchStreamWriter failed writing file ...: file write
    failed")`` on a full disk, safetensors ``SafetensorError("... No space left on device (os error
    28)")``: both are read back into the ``OSError`` they stand for.
    """
    import errno
    import re

    for _ in range(5):
        if err is None:
            return None
        if isinstance(err, OSError) and os_error_line(err):
            return err
        text = str(err)
        number = re.search(r"\(os error (\d+)\)", text)
        if number:
            code = int(number.group(1))
        elif "No space left on device" in text or "file write failed" in text:
            code = errno.ENOSPC
        else:
            code = None
        if code is not None:
            disk = OSError(code, os.strerror(code))
            if os_error_line(disk):
                return disk
        err = err.__cause__ or err.__context__
    return None
