"""One writer per run folder: a second training process on the same folder is refused.

Two ``talkinghead train`` processes writing one run folder (a resume typed while the first run
still works in the background, a job scheduler retrying) interleave their log lines and
metrics and overwrite each other's checkpoints, so neither run can be trusted afterwards.
:func:`hold_run_dir` takes an exclusive advisory lock (``fcntl.flock``) on ``RUN_DIR/.lock``
for as long as the block runs. The operating system releases it when the process ends, also
on a crash or ``kill -9``, so a stale lock never blocks a later resume. The file records the
holder's process id and start time, which the refusal names.

Where ``fcntl`` does not exist (Windows) the lock is skipped: the folder is used as before.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from talkinghead.errors import TalkingHeadError

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".lock"


class RunDirBusyError(TalkingHeadError, RuntimeError):
    """Another live process holds the run folder."""


def _holder(path: Path) -> str:
    """A phrase naming the process recorded in the lock file (best effort)."""
    try:
        info = json.loads(path.read_text())
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"process {info['pid']} on {info['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def hold_run_dir(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir`` for this process while the block runs; refuse if another process does.

    Args:
        run_dir: the run folder (created when missing).

    Raises:
        RunDirBusyError: a live process already holds it (the message names that process and
            the fix).
    """
    run_dir = Path(run_dir)
    if fcntl is None:  # pragma: no cover - Windows
        yield run_dir
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusyError(
                f"{run_dir}: {_holder(path)} is still training in this folder; two processes would "
                "overwrite each other's checkpoints. Wait for it to finish or stop it (Ctrl-C, or "
                "`kill` that process id), then run the command again; or choose another --run-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
        handle.flush()
        yield run_dir
    finally:
        handle.close()  # closing the descriptor releases the lock


@contextmanager
def wait_for_lock(path: str | Path, waiting_message: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` while the block runs, waiting for any holder.

    For work that two processes must not do at once but that the second can simply wait for
    (the first build of a cached runtime: the second process then finds it built). The lock
    is released when the block ends, or by the operating system when the process dies.

    Args:
        path: the lock file (created, with its folder, when missing).
        waiting_message: logged once when another process holds the lock.
    """
    import logging

    path = Path(path)
    if fcntl is None:  # pragma: no cover - Windows
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting_message:
                logging.getLogger(__name__).info("%s", waiting_message)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield path
    finally:
        handle.close()
