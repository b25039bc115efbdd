"""dlib's face descriptor: dlib's C++ one face at a time against the PyTorch port in batches.

    python benchmarks/identity_network.py                          # CPU, batch 32
    python benchmarks/identity_network.py --device cuda --batch-size 128
    python benchmarks/identity_network.py --agreement ../shared/data/real ../shared/data/train_videos

Throughput: the faces are real (frames of a bundled driving video, dlib's five points found
once beforehand); both sides include the face-chip alignment and exclude face detection.
``dlib``: ``compute_face_descriptor(image, shape)`` per face, as the ``dlib`` ID-SIM network
runs. ``dlib-resnet``: :func:`extract_face_chips` + :class:`DlibResNet` on ``--batch-size``
faces at a time. Both figures and their ratio are printed by the same run.

``--agreement DIR ...``: the cosine between the two descriptors of every face found in the
portraits and in ``--frames-per-video`` frames of every video of each folder (min and mean).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from talkinghead.models.dlib_resnet import DlibResNet
from talkinghead.models.face_chip import extract_face_chips

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO / "examples" / "videos" / "liveportrait_d19.mp4"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def dlib_models():
    import dlib
    import face_recognition_models as models

    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(models.pose_predictor_five_point_model_location()),
            dlib.face_recognition_model_v1(models.face_recognition_model_location()))


def frames_of(path: Path, count: int) -> list[np.ndarray]:
    """``count`` RGB frames spread over a video."""
    capture = cv2.VideoCapture(str(path))
    total = max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    frames = []
    for index in np.linspace(0, total - 1, count).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def locate(images, detector, predictor):
    """[(image, dlib shape)] of the largest face of each image that has one."""
    found = []
    for image in images:
        rects = detector(image, 1)
        if rects:
            found.append((image, predictor(image, max(rects, key=lambda r: r.area()))))
    return found


def points_of(shape) -> np.ndarray:
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float32)


def torch_descriptors(network: DlibResNet, faces, device: torch.device, batch_size: int) -> np.ndarray:
    """(n, 128) descriptors of ``faces`` (images of one size), ``batch_size`` at a time."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(faces), batch_size):
            chunk = faces[start:start + batch_size]
            images = torch.from_numpy(np.stack([f[0] for f in chunk])).to(device).permute(0, 3, 1, 2).float()
            points = torch.from_numpy(np.stack([points_of(f[1]) for f in chunk])).to(device)
            out.append(network(extract_face_chips(images, points, uint8_levels=True)).float().cpu().numpy())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return np.concatenate(out)


def throughput(args) -> None:
    detector, predictor, recognizer = dlib_models()
    faces = locate(frames_of(args.video, args.faces), detector, predictor)
    if not faces:
        sys.exit(f"{args.video}: no face found")
    device = torch.device(args.device)
    network = DlibResNet.from_registry().to(device)
    print(f"{len(faces)} faces of {args.video.name} ({faces[0][0].shape[1]}x{faces[0][0].shape[0]}), "
          f"torch threads {torch.get_num_threads()}, device {device}")

    recognizer.compute_face_descriptor(*faces[0])  # warm-up
    start = time.perf_counter()
    theirs = np.array([np.asarray(recognizer.compute_face_descriptor(image, shape)) for image, shape in faces])
    dlib_rate = len(faces) / (time.perf_counter() - start)

    torch_descriptors(network, faces[:args.batch_size], device, args.batch_size)  # warm-up
    start = time.perf_counter()
    ours = torch_descriptors(network, faces, device, args.batch_size)
    torch_rate = len(faces) / (time.perf_counter() - start)
    cosines = (ours * theirs).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    print(f"dlib C++, one at a time:            {dlib_rate:8.1f} faces/s")
    print(f"dlib-resnet (PyTorch), batch {args.batch_size:<4d}:  {torch_rate:8.1f} faces/s")
    print(f"ratio dlib-resnet / dlib:           {torch_rate / dlib_rate:8.2f}x  (cosine vs dlib min {cosines.min():.6f})")


def agreement(args) -> None:
    detector, predictor, recognizer = dlib_models()
    network = DlibResNet.from_registry().to(args.device)
    for folder in args.agreement:
        files = sorted(Path(folder).iterdir())
        images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files
                  if p.suffix.lower() in IMAGE_SUFFIXES]
        videos = [p for p in files if p.suffix.lower() == ".mp4"][:args.max_videos]
        for video in videos:
            images.extend(frames_of(video, args.frames_per_video))
        cosines = []
        for image, shape in locate(images, detector, predictor):
            theirs = np.asarray(recognizer.compute_face_descriptor(image, shape))
            ours = torch_descriptors(network, [(image, shape)], torch.device(args.device), 1)[0]
            cosines.append(float(ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs))))
        cosines = np.array(cosines)
        print(f"{folder}: {len(cosines)} faces ({len(images)} images: portraits + {args.frames_per_video} frames "
              f"of {len(videos)} videos); cosine vs dlib min {cosines.min():.6f} mean {cosines.mean():.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="video whose faces are embedded")
    parser.add_argument("--faces", type=int, default=64, help="frames taken from the video")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--agreement", nargs="+", help="folders whose faces are compared with dlib instead")
    parser.add_argument("--frames-per-video", type=int, default=3)
    parser.add_argument("--max-videos", type=int, default=None)
    args = parser.parse_args()
    if args.agreement:
        agreement(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
