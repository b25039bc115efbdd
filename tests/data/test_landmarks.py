"""Landmark backends on real portraits, and the dense-mesh -> iBUG-68 correspondence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from talkinghead.data.landmarks.base import FaceLandmarks, FaceTrack
from talkinghead.data.landmarks.factory import create_landmarker
from talkinghead.data.landmarks.ibug68 import MEDIAPIPE_TO_IBUG68, interocular_distance
from talkinghead.data.image_sequence import read_image
from talkinghead.weights import MissingWeightsError, asset_path

PORTRAITS = ("sadtalker_people_0.png", "facerec_biden2.jpg", "liveportrait_d9.jpg", "tpsmm_source.png",
             "facerec_rose_leslie_img2.jpg", "liveportrait_d19.jpg", "facerec_obama1.jpg")


@pytest.fixture(scope="module")
def mediapipe_faces(real_data):
    landmarker = create_landmarker("mediapipe")
    faces = {name: (read_image(real_data / name), landmarker.detect(read_image(real_data / name)))
             for name in PORTRAITS}
    landmarker.close()
    return faces


def test_mediapipe_finds_dense_3d_landmarks_on_real_portraits(mediapipe_faces):
    for name, (image, faces) in mediapipe_faces.items():
        assert len(faces) == (2 if name == "facerec_obama1.jpg" else 1), name  # + a false detection
        face = faces[0]
        h, w = image.shape[:2]
        assert face.dense.shape == (478, 3) and face.ibug68.shape == (68, 2)
        assert face.confidence > 0.7
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        # the 68 points are the mesh's own vertices
        np.testing.assert_allclose(face.ibug68, face.dense[MEDIAPIPE_TO_IBUG68, :2])
        # anatomy: brows above eyes above nose tip above mouth above chin (image y grows down)
        p = face.ibug68
        assert p[17:27, 1].mean() < p[36:48, 1].mean() < p[30, 1] < p[48:68, 1].mean() < p[8, 1]
        assert p[36, 0] < p[45, 0]  # subject's right eye on the image's left


def test_a_large_false_detection_does_not_beat_the_real_face(real_data):
    # The emblem behind Obama yields a face detection as large as his face, at lower confidence.
    landmarker = create_landmarker("mediapipe")
    faces = landmarker.detect(read_image(real_data / "facerec_obama1.jpg"))
    landmarker.close()
    assert len(faces) >= 1
    assert faces[0].confidence > 0.9
    assert abs(faces[0].center[0] - 709) < 40 and abs(faces[0].center[1] - 450) < 40


def test_face_track_follows_the_same_face():
    def face(cx, size):
        pts = np.array([[cx - size / 2, 0], [cx + size / 2, size]], np.float32).repeat(34, axis=0)
        return FaceLandmarks(dense=np.zeros((68, 3), np.float32), ibug68=pts, confidence=1.0)

    track = FaceTrack(face_index=1)
    assert track.choose([face(100, 80), face(300, 40)]).center[0] == 300
    # the once-smaller face grew larger than the other: the track stays on it
    assert track.choose([face(290, 90), face(110, 60)]).center[0] == 290
    assert FaceTrack(face_index=3).choose([face(0, 10)]) is None


def test_dense_to_68_map_agrees_with_dlib(mediapipe_faces):
    pytest.importorskip("dlib", reason="dlib is installed by `pip install -e .[dlib]` (make test does it)")
    dlib = create_landmarker("dlib68")
    errors = []
    for name, (image, faces) in mediapipe_faces.items():
        reference = dlib.detect(image)
        assert reference, f"dlib found no face in {name}"
        ref = reference[0].ibug68
        iod = float(interocular_distance(ref))
        errors.append(np.linalg.norm(faces[0].ibug68 - ref, axis=1) / iod)  # (68,)
    errors = np.stack(errors)  # (num_images, 68)
    # inner face (brows, eyes, nose, mouth) agrees closely; the mesh's face oval lies slightly
    # outside dlib's jaw line, so the jaw is held to a looser bound
    assert errors[:, 17:].mean() < 0.08, errors[:, 17:].mean()
    assert errors[:, :17].mean() < 0.2, errors[:, :17].mean()
    assert np.median(errors[:, 36:48]) < 0.06


def test_dlib68_backend_on_a_real_portrait(real_data):
    pytest.importorskip("dlib", reason="dlib is installed by `pip install -e .[dlib]` (make test does it)")
    faces = create_landmarker("dlib68").detect(read_image(real_data / "sadtalker_people_0.png"))
    assert len(faces) == 1
    assert faces[0].dense.shape == (68, 3) and np.all(faces[0].dense[:, 2] == 0)
    assert 0.5 <= faces[0].confidence <= 1.0


def test_fan_backend_needs_its_weights_and_loads_them(real_data):
    with pytest.raises(MissingWeightsError, match="talkinghead weights add fan"):
        create_landmarker("fan")
    from talkinghead.models.fan import FAN

    torch.manual_seed(0)
    path = asset_path("fan")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(FAN(num_stacks=4).state_dict(), path)  # random weights: the loading code is real
    faces = create_landmarker("fan").detect(read_image(real_data / "sadtalker_happy.png"))
    assert len(faces) == 1 and faces[0].ibug68.shape == (68, 2)
    assert np.all(np.isfinite(faces[0].ibug68))


def test_unknown_backend():
    with pytest.raises(ValueError, match="mediapipe, dlib68, fan"):
        create_landmarker("opencv")


def test_prepare_uses_face_parsing_when_its_weights_are_installed(real_videos, tmp_path):
    from real_inputs import tiny_config

    from talkinghead.data.dataset_format import PreparedDataset
    from talkinghead.data.prepare import RunOptions, prepare_dataset
    from talkinghead.models.face_parsing import BiSeNetFaceParser

    torch.manual_seed(0)
    path = asset_path("face_parsing")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(BiSeNetFaceParser(19).state_dict(), path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "clip.mp4").symlink_to(real_videos / "liveportrait_d18.mp4")
    summary = prepare_dataset(inputs, tmp_path / "ds", tiny_config(segmentation="auto", frames_per_clip=2),
                              RunOptions(progress=False))
    assert summary.clips_done == 1
    dataset = PreparedDataset(tmp_path / "ds")
    assert dataset.info["segmentation"]["source"] == "face-parsing"
    clip = dataset.clip(dataset.records[0])
    labels = clip.segmentation(0)
    assert labels.shape == (64, 64) and labels.max() < 19
    assert json.loads((clip.folder / "meta.json").read_text())["segmentation_source"] == "face-parsing"
