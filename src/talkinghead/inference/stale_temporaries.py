"""Hidden temporaries that killed animation runs left beside their output, and their removal.

The writers build an output under a hidden name holding their process id and rename it when
complete. A run killed by SIGKILL (or a power cut) never renames nor removes it; the next
run for the same output removes such leftovers, and only those: names of the writers' own
pattern for that output whose process is no longer running.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (this one counts as running; another user's too)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the hidden temporaries that killed writers of ``path`` left beside it.

    Only names of our own pattern for this very output are touched, and only when the
    process id in the name is no longer running: ``.NAME.tmp-PID-HEX.*`` files of
    :class:`VideoWriter` and ``.NAME.PID-HEX.tmp`` / ``.old`` folders of
    :class:`PNGSequenceWriter`. Returns what was removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    name = re.escape(path.name)
    patterns = (
        re.compile(rf"^\.{name}\.tmp-(\d+)-[0-9a-f]{{6}}\..+$"),
        re.compile(rf"^\.{name}\.(\d+)-[0-9a-f]{{6}}\.(?:tmp|old)$"),
    )
    removed = []
    for entry in path.parent.iterdir():
        for pattern in patterns:
            match = pattern.match(entry.name)
            if match is None or process_alive(int(match.group(1))):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except OSError as error:
                log.warning("could not remove %s, left by an interrupted run (%s); delete it by hand", entry, error)
                break
            log.info("removed %s, left by an interrupted run", entry)
            removed.append(entry)
            break
    return removed
