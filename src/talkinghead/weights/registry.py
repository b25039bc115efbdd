"""The one registry of pretrained networks the papers rely on.

Nothing is downloaded at run time: code that needs an asset asks :func:`require`, which
returns the local file or raises :class:`MissingWeightsError` with the exact file name and
the command that installs it. The cache folder is ``$TALKINGHEAD_HOME`` (default
``~/.cache/talkinghead``); files live in its ``weights/`` sub-folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from talkinghead.utils.atomic import atomic_path, atomic_write_text
from talkinghead.utils.bundled import bundled_path
from talkinghead.errors import InputNotFoundError, OutputExistsError, TalkingHeadError, UnknownNameError


class WeightsError(TalkingHeadError, RuntimeError):
    """Base class of every pretrained-weights problem."""


class MissingWeightsError(WeightsError):
    """An asset that the requested operation needs is not installed."""


class ChecksumError(WeightsError):
    """A file does not match the checksum published for its asset."""


class CorruptWeightsError(WeightsError):
    """A weights file cannot be read as a tensor state dict."""


@dataclass(frozen=True)
class WeightsAsset:
    """One pretrained network file.

    Args:
        name: short registry name used on the command line.
        filename: the file name under the cache's ``weights/`` folder.
        description: what the network is.
        used_for: which part of talkinghead needs it.
        url: official address of the file.
        direct_download: whether ``url`` serves the file itself (else it is a page or a
            cloud-drive link that a person has to open).
        sha256: full published sha256, when one is published.
        sha256_prefix: leading hex digits of the sha256 that the file name carries
            (the torch.hub convention ``name-<sha256 prefix>.pth``).
        conversion: how to turn what the official source gives into ``filename``.
        license: the licence of the weights as stated by their authors.
        file_format: ``state_dict`` (a PyTorch/safetensors tensor dict) or ``dlib`` (a dlib DNN
            file, read by :mod:`talkinghead.weights.dlib_dnn`).
        package_file: ``(python package, path inside it)`` of a pip package that ships the
            file; when the package is installed and the cache holds no copy, its file is used.
        bundled_file: a conversion of the weights that talkinghead itself ships (a path below
            the bundled data's root, see :mod:`talkinghead.utils.bundled`), read as a state dict
            when neither the cache nor a package has the asset, so a base install needs nothing
            else.
    """

    name: str
    filename: str
    description: str
    used_for: str
    url: str
    direct_download: bool = True
    sha256: str | None = None
    sha256_prefix: str | None = None
    conversion: str = "none: install the downloaded file as it is"
    license: str = "see the official source"
    file_format: str = "state_dict"
    package_file: tuple[str, str] | None = None
    bundled_file: str | None = None


ASSETS: dict[str, WeightsAsset] = {
    asset.name: asset
    for asset in [
        WeightsAsset(
            name="vgg19",
            filename="vgg19-dcbb9e9d.pth",
            description="VGG19 trained on ImageNet (torchvision layout, 'features.N.weight' keys)",
            used_for="VGG19 perceptual loss (LSR §3.3, FSTH L_CNT)",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            sha256_prefix="dcbb9e9d",
            license="BSD-3-Clause (torchvision)",
        ),
        WeightsAsset(
            name="vggface",
            filename="vgg_face_dag.pth",
            description="VGG-Face (Parkhi et al. 2015), PyTorch conversion of the MatConvNet DAG model",
            used_for="VGGFace perceptual/identity loss (LSR §3.3, FSTH) and LSR's ID-SIM metric",
            url="http://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth",
            license="non-commercial research (VGG Face descriptor)",
        ),
        WeightsAsset(
            name="alexnet",
            filename="alexnet-owt-7be5be79.pth",
            description="AlexNet trained on ImageNet (torchvision layout), LPIPS backbone",
            used_for="LPIPS metric (evaluation)",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            sha256_prefix="7be5be79",
            license="BSD-3-Clause (torchvision)",
        ),
        WeightsAsset(
            name="lpips_alex",
            filename="lpips_alex_v0.1.pth",
            description="LPIPS v0.1 linear calibration layers for the AlexNet backbone",
            used_for="LPIPS metric (evaluation)",
            url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
            conversion="none: the official file is 'alex.pth'; install it under this name",
            license="BSD-2-Clause (richzhang/PerceptualSimilarity)",
        ),
        WeightsAsset(
            name="inception_fid",
            filename="pt_inception-2015-12-05-6726825d.pth",
            description="Inception-v3 with the TensorFlow FID weights (pytorch-fid port)",
            used_for="FID metric (evaluation)",
            url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            sha256_prefix="6726825d",
            license="Apache-2.0 (pytorch-fid)",
        ),
        WeightsAsset(
            name="arcface",
            filename="arcface_r100_ms1mv3.pth",
            description="ArcFace IResNet-100 trained on MS1MV3 (insightface arcface_torch 'backbone.pth')",
            used_for="ID-SIM / CSIM metric as in FSTH and LPD (evaluation)",
            url="https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch",
            direct_download=False,
            conversion="none: the model zoo's ms1mv3_arcface_r100_fp16/backbone.pth, renamed",
            license="non-commercial research (insightface model zoo)",
        ),
        WeightsAsset(
            name="face_parsing",
            filename="face_parsing_bisenet_79999_iter.pth",
            description="BiSeNet face parser trained on CelebAMask-HQ, 19 classes (zllrunning 79999_iter.pth)",
            used_for="oracle segmentation for LSR layout pre-training (prepare --segmentation face-parsing)",
            url="https://github.com/zllrunning/face-parsing.PyTorch (README: Google Drive link to 79999_iter.pth)",
            direct_download=False,
            conversion="none: the released '79999_iter.pth', renamed",
            license="MIT (zllrunning/face-parsing.PyTorch)",
        ),
        WeightsAsset(
            name="fan",
            filename="2DFAN4-11f355bf06.pth.tar",
            description="FAN (Bulat & Tzimiropoulos 2017) 2-D 68-point landmark network, 4 hourglass stacks",
            used_for="68-point landmarks as in the papers (prepare --landmarks fan)",
            url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
            sha256_prefix="11f355bf06",
            license="BSD-3-Clause (1adrianb/face-alignment)",
        ),
        WeightsAsset(
            name="dlib_resnet",
            filename="dlib_face_recognition_resnet_model_v1.dat",
            description="dlib's 29-layer ResNet face descriptor, 128-d (99.38% on LFW), dlib DNN file",
            used_for="ID-SIM with dlib-resnet, the identity loss when VGGFace is missing, MetaPortrait's identity",
            url="https://github.com/ageitgey/face_recognition_models/raw/master/face_recognition_models/models/"
            "dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            conversion="none; or `pip install face_recognition_models`, whose copy is found automatically",
            license="public domain (dlib model, Davis King) / CC0 (face_recognition_models)",
            file_format="dlib",
            package_file=("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"),
            # The same float32 numbers as safetensors (scripts/convert_dlib_resnet.py): MetaPortrait's
            # z_id needs them, and `pip install talkinghead` alone must run the bundled model.
            bundled_file="models/pretrained/dlib_resnet.safetensors",
        ),
    ]
}


def home_dir() -> Path:
    """Root of talkinghead's cache (``$TALKINGHEAD_HOME`` or ``~/.cache/talkinghead``)."""
    env = os.environ.get("TALKINGHEAD_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "talkinghead"


def weights_dir() -> Path:
    """Folder holding the installed weight files."""
    return home_dir() / "weights"


def get_asset(name: str) -> WeightsAsset:
    """The registry entry ``name``, or a KeyError listing the valid names."""
    try:
        return ASSETS[name]
    except KeyError:
        raise UnknownNameError(f"unknown weights asset {name!r}; known: {', '.join(sorted(ASSETS))}") from None


def asset_path(name: str) -> Path:
    """Where the file of asset ``name`` is (or would be) installed."""
    return weights_dir() / get_asset(name).filename


def package_path(name: str) -> Path | None:
    """The copy of asset ``name`` inside an installed pip package, if there is one.

    The package is located without importing it (importing ``face_recognition_models`` warns).
    """
    asset = get_asset(name)
    if asset.package_file is None:
        return None
    package, relative = asset.package_file
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative
    return path if path.is_file() else None


def bundled_copy(name: str) -> Path | None:
    """The conversion of asset ``name`` that talkinghead ships, if it ships one and it is present."""
    relative = get_asset(name).bundled_file
    if relative is None:
        return None
    path = bundled_path(relative)
    return path if path.is_file() else None


def installed_path(name: str) -> Path | None:
    """The file asset ``name`` is read from: the cache's copy, a pip package's copy, the bundled one, or None."""
    cached = asset_path(name)
    if cached.is_file():
        return cached
    return package_path(name) or bundled_copy(name)


def is_available(name: str) -> bool:
    """Whether the file of asset ``name`` is installed (in the cache or in a pip package)."""
    return installed_path(name) is not None


def how_to_get(name: str) -> str:
    """The commands a person runs to install asset ``name``."""
    asset = get_asset(name)
    target = asset_path(name)
    if asset.direct_download:
        fetch = f"run `talkinghead weights download {name}` (needs internet), or download {asset.url}"
    else:
        fetch = f"download it from {asset.url}"
    text = f"{fetch}, then run `talkinghead weights add {name} FILE` (installs it as {target})"
    if asset.package_file is not None:
        text = f"run `pip install {asset.package_file[0].replace('_', '-')}` (its copy is found automatically), or {text}"
    return text


def require(name: str, purpose: str | None = None) -> Path:
    """Path of an installed asset, or a :class:`MissingWeightsError` saying how to get it."""
    asset = get_asset(name)
    path = installed_path(name)
    if path is None:
        raise MissingWeightsError(
            f"{purpose or asset.used_for} needs the pretrained weights '{name}' ({asset.description}), "
            f"expected at {asset_path(name)}. To get them: {how_to_get(name)}."
        )
    return path


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(name: str, path: str | Path) -> tuple[str, str]:
    """Check a file against the asset's published checksum.

    Returns:
        ``(sha256, status)`` with status ``verified`` or ``unverified`` (no checksum is
        published for this asset; the digest is recorded so later changes are noticed).

    Raises:
        ChecksumError: the file's sha256 contradicts the published one.
    """
    asset = get_asset(name)
    digest = sha256_of(path)
    expected = asset.sha256 or asset.sha256_prefix
    if expected is None:
        return digest, "unverified"
    if not digest.startswith(expected.lower()):
        raise ChecksumError(
            f"{path}: sha256 {digest} does not match the published checksum "
            f"{expected} of '{name}' ({asset.filename}); the file is corrupt or a different "
            f"release. Get the official file: {asset.url}"
        )
    return digest, "verified"


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a tensor state dict safely (safetensors, or torch.load with ``weights_only=True``).

    Nested checkpoints (``{"state_dict": ...}``) are unwrapped and a DataParallel
    ``module.`` prefix is removed, so official releases load as they are.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable/unsafe file ends up here with the path named
        raise CorruptWeightsError(
            f"{path}: cannot be read as a weights file ({type(err).__name__}: {err}). "
            "It may be truncated or not a PyTorch/safetensors file; download it again."
        ) from err
    for key in ("state_dict", "model", "params"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptWeightsError(f"{path}: does not hold a mapping of names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


# How ``add`` checks a file of each ``WeightsAsset.file_format`` before installing it (raises
# CorruptWeightsError). Readers of other formats register here (weights/dlib_dnn.py adds "dlib").
FILE_CHECKS: dict[str, Callable[[Path], object]] = {"state_dict": load_state_dict}


def load_asset_state_dict(name: str, purpose: str | None = None) -> dict[str, torch.Tensor]:
    """State dict of an installed asset (raises :class:`MissingWeightsError` when absent)."""
    return load_state_dict(require(name, purpose))


def describe_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], shown: int = 5) -> str:
    """A short account of how ``state`` differs from a network's ``expected`` state dict.

    At most ``shown`` keys of each kind (missing, unexpected, wrong shape) and their count,
    instead of PyTorch's message listing every key (dozens of lines for a whole network).
    Empty when they match. BatchNorm ``num_batches_tracked`` counters never count as missing.
    """
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape)
    )
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            listed = ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")
            problems.append(f"{label} keys: {listed}")
    return "; ".join(problems)


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error that names the file.

    Raises:
        CorruptWeightsError: missing, unexpected or wrongly shaped keys (the file is not the
            asset its name says).

    BatchNorm ``num_batches_tracked`` counters may be absent (files saved by PyTorch < 0.4.1);
    ``load_state_dict`` fills them in, so they do not count as missing.
    """
    problems = describe_mismatch(module.state_dict(), state)
    if problems:
        raise CorruptWeightsError(
            f"{path}: does not hold the '{name}' weights ({get_asset(name).description}); "
            f"{problems}. Install the official file ({get_asset(name).url}) with "
            f"`talkinghead weights add {name} FILE --force`."
        )
    module.load_state_dict(state, strict=True)


def load_into(module: torch.nn.Module, name: str, purpose: str | None = None) -> torch.nn.Module:
    """Load the installed asset ``name`` into ``module`` strictly and return the module."""
    path = require(name, purpose)
    load_strict(module, load_state_dict(path), path, name)
    return module


def _checksum_record() -> Path:
    return weights_dir() / "checksums.json"


def _record_checksum(name: str, digest: str, status: str) -> None:
    record_path = _checksum_record()
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    record[name] = {"sha256": digest, "status": status, "file": get_asset(name).filename}
    atomic_write_text(record_path, json.dumps(record, indent=2, sort_keys=True))


def recorded_checksum(name: str) -> dict | None:
    """The sha256 recorded when asset ``name`` was installed, if any."""
    record_path = _checksum_record()
    if not record_path.is_file():
        return None
    return json.loads(record_path.read_text()).get(name)


def add(
    name: str, source: str | Path, *, force: bool = False, check: Callable[[], object] | None = None
) -> tuple[Path, str]:
    """Verify a file a user obtained and install it into the cache.

    The file must match the published checksum (when there is one) and must load as a
    tensor state dict. It is copied to a temporary name and renamed, so an interrupted
    copy never leaves a partial file under the real name.

    Args:
        name: the asset (see ``talkinghead weights list``).
        source: the file to install.
        force: replace an installed file with other contents.
        check: called once the file is in place, e.g. building the asset's network from it
            (strict key and shape check). When it raises, the previous state is restored (the
            earlier file, or none) and :class:`CorruptWeightsError` names the source file.

    Returns:
        ``(installed path, verification status)``.
    """
    source = Path(source)
    if not source.is_file():
        raise InputNotFoundError(f"{source}: no such file to install as '{name}'")
    digest, status = verify(name, source)
    FILE_CHECKS[get_asset(name).file_format](source)  # refuse files that cannot be read safely
    target = asset_path(name)
    if target.exists() and not force:
        if sha256_of(target) == digest:
            _record_checksum(name, digest, status)
            return target, status
        raise OutputExistsError(f"{target} already exists with other contents; pass --force to replace it")
    backup = None
    if check is not None and target.exists():
        backup = target.with_name(f".{target.name}.before-add")
        shutil.copyfile(target, backup)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    if check is not None:
        try:
            check()
        except WeightsError as err:
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
            # The loader's message names the installed copy; name the file the user gave.
            reason = str(err).splitlines()[0].replace(str(target), str(source))
            raise CorruptWeightsError(
                f"{reason} (checked by loading it into the '{name}' network: nothing was installed)"
            ) from err
        finally:
            if backup is not None and backup.exists():
                backup.unlink()
    _record_checksum(name, digest, status)
    return target, status


def download(name: str, *, timeout: float = 30.0, progress: bool = True) -> tuple[Path, str]:
    """Download asset ``name`` from its official address, verify it and install it."""
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    asset = get_asset(name)
    if not asset.direct_download:
        raise WeightsError(
            f"'{name}' has no direct download address: {how_to_get(name)}."
        )
    target_dir = weights_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f".{asset.filename}.", suffix=".part")
    try:
        try:
            with urllib.request.urlopen(asset.url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise WeightsError(
                f"could not download '{name}' from {asset.url} ({err}). Without internet access, "
                f"copy the file from another machine and run `talkinghead weights add {name} FILE`."
            ) from err
        return add(name, tmp, force=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
