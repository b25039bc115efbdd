"""Where a command may write: outputs never replace inputs, foreign files or the working folder.

Three checks every writing command runs before any compute, and one translation of the
operating system's refusals into a sentence a person can act on:

* :func:`check_output_location` refuses an output that is one of the command's inputs
  (checkpoint, source photo, driving video, dataset), holds one, or lies inside an input
  folder, and an output that is the current folder (``--output .``) or holds it.
* :func:`check_writable` creates (and removes) a probe file where the output will be
  written, so a read-only file system, a folder without permission or a path the system
  refuses (``/proc``, ``/sys``) is reported before minutes of work, not after.
* A folder a command writes as a whole carries a marker file (:data:`MARKER_FILE`) naming
  the command and every file it wrote. ``--overwrite`` replaces such a folder only when the
  marker says the same command wrote it and the folder holds nothing else
  (:func:`check_replaceable_folder`); a folder with any other file is refused, so
  ``--overwrite`` can never delete a file talkinghead did not write.
* :func:`output_errors` turns ``OSError`` raised while writing (read-only file system, full
  disk, permission denied, a path the system refuses) into :class:`OutputWriteError`, one
  line with the path, the reason and the fix.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from talkinghead.errors import TalkingHeadError

MARKER_FILE = ".talkinghead-output.json"
MARKER_FORMAT = 1

# errno values that describe the place written to, not the data: translated by output_errors.
_WRITE_ERRNOS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than the file system allows",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted there",
    errno.ENOENT: "the system refuses to create files there (no such file or folder)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "a folder is in the way",
}
_FIXES = {
    errno.EROFS: "choose an output on a writable disk",
    errno.ENOSPC: "free some space or choose an output on another disk",
    errno.EDQUOT: "free some space or choose an output on another disk",
    errno.EFBIG: "choose an output on another file system, or a shorter output",
    errno.EACCES: "choose a folder you can write to, or fix its permissions",
    errno.EPERM: "choose a folder you can write to, or fix its permissions",
}


class OutputPathError(TalkingHeadError, ValueError):
    """An output path that would replace an input, a foreign file or the working folder."""


class OutputWriteError(TalkingHeadError, RuntimeError):
    """Writing an output failed for a reason of the place written to (full disk, read-only, ...)."""

    def __init__(self, message: str, errno_value: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_value


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _is_within(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` is ``outer`` or lies below it (both resolved)."""
    return inner == outer or outer in inner.parents


def check_output_location(
    output: str | os.PathLike,
    inputs: Mapping[str, str | os.PathLike | Iterable[str | os.PathLike] | None],
    *,
    option: str = "--output",
    may_be_inside: Iterable[str] = (),
) -> None:
    """Refuse an output that would overwrite or nest with an input, or the working folder.

    Args:
        output: the file or folder the command will write.
        inputs: what the command reads, by the name a person knows it under (``"checkpoint"``,
            ``"driving video"``, ...); a value may be one path, several, or None.
        option: how the output is given on the command line, for the message.
        may_be_inside: names of inputs the output may lie inside (``prepare`` writes a
            dataset inside its own input folder safely: discovery skips it).

    Raises:
        OutputPathError: the output is an input, contains one, lies inside an input folder
            (unless allowed), or is the current folder or one of its parents.
    """
    out = _real(output)
    cwd = _real(os.getcwd())
    if _is_within(cwd, out):
        where = "the current folder" if out == cwd else f"a parent of the current folder ({cwd})"
        raise OutputPathError(
            f"{option} {output}: is {where}; a command never writes over the folder it runs in. "
            f"Give a new name, e.g. {option} ./talkinghead_out"
        )
    allowed = set(may_be_inside)
    for label, value in inputs.items():
        if value is None:
            continue
        paths = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        for path in paths:
            real = _real(path)
            if out == real:
                raise OutputPathError(
                    f"{option} {output}: is also the {label} ({path}); writing there would replace it. "
                    f"Choose another {option} path"
                )
            if _is_within(real, out):
                raise OutputPathError(
                    f"{option} {output}: holds the {label} ({path}); writing there could replace it. "
                    f"Choose an {option} path outside it"
                )
            if label not in allowed and _is_within(out, real):
                raise OutputPathError(
                    f"{option} {output}: lies inside the {label} ({path}); writing there would change it. "
                    f"Choose an {option} path outside it"
                )


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def describe_os_error(err: OSError, output: str | os.PathLike) -> str:
    """One sentence for an OSError raised while writing ``output``: path, reason, fix."""
    reason = _WRITE_ERRNOS.get(err.errno or 0, err.strerror or str(err))
    fix = _FIXES.get(err.errno or 0, "choose an output in an ordinary folder you can write to")
    where = f" ({err.filename})" if err.filename and str(err.filename) != str(output) else ""
    return f"{output}: cannot write the output: {reason}{where}; {fix}. Nothing was written there"


