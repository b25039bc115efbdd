"""Convert dlib's face-recognition ResNet (``.dat``) into the safetensors file the package bundles.

MetaPortrait's identity code z_id is this network's 128-d descriptor, so the bundled demo model
cannot run without it. ``face_recognition_models`` ships the network as a 22 MB dlib DNN file
inside a 100 MB source package; the project bundles the same numbers as one safetensors file
(``models/pretrained/dlib_resnet.safetensors``) so that a base install runs offline. The
conversion is lossless: dlib stores float32 values, and the script checks that the written
file gives the same descriptors as the ``.dat`` it came from, bit for bit.

    python3 scripts/convert_dlib_resnet.py [DAT_FILE] [--output models/pretrained/dlib_resnet.safetensors]

Without DAT_FILE the registry's copy is used (``face_recognition_models``, or the file
installed with ``talkinghead weights add dlib_resnet FILE``).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch
from safetensors.torch import save_file

from talkinghead.models.dlib_resnet import DlibResNet
from talkinghead.utils.atomic import atomic_path
from talkinghead.weights.registry import get_asset, require

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dat", type=Path, nargs="?", help="dlib_face_recognition_resnet_model_v1.dat (default: the registry's)")
    parser.add_argument("--output", type=Path, default=REPO / get_asset("dlib_resnet").bundled_file)
    args = parser.parse_args()
    source = args.dat or require("dlib_resnet", "the conversion")
    if source.suffix != ".dat":
        raise SystemExit(f"{source}: expected dlib's .dat file (the registry found the bundled copy; pass the .dat)")
    network = DlibResNet.from_file(source)
    state = {key: value.contiguous() for key, value in network.state_dict().items()}
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as tmp:
        save_file(state, str(tmp), metadata={"source": source.name, "source_sha256": digest})
    converted = DlibResNet.from_file(args.output)
    probe = torch.Generator().manual_seed(0)
    chips = torch.rand(2, 3, 150, 150, generator=probe) * 255
    with torch.inference_mode():
        same = torch.equal(network(chips), converted(chips))
    if not same:
        args.output.unlink()
        raise SystemExit(f"{args.output}: the converted network disagrees with {source}; nothing written")
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB) from {source} (sha256 {digest[:12]}...)")


if __name__ == "__main__":
    main()
