"""Where the bundled model and examples live, in a source checkout and in an installed wheel.

A checkout keeps them at the top of the repository (``models/demo``, ``examples/``); a wheel
carries copies inside the package (``talkinghead/bundled/``, put there by ``setup.py`` when
the wheel is built). Code asks :func:`bundled_path` and never builds either path itself, so
``talkinghead demo`` works the same from a clone, an editable install and ``pip install`` of
the wheel.
"""

from __future__ import annotations

from pathlib import Path

from talkinghead.errors import InputNotFoundError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Inside the wheel: talkinghead/bundled/{models,examples}; in a checkout: the repository root
# (src/talkinghead -> src -> repository).
WHEEL_ROOT = PACKAGE_DIR / "bundled"
CHECKOUT_ROOT = PACKAGE_DIR.parents[1]
# Model names that load without a path (``from_pretrained("demo")``, ``--checkpoint demo``).
BUNDLED_MODELS = ("demo", "lsr_demo")


def bundled_path(relative: str | Path) -> Path:
    """The bundled file or folder ``relative`` (e.g. ``models/demo``), from the wheel or the checkout.

    Returns the wheel's copy when it exists, else the checkout's, else the wheel's location
    (which does not exist; callers check and say what is missing).
    """
    for root in (WHEEL_ROOT, CHECKOUT_ROOT):
        candidate = root / relative
        if candidate.exists():
            return candidate
    return WHEEL_ROOT / relative


def bundled_model(name: str) -> Path:
    """The folder of the bundled model ``name`` (one of :data:`BUNDLED_MODELS`).

    Raises:
        InputNotFoundError: an unknown name, or an installation without the model files.
    """
    if name not in BUNDLED_MODELS:
        raise InputNotFoundError(
            f"{name}: no bundled model of that name (bundled: {', '.join(BUNDLED_MODELS)}); "
            "give the path of a release folder, checkpoint file or run folder"
        )
    path = bundled_path(Path("models") / name)
    if not (path / "config.json").is_file():
        raise InputNotFoundError(
            f"{path}: the bundled model {name!r} is missing from this installation; reinstall talkinghead "
            "(the wheel and the source checkout both carry it) or give the path of a model"
        )
    return path


def bundled_examples(kind: str) -> list[Path]:
    """The bundled example files of ``kind`` (``portraits`` or ``videos``), sorted by name."""
    folder = bundled_path(Path("examples") / kind)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
