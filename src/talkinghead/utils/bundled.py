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
# The model `animate`, `finetune`, `demo` and the app use when none is named.
DEFAULT_MODEL = "demo"
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


def bundled_model_names() -> list[str]:
    """Names of the bundled models (the folders of ``models/`` that hold a ``config.json``), sorted.

    These load without a path: ``--checkpoint demo``, ``from_pretrained("demo")``.
    """
    names = set()
    for root in (WHEEL_ROOT, CHECKOUT_ROOT):
        folder = root / "models"
        if folder.is_dir():
            names.update(p.name for p in folder.iterdir() if (p / "config.json").is_file())
    return sorted(names)


def bundled_model(name: str) -> Path:
    """The folder of the bundled model ``name`` (one of :func:`bundled_model_names`).

    Raises:
        InputNotFoundError: an unknown name, or an installation without the model files.
    """
    names = bundled_model_names()
    if name not in names:
        raise InputNotFoundError(
            f"{name}: no bundled model of that name (bundled: {', '.join(names) or 'none'}); "
            "give the path of a release folder, checkpoint file or run folder"
        )
    return bundled_path(Path("models") / name)


def resolve_model(path: str | Path) -> Path:
    """``path`` itself when it exists, else the bundled model of that name, else ``path`` unchanged.

    A path that exists always wins over a bundled name, so a local folder called ``demo`` is read.
    Callers report a path that does not exist.
    """
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and str(path) in bundled_model_names():
        return bundled_model(str(path))
    return path


def bundled_model_name(path: str | Path) -> str | None:
    """The bundled name of the model folder ``path`` (``"demo"`` for ``models/demo``), or None."""
    path = Path(path)
    for name in bundled_model_names():
        if path.resolve() == bundled_path(Path("models") / name).resolve():
            return name
    return None


def bundled_examples(kind: str) -> list[Path]:
    """The bundled example files of ``kind`` (``portraits`` or ``videos``), sorted by name."""
    folder = bundled_path(Path("examples") / kind)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
