"""Shared fixtures: the real test media and an isolated weights cache."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own empty TALKINGHEAD_HOME, never the user's cache."""
    home = tmp_path_factory.mktemp("talkinghead_home")
    monkeypatch.setenv("TALKINGHEAD_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/real (skips the test when it is absent)."""
    if not (REAL_DATA / "manifest.csv").is_file():
        pytest.skip(f"real test media not found at {REAL_DATA}")
    return REAL_DATA
