"""Crash-safe file writes: write to a temporary file beside the target, then rename.

``os.replace`` is atomic on POSIX file systems, so a reader (or a run resumed after a
SIGKILL) sees either the old complete file or the new complete file, never a partial one.
The folder holding the target is fsynced after the rename, so the rename itself survives
a power loss, not only a killed process.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from talkinghead.errors import OutputExistsError

log = logging.getLogger(__name__)


def fsync_directory(path: str | Path) -> None:
    """Flush a folder's entries (renames, new and removed files) to disk (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        # Some file systems (certain network and FUSE mounts) cannot fsync a folder; the
        # rename is still atomic there, only its durability on power loss is not promised.
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _log_cleanup_error(function, path, error) -> None:
    """Log a failed clean-up, so the error that caused the clean-up is the one raised."""
    log.warning("could not remove the temporary %s (%s); delete it by hand", path, error)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched. A process
    killed inside the block leaves a hidden ``.<name>.*<suffix>`` file behind, never a
    partial ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        # A failing unlink (read-only file system) must not replace the error being raised.
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError as err:
                _log_cleanup_error(os.unlink, tmp, err)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _exchange_paths(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the system or file system cannot do it, so the caller falls back.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # glibc < 2.28, musl
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a))


@contextmanager
def atomic_directory(
    path: str | Path, *, overwrite: bool = False, command: str | None = None, token: str | None = None
) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; move it to ``path`` on success.

    Files written into the yielded folder appear at ``path`` all at once. An existing
    non-empty ``path`` is refused (``FileExistsError``) unless ``overwrite`` is True; it is
    then swapped with the new folder in one step where the system allows it (Linux), else
    moved aside to a hidden ``.<name>.*.old`` folder first and deleted after the new one is
    in place. A crash never leaves a partly written folder at ``path``.

    With ``command`` (the CLI command writing the folder, e.g. ``"export release"``) the
    folder gets a marker file listing what it holds, and ``overwrite`` replaces only a folder
    whose marker names the same command and lists every file in it (see
    :mod:`talkinghead.utils.output_guard`); anything else is refused before any writing.
    ``token`` names the temporary folder ``.<name>.<token>.tmp`` (default: random hex).
    """
    from talkinghead.utils.output_guard import check_replaceable_folder, write_marker

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder; remove it or choose another path")
    if _is_nonempty_dir(path) and not overwrite:
        raise OutputExistsError(
            f"{path}: folder exists and is not empty; pass --overwrite to replace it, or choose another path"
        )
    if command is not None and overwrite:
        check_replaceable_folder(path, command)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_hex(4)
    tmp = path.parent / f".{path.name}.{token}.tmp"
    tmp.mkdir()  # os.mkdir honours the umask, unlike tempfile.mkdtemp's 0o700
    try:
        yield tmp
        if command is not None:
            write_marker(tmp, command)
        fsync_directory(tmp)
        if not _is_nonempty_dir(path):
            # A missing target, or an empty folder, which rename(2) replaces atomically.
            os.rename(tmp, path)
        elif not overwrite:
            raise OutputExistsError(f"{path}: was filled by someone else while writing; nothing was replaced")
        elif _exchange_paths(tmp, path):
            shutil.rmtree(tmp)  # now holds the old folder
        else:
            old = path.parent / f".{path.name}.{token}.old"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        fsync_directory(path.parent)
    finally:
        # Never let the clean-up hide the error that got us here (a full or read-only disk).
        if tmp.exists():
            try:
                shutil.rmtree(tmp)
            except OSError as err:
                _log_cleanup_error(shutil.rmtree, tmp, err)
