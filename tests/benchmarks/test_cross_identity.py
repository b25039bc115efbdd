"""benchmarks/cross_identity.py on two bundled portrait/driver pairs, a few frames each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]
METRICS = ("mouth_r", "mouth_amp", "eye_r", "eye_amp", "pose_err", "expr_err", "id_kept")


def test_cross_identity_benchmark_on_two_bundled_pairs(tmp_path):
    out = tmp_path / "cross"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cross_identity.py"),
         str(REPO / "examples" / "portraits" / "sadtalker_happy.png"), str(REPO / "examples" / "videos"), str(out),
         "--max-frames", "6", "--variants", "relative", "landmark-warp"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    pairs = [p for p in results["pairs"] if p["driver"] in ("liveportrait_d18.mp4", "liveportrait_d19.mp4")]
    assert len(pairs) == 2
    for pair in pairs:
        relative = pair["variants"]["relative"]
        assert set(relative["landmark"]) == set(METRICS) == set(relative["image"])
        # the target landmarks are the canonical targets, their head pose steadied by the
        # stabiliser (a fraction of a degree of lag); the expression is not touched
        assert relative["landmark"]["pose_err"] < 0.5
        assert relative["landmark"]["expr_err"] < 1e-3
        assert relative["image"]["pose_err"] is not None and relative["faces_found"] > 0.5
        assert relative["image"]["id_kept"] > 0.5 and "landmark" not in pair["variants"]["landmark-warp"]
        strip = cv2.imread(str(out / "strips" / f"sadtalker_happy__{Path(pair['driver']).stem}.png"))
        assert strip.shape == (3 * 256, 7 * 256, 3)  # driver, relative, landmark-warp; source + 6 frames, 256 px
    assert "| relative | image |" in done.stdout
