"""mediapipe's native log lines (absl/glog, written by its graph threads) never reach the terminal.

The lines (``W0000 ... inference_feedback_manager.cc``) come 10-60 ms after a solution is built,
from the threads that open its calculators; each test waits well past that and reads what was
written to descriptor 2 meanwhile.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from talkinghead.data.landmarks.mediapipe_backend import MediapipeLandmarker, quiet_until_idle

LATE = 0.5  # seconds: well past the last start-up line


def test_building_a_landmarker_prints_nothing_later(capfd, monkeypatch):
    monkeypatch.delenv("TALKINGHEAD_VERBOSE", raising=False)
    capfd.readouterr()
    landmarker = MediapipeLandmarker()
    try:
        time.sleep(LATE)
        assert capfd.readouterr().err == ""
    finally:
        landmarker.close()


def test_ctrl_c_right_after_a_graph_starts_prints_nothing_later(capfd, monkeypatch):
    """A KeyboardInterrupt leaves the quiet block at once; the graph's start-up lines must stay silenced."""
    import mediapipe as mp

    monkeypatch.delenv("TALKINGHEAD_VERBOSE", raising=False)
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt):
        with quiet_until_idle([]) as built:
            built.append(mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True))
            raise KeyboardInterrupt  # as Ctrl-C does, before the graph's threads have opened its calculators
    try:
        time.sleep(LATE)
        assert capfd.readouterr().err == ""
    finally:
        built[0].close()


def test_the_first_detection_is_quiet_and_verbose_shows_the_lines(capfd, monkeypatch, real_data):
    photo = np.asarray(Image.open(real_data / "sadtalker_happy.png").convert("RGB"))
    monkeypatch.delenv("TALKINGHEAD_VERBOSE", raising=False)
    landmarker = MediapipeLandmarker()
    try:
        capfd.readouterr()
        assert len(landmarker.detect(photo)) == 1
        time.sleep(LATE)
        assert capfd.readouterr().err == ""
    finally:
        landmarker.close()
    monkeypatch.setenv("TALKINGHEAD_VERBOSE", "1")  # -v: the lines are what a user asked to see
    landmarker = MediapipeLandmarker()
    try:
        time.sleep(LATE)
        assert "inference_feedback_manager" in capfd.readouterr().err
    finally:
        landmarker.close()
