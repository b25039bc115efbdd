"""The dlib-resnet identity loss: the VGGFace fallback of `perceptual: auto`, on real faces at 64 px."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from talkinghead.config.lsr import LossWeights
from talkinghead.losses import DlibIdentityLoss, build_perceptual_networks
from talkinghead.models.dlib_resnet import DlibResNet
from talkinghead.training.lsr_objective import LSRObjective
from talkinghead.weights.registry import package_path

SHARED = __import__("pathlib").Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def network() -> DlibResNet:
    if package_path("dlib_resnet") is None:
        pytest.skip("face_recognition_models is not installed")
    return DlibResNet.from_registry()


def _crops_64(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """64 px face crops of real portraits in [-1, 1] (b, 3, 64, 64) and their 68 points (b, 68, 2)."""
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(models.pose_predictor_model_location())
    images, points = [], []
    for name in names:
        path = SHARED / name
        if not path.is_file():
            pytest.skip(f"{path} is absent")
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        rect = max(detector(image, 1), key=lambda r: r.area())
        side = int(rect.width() * 1.8)
        x0, y0 = rect.center().x - side // 2, rect.center().y - side // 2
        image = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_REPLICATE)
        crop = image[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
        small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)
        shape = predictor(crop, dlib.rectangle(side // 2 - rect.width() // 2, side // 2 - rect.height() // 2,
                                               side // 2 + rect.width() // 2, side // 2 + rect.height() // 2))
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float32)
        images.append(torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1.0)
        points.append(torch.from_numpy((pts + 0.5) * 64 / side - 0.5))
    return torch.stack(images), torch.stack(points)


def test_zero_for_the_same_face_larger_for_another_person_with_gradients(network):
    images, points = _crops_64(["sadtalker_happy.png", "facerec_obama1.jpg"])
    loss = DlibIdentityLoss(network)
    same = loss(images[:1], images[:1], points[:1])
    assert same.item() == pytest.approx(0.0, abs=1e-5)
    output = images[1:].clone().requires_grad_(True)  # another person in the first one's pose
    different = loss(output, images[:1], points[:1])
    assert different.item() > 0.1
    different.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="landmarks"):
        loss(images, images, points[:1])


def test_auto_mode_uses_dlib_resnet_when_vggface_is_missing(network):
    needed = {"vgg19", "vggface", "vggface_fc"}
    result = build_perceptual_networks(needed, "auto", identity_fallback=True)
    assert result.has("dlib_resnet") and isinstance(result.dlib_resnet, DlibResNet)
    assert "uses dlib-resnet" in result.message
    off = result.message.split("these terms are off:")[1].split("\n")[0]
    assert "identity" not in off and "VGGFace perceptual loss" in off
    # Without the fallback (fine-tuning) the identity term is off, as before.
    plain = build_perceptual_networks(needed, "auto")
    assert plain.dlib_resnet is None and "VGGFace identity loss" in plain.message.split("these terms are off:")[1]

    objective = LSRObjective(LossWeights(identity=1.0, l1=1.0).resolved({}), result)
    assert isinstance(objective.identity, DlibIdentityLoss)
    images, points = _crops_64(["sadtalker_happy.png", "sadtalker_sad.png"])
    z = torch.zeros(2, 8)
    total, terms = objective.generator(images, images.flip(0), z, z, None, target_points=points.flip(0))
    assert "identity" in terms and terms["identity"] > 0
    with pytest.raises(ValueError, match="target_points"):
        objective.generator(images, images, z, z, None)


def test_no_fallback_when_dlibs_file_is_missing(monkeypatch):
    import talkinghead.losses.factory as factory

    monkeypatch.setattr(factory, "is_available", lambda name: False)
    result = build_perceptual_networks({"vggface_fc"}, "auto", identity_fallback=True)
    assert result.dlib_resnet is None and "VGGFace identity loss" in result.message