def check_writable(output: str | os.PathLike, *, option: str = "--output", is_folder: bool = False) -> None:
    """Fail now, not after the compute, when the output's folder cannot take a new file.

    A probe file is created and removed in the nearest existing folder of ``output``'s
    parent (outputs are written beside their final path, then renamed), or of ``output``
    itself when ``is_folder`` (a folder the command fills: a run, a report).

    Raises:
        OutputWriteError: the place is read-only, full, forbidden or refused by the system.
        OutputPathError: a part of the path is a file.
    """
    output = Path(output)
    folder = _nearest_existing(output.absolute() if is_folder else output.absolute().parent)
    if not folder.is_dir():
        raise OutputPathError(f"{option} {output}: {folder} is a file, not a folder; choose another output path")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".talkinghead-probe-")
    except OSError as err:
        # The probe's own name would only confuse: report the place.
        raise OutputWriteError(describe_os_error(OSError(err.errno, err.strerror), output), err.errno) from err
    os.close(fd)
    os.unlink(probe)


@contextmanager
def output_errors(output: str | os.PathLike) -> Iterator[None]:
    """Translate OSErrors of the output's place into :class:`OutputWriteError` (one line).

    An error about another file (an input that vanished, say) passes through unchanged: only
    errors without a file name, or naming a file beside or below the output, are translated.
    """
    try:
        yield
    except OutputWriteError:
        raise
    except OSError as err:
        if err.errno not in _WRITE_ERRNOS or isinstance(err, FileExistsError):
            raise
        if err.filename is not None:
            place = _real(Path(output).absolute().parent)
            if not _is_within(_real(err.filename), place):
                raise
        raise OutputWriteError(describe_os_error(err, output), err.errno) from err


# ----------------------------------------------------------------------------- marker files


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a folder a command wrote, or None (no marker, or an unreadable one)."""
    path = Path(folder) / MARKER_FILE
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), list):
        return None
    return marker


def list_files(folder: str | os.PathLike) -> list[str]:
    """Every file below ``folder`` as a sorted POSIX path relative to it (the marker excluded)."""
    folder = Path(folder)
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            relative = (Path(root) / name).relative_to(folder).as_posix()
            if relative != MARKER_FILE:
                found.append(relative)
    return sorted(found)


def write_marker(folder: str | os.PathLike, command: str) -> Path:
    """Write the marker into ``folder`` (normally the temporary folder before it is renamed)."""
    from talkinghead import __version__

    folder = Path(folder)
    marker = {
        "format": MARKER_FORMAT,
        "command": command,
        "written_by": f"talkinghead {__version__}",
        "files": list_files(folder),
    }
    path = folder / MARKER_FILE
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(marker, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_replaceable_folder(folder: str | os.PathLike, command: str, *, option: str = "--output") -> None:
    """Refuse ``--overwrite`` of a folder holding anything ``command`` did not write there.

    A missing or empty folder is fine. Otherwise the folder's marker must name ``command``
    and list every file the folder holds.

    Raises:
        OutputPathError: no marker, a marker of another command, or files the marker does not
            list (the message names them and the fix).
    """
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    marker = read_marker(folder)
    present = list_files(folder)
    if marker is None:
        raise OutputPathError(
            f"{option} {folder}: --overwrite replaces only a folder that talkinghead wrote, and this one "
            f"holds files it did not write ({_listing(present)}); move them away or choose another {option} folder"
        )
    if marker.get("command") != command:
        raise OutputPathError(
            f"{option} {folder}: was written by `talkinghead {marker.get('command')}`, not by "
            f"`talkinghead {command}`; --overwrite will not replace it. Choose another {option} folder"
        )
    foreign = sorted(set(present) - set(marker["files"]))
    if foreign:
        raise OutputPathError(
            f"{option} {folder}: holds files that `talkinghead {command}` did not write ({_listing(foreign)}); "
            f"--overwrite would delete them. Move them away or choose another {option} folder"
        )


def check_own_files(folder: str | os.PathLike, names: Iterable[str], command: str, *, option: str = "--output") -> None:
    """Refuse to replace files in ``folder`` that ``command`` did not write there earlier.

    For commands that write a few named files into a folder that may hold other things
    (``demo``): an existing file of those names is replaced only when the folder's marker
    says ``command`` wrote it.

    Raises:
        OutputPathError: one of ``names`` exists and the marker does not list it.
    """
    folder = Path(folder)
    marker = read_marker(folder) or {}
    own = set(marker.get("files", [])) if marker.get("command") == command else set()
    taken = [name for name in names if (folder / name).exists() and name not in own]
    if taken:
        raise OutputPathError(
            f"{option} {folder}: already holds {_listing(taken)}, which `talkinghead {command}` did not write; "
            f"it will not replace them. Move them away or choose another {option} folder"
        )


def update_marker(folder: str | os.PathLike, names: Iterable[str], command: str) -> Path:
    """Add ``names`` to the marker of ``folder`` (files ``command`` wrote there), atomically."""
    from talkinghead import __version__

    folder = Path(folder)
    marker = read_marker(folder) or {}
    files = set(marker.get("files", [])) if marker.get("command") == command else set()
    files |= set(names)
    text = json.dumps({"format": MARKER_FORMAT, "command": command, "written_by": f"talkinghead {__version__}",
                       "files": sorted(files)}, indent=2) + "\n"
    # Written beside and renamed (atomic), without utils.atomic, which imports this module.
    path = folder / MARKER_FILE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{MARKER_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
