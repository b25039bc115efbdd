"""Load the frozen networks that the perceptual and identity losses need, per ``perceptual`` mode.

``trainer.perceptual`` (and ``perceptual`` of fine-tuning) says what happens when weights are
not installed:

* ``required``: every needed file must be installed; otherwise one
  :class:`MissingWeightsError` lists all missing files, how to install them, and how to train
  without them.
* ``auto``: load what is installed; the result lists what is missing and a message ready for
  the log; the trainer drops the terms of the missing networks. With ``identity_fallback``, a
  missing VGGFace identity network is replaced by dlib's ResNet (``dlib-resnet``, installed
  offline with ``face_recognition_models``), and the message says so.
* ``none``: load nothing.

A file that is installed but unreadable or of the wrong network always raises
:class:`CorruptWeightsError`, whatever the mode: a broken install must never silently turn a
loss term off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from talkinghead.models.dlib_resnet import DlibResNet
from talkinghead.models.vgg import VGG19Features, VGGFace
from talkinghead.weights import MissingWeightsError, get_asset, is_available
from talkinghead.weights.registry import how_to_get

PerceptualMode = Literal["required", "auto", "none"]

# What each network name means: the registry asset it comes from and what it serves.
NETWORK_ASSETS = {"vgg19": "vgg19", "vggface": "vggface", "vggface_fc": "vggface", "dlib_resnet": "dlib_resnet"}
NETWORK_USES = {
    "vgg19": "VGG19 perceptual loss",
    "vggface": "VGGFace perceptual loss",
    "vggface_fc": "VGGFace identity loss",
    "dlib_resnet": "dlib-resnet identity loss",
}


@dataclass
class PerceptualNetworks:
    """The frozen networks that could be loaded, and what is missing.

    Args:
        mode: the ``perceptual`` mode they were built with.
        needed: the network names that were asked for.
        vgg19: VGG19 features, or None when not needed or not installed.
        vggface: VGGFace (with its fc layers when ``vggface_fc`` was needed), or None.
        dlib_resnet: dlib's ResNet, loaded in place of a missing ``vggface_fc`` (identity
            fallback), or None.
        loaded: needed network names that are available (``vgg19``, ``vggface``, ``vggface_fc``),
            plus ``dlib_resnet`` when it stands in for ``vggface_fc``.
        missing: needed network names whose weights are not installed (``auto`` mode; in
            ``none`` mode nothing is checked).
        message: one human-readable paragraph saying what was loaded and what was left out.
    """

    mode: PerceptualMode
    needed: list[str] = field(default_factory=list)
    vgg19: VGG19Features | None = None
    vggface: VGGFace | None = None
    dlib_resnet: DlibResNet | None = None
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    message: str = ""

    def has(self, name: str) -> bool:
        """Whether network ``name`` (``vgg19``, ``vggface``, ``vggface_fc``, ``dlib_resnet``) is available."""
        return name in self.loaded

    @property
    def networks(self) -> dict[str, VGG19Features | VGGFace | DlibResNet]:
        """Loaded network by name: ``vgg19``, ``vggface`` and ``vggface_fc`` (the same VGGFace), ``dlib_resnet``."""
        nets = {"vgg19": self.vgg19, "vggface": self.vggface, "vggface_fc": self.vggface, "dlib_resnet": self.dlib_resnet}
        return {name: nets[name] for name in self.loaded if nets[name] is not None}

    @property
    def unavailable(self) -> list[str]:
        """Needed networks that were not loaded (missing, or every one in ``none`` mode)."""
        return [n for n in self.needed if n not in self.loaded]


def _check_names(needed: set[str] | frozenset[str] | list[str] | tuple[str, ...]) -> list[str]:
    names = sorted(set(needed))
    unknown = [n for n in names if n not in NETWORK_ASSETS]
    if unknown:
        raise ValueError(f"unknown perceptual network(s) {unknown}; known: {sorted(NETWORK_ASSETS)}")
    return names


def _missing_report(names: list[str]) -> list[str]:
    """One line per missing asset file: which terms need it and how to install it."""
    lines = []
    for asset in sorted({NETWORK_ASSETS[n] for n in names}):
        uses = ", ".join(NETWORK_USES[n] for n in names if NETWORK_ASSETS[n] == asset)
        lines.append(f"  - '{asset}' ({get_asset(asset).filename}, for the {uses}): {how_to_get(asset)}")
    return lines


def build_perceptual_networks(
    needed: set[str] | frozenset[str] | list[str] | tuple[str, ...],
    mode: PerceptualMode = "required",
    *,
    device: str | torch.device | None = None,
    option: str = "trainer.perceptual",
    identity_fallback: bool = False,
) -> PerceptualNetworks:
    """Load the frozen networks the enabled loss terms need.

    Args:
        needed: names among ``vgg19`` (VGG19 perceptual loss), ``vggface`` (VGGFace
            perceptual loss, conv part only) and ``vggface_fc`` (identity loss, VGGFace with
            its fc layers); one VGGFace serves both VGGFace names.
        mode: ``required``, ``auto`` or ``none`` (see the module docstring).
        device: where to put the networks (None: leave them on the CPU).
        option: the config key that holds ``mode``, named in messages.
        identity_fallback: in ``auto`` mode, load dlib's ResNet (``dlib_resnet``) for the
            identity loss when VGGFace is missing and dlib's file is installed (the caller
            must then give the loss the target's landmarks).

    Raises:
        MissingWeightsError: ``required`` mode and some needed file is not installed; the
            message lists every missing file and the ways forward.
        CorruptWeightsError: a needed file is installed but cannot be loaded (any mode).
    """
    if mode not in ("required", "auto", "none"):
        raise ValueError(f"{option} must be 'required', 'auto' or 'none', got {mode!r}")
    names = _check_names(needed)
    if mode == "none" or not names:
        message = (
            f"{option}=none: no perceptual network is loaded; the {', '.join(NETWORK_USES[n] for n in names)} "
            "term(s) are off."
            if names
            else "no perceptual network is needed."
        )
        return PerceptualNetworks(mode=mode, needed=names, message=message)

    missing = [n for n in names if not is_available(NETWORK_ASSETS[n])]
    if missing and mode == "required":
        raise MissingWeightsError(
            "training needs pretrained weights that are not installed:\n"
            + "\n".join(_missing_report(missing))
            + f"\nInstall them, or set `{option}=auto` to train without the missing networks' loss "
            f"terms (or `{option}=none` to train without any perceptual network)."
        )

    present = [n for n in names if n not in missing]
    substitute = identity_fallback and "vggface_fc" in missing and is_available("dlib_resnet")
    if substitute:
        present.append("dlib_resnet")
    result = PerceptualNetworks(mode=mode, needed=names, loaded=present, missing=missing)
    purpose = f"the {', '.join(NETWORK_USES[n] for n in present)}"
    if "vgg19" in present:
        result.vgg19 = VGG19Features.from_registry(purpose)
    if "vggface" in present or "vggface_fc" in present:
        result.vggface = VGGFace.from_registry(purpose, with_fc="vggface_fc" in present)
    if substitute:
        result.dlib_resnet = DlibResNet.from_registry(purpose)
    if device is not None:
        for network in (result.vgg19, result.vggface, result.dlib_resnet):
            if network is not None:
                network.to(device)

    loaded_text = ", ".join(NETWORK_USES[n] for n in present) or "nothing"
    off = [n for n in missing if not (substitute and n == "vggface_fc")]
    if missing:
        result.message = f"{option}={mode}: loaded {loaded_text}"
        if substitute:
            result.message += (
                "; VGGFace is missing, so the identity loss uses dlib-resnet (dlib's 128-d face-recognition "
                "ResNet from face_recognition_models, on chips aligned with the target's landmarks)"
            )
        if off:
            result.message += f"; weights missing, so these terms are off: {', '.join(NETWORK_USES[n] for n in off)}"
        result.message += ".\n" + "\n".join(_missing_report(missing))
    else:
        result.message = f"{option}={mode}: loaded {loaded_text}."
    return result
