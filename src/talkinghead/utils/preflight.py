"""Checks a command runs on its options before any model is loaded: numbers, folders, free space.

Every command calls these on what it can know up front, so a bad number or an output in the
wrong place is one line naming the option, what is wrong and the fix, before minutes of
loading and compute:

* :func:`check_numbers` checks numeric options against their lower bounds (``--fps 0``,
  ``--output-size -5``, ``--batch-size 0``, ...).
* :func:`check_folder_output` refuses a folder output that is an existing file.
* :func:`check_free_space` refuses an output whose estimated size the disk cannot hold.

Where the output may be written at all (read-only, forbidden, an input) is
:mod:`talkinghead.utils.output_guard`'s job.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from talkinghead.errors import InvalidInputError
from talkinghead.utils.output_guard import OutputPathError, OutputWriteError

# (option as typed on the command line, its value (None = not given), the smallest value allowed,
# whether the bound itself is allowed). ``--fps 0`` is refused by (name, 0, 0, False).
NumberCheck = tuple[str, "float | int | None", float, bool]


def at_least(option: str, value, minimum: float) -> NumberCheck:
    """A check that ``value`` is ``>= minimum`` (e.g. ``at_least("--batch-size", 0, 1)``)."""
    return (option, value, minimum, True)


def above(option: str, value, bound: float) -> NumberCheck:
    """A check that ``value`` is ``> bound`` (e.g. ``above("--fps", 0, 0)``)."""
    return (option, value, bound, False)


def check_numbers(checks: Iterable[NumberCheck]) -> None:
    """Refuse the first numeric option outside its range (values of None are skipped).

    Raises:
        InvalidInputError: naming the option, the value given and the range, e.g.
            ``--fps must be a number > 0, got 0``.
    """
    for option, value, bound, inclusive in checks:
        if value is None:
            continue
        ok = math.isfinite(value) and (value >= bound if inclusive else value > bound)
        if not ok:
            shown = f"{bound:g}" if isinstance(bound, float) else str(bound)
            relation = ">=" if inclusive else ">"
            raise InvalidInputError(f"{option} must be a number {relation} {shown}, got {value:g}; give a value {relation} {shown}")


def check_folder_output(path: str | os.PathLike, option: str = "OUTPUT") -> None:
    """Refuse a folder output that is an existing file (or lies under one).

    Raises:
        OutputPathError: the path, or a part of it, is a file.
    """
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "is an existing file" if part == path else f"lies under {part}, which is a file"
                raise OutputPathError(
                    f"{option} {path}: {where}, but a folder is needed here; choose a folder path "
                    "(it is created if missing)"
                )
            return


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes on the disk that ``path`` (or its nearest existing parent) is on."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return shutil.disk_usage(Path.cwd()).free


def check_free_space(path: str | os.PathLike, needed_bytes: int, *, option: str = "--output", what: str = "the output") -> None:
    """Refuse an output whose estimated size is more than the disk's free space.

    Args:
        path: where the output will be written.
        needed_bytes: the estimated size of what will be written there (temporaries included).
        option: how the output is given on the command line.
        what: what is written, for the message.

    Raises:
        OutputWriteError: the disk holds less than ``needed_bytes`` free.
    """
    free = free_bytes(path)
    if needed_bytes > free:
        raise OutputWriteError(
            f"{option} {path}: {what} needs about {needed_bytes / 2**20:.0f} MB but the disk has "
            f"{free / 2**20:.0f} MB free; free some space or choose an output on another disk"
        )
