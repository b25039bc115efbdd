"""The FSTH / LSR evaluation protocol (LSR §4, appendix A.2-A.4; FSTH §4).

For every test video, the K-shot inputs come from its *input* frames and the metrics are
computed on its *hold-out* frames; the two never overlap. Clips of an ``fsth-eval``
layout carry these roles; for other prepared test sets the tail ``holdout_fraction`` of
each clip is the hold-out part. Shots are a seeded permutation of the input frames per
video (the K = 1 shot is one of the K = 4 shots, and so on), so runs are deterministic and
comparable across K.

Self-reenactment (default): each hold-out frame is reproduced from its own landmarks and
compared with the real frame (PSNR, SSIM, LPIPS, ID-SIM, NMKE, FID, E_warp). Cross mode
(``cross=True``): each video's person is driven by another identity's hold-out frames,
retargeted with relative motion; there is no ground truth, so ID-SIM is measured against
the source shots and NMKE against the retargeted landmarks the model was asked to draw.

Pose breakdown (LSR A.2): the pose difference of a (source, target) pair is the NMKE
between their ground-truth landmarks (the first shot against the target); the tertiles of
the smallest K's pairs split pairs into low / medium / high, and ID-SIM is reported per bucket.

Per (run, video) results are cached under ``OUTPUT/cache`` with the settings they were
computed with, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.data.episodes import EpisodeDataset
from talkinghead.data.rasterize import get_rasterizer, image_to_tensor
from talkinghead.evaluation.baselines import BASELINES
from talkinghead.evaluation.metrics import METRICS, MetricUnavailable, build_metric
from talkinghead.evaluation.metrics.nmke import normalized_mean_error
from talkinghead.inference.motion import MotionTransfer
from talkinghead.utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

RESULTS_FORMAT = 1
DEFAULT_METRICS = ("psnr", "ssim", "lpips", "id_sim", "nmke", "fid", "warp_error")
BUCKETS = ("low", "medium", "high")


@dataclass
class EvaluateOptions:
    """What ``talkinghead evaluate`` measures.

    Args:
        ks: numbers of input shots (LSR: 1, 4, 8, 32).
        finetune_steps: also evaluate subject fine-tuned models (N steps on the K shots; 0 = off).
        cross: cross-identity reenactment instead of self-reenactment.
        split: dataset split to evaluate (None = every clip).
        holdout_fraction: hold-out tail of clips without stored frame roles.
        max_videos: evaluate only the first N videos.
        targets_per_video: hold-out frames evaluated per video, evenly spaced (0 = all).
        metrics: metric names; those whose networks are missing are skipped and reported.
        id_network: identity network of ID-SIM: ``dlib`` (offline), ``vggface`` or ``arcface``.
        landmark_backend: detector of NMKE.
        seed: seed of the shot selection.
        device: ``auto``, ``cpu`` or ``cuda``.
        batch_size: frames synthesised per call.
        workers: threads that load the next videos while one is evaluated.
        qualitative_videos: videos whose first hold-out frame goes into the qualitative grid.
    """

    ks: list[int] = field(default_factory=lambda: [1, 4])
    finetune_steps: int = 0
    cross: bool = False
    split: str | None = "test"
    holdout_fraction: float = 0.5
    max_videos: int | None = None
    targets_per_video: int = 8
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    id_network: str = "dlib"
    landmark_backend: str = "mediapipe"
    seed: int = 0
    device: str = "auto"
    batch_size: int = 8
    workers: int = 2
    qualitative_videos: int = 4

    def __post_init__(self):
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive numbers of shots, got {self.ks}")
        self.ks = sorted(set(int(k) for k in self.ks))
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
        if self.finetune_steps < 0 or self.targets_per_video < 0 or self.batch_size < 1:
            raise ValueError("finetune_steps and targets_per_video must be >= 0 and batch_size >= 1")


# ----------------------------------------------------------------------------- test videos


@dataclass
class TestVideo:
    """One test clip: its frames (uint8, at the evaluation size) and ground-truth landmarks."""

    key: str
    identity: str
    index: int
    input_frames: np.ndarray  # (n,) frame numbers the shots are drawn from
    targets: np.ndarray  # (m,) hold-out frame numbers evaluated
    consecutive: bool  # hold-out targets are consecutive frames of the source video (E_warp)
    images: dict[int, np.ndarray]  # frame -> (s, s, 3) uint8
    landmarks68: np.ndarray  # (num_frames, 68, 2) at the evaluation size
    dense: np.ndarray  # (num_frames, N, 3) at the evaluation size


def _evenly(frames: np.ndarray, count: int) -> np.ndarray:
    if count == 0 or len(frames) <= count:
        return frames
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(np.int64)]


def shot_order(video_key: str, input_frames: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of a video's input frames: the K shots are its first K entries."""
    rng = np.random.default_rng([seed, zlib.crc32(video_key.encode())])
    return input_frames[rng.permutation(len(input_frames))]


def _load_video(dataset: EpisodeDataset, index: int, size: int, options: EvaluateOptions) -> TestVideo:
    record = dataset.records[index]
    clip = dataset.clip(index)
    inputs = dataset.input_frames(index)
    held = dataset.holdout_frames(index)
    inputs = np.setdiff1d(inputs, held)  # never condition on a hold-out frame
    targets = _evenly(held, options.targets_per_video)
    order = shot_order(record.key, inputs, options.seed)
    needed = set(targets.tolist()) | set(order[: max(options.ks)].tolist())
    images = {}
    for frame in sorted(needed):
        image = clip.frame(frame)
        if image.shape[0] != size:
            interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_CUBIC
            image = cv2.resize(image, (size, size), interpolation=interpolation)
        images[frame] = image
    scale = size / dataset.dataset.size
    source_indices = clip.meta.get("frame_indices") or list(range(record.num_frames))
    chosen = [source_indices[t] for t in targets.tolist()]
    consecutive = len(chosen) > 1 and all(b - a == 1 for a, b in zip(chosen, chosen[1:]))
    return TestVideo(
        key=record.key, identity=record.identity, index=index, input_frames=order, targets=targets,
        consecutive=consecutive, images=images,
        landmarks68=np.asarray(clip.landmarks68, np.float64)[..., :2] * scale,
        dense=np.asarray(clip.dense_landmarks, np.float32) * scale,
    )


# ----------------------------------------------------------------------------- methods


class LSRMethod:
    """A trained LSR model: encode the shots (optionally fine-tune on them), synthesise targets."""

    label = "LSR"

    def __init__(self, checkpoint: str | Path, options: EvaluateOptions):
        from talkinghead.inference.pipeline import AnimationPipeline, resolve_device
        from talkinghead.models.lsr_pretrained import load_lsr_weights

        self.pretrained = load_lsr_weights(checkpoint)
        self.device = resolve_device(options.device)
        self.pipeline = AnimationPipeline.from_pretrained(checkpoint, device=self.device)
        self.config = self.pipeline.config
        self.size = self.config.image_size
        self.rasterizer = get_rasterizer(self.config.landmark_style)
        self.options = options

    def landmark_images(self, video: TestVideo, frames: list[int], points: np.ndarray | None = None) -> torch.Tensor:
        """(n, c, s, s) landmark images of ground-truth frames (or of given points)."""
        if points is None:
            source = video.landmarks68 if self.rasterizer.landmarks == "ibug68" else video.dense
            points = source[frames]
        return image_to_tensor(np.stack([self.rasterizer(p, self.size) for p in points]))

    def prepare(self, video: TestVideo, shots: np.ndarray, finetuned: bool) -> Any:
        images = image_to_tensor(np.stack([video.images[f] for f in shots.tolist()]))
        landmarks = self.landmark_images(video, shots.tolist())
        if not finetuned:
            z_layout, z_style = self.pipeline.model.encode(images[None].to(self.device), landmarks[None].to(self.device))
            return self.pipeline.model, z_layout[0], z_style[0]
        from talkinghead.config.lsr import FinetuneConfig
        from talkinghead.data.subject import SubjectFrames
        from talkinghead.models.lsr import LSRModel
        from talkinghead.training.lsr_finetune import finetune_networks

        config = FinetuneConfig(steps=self.options.finetune_steps, perceptual="auto", device=str(self.device.type))
        tuned = finetune_networks(self.pretrained, SubjectFrames(images, landmarks, [str(f) for f in shots]), config)
        model = LSRModel(self.config).to(self.device).eval()
        for name in model.network_names:
            getattr(model, name).load_state_dict(tuned.networks[name].state_dict())
        return model, tuned.z_layout[0].to(self.device), tuned.z_style[0].to(self.device)

    @torch.no_grad()
    def generate(self, state: Any, landmark_images: torch.Tensor, points68: np.ndarray) -> np.ndarray:
        model, z_layout, z_style = state
        out = []
        for start in range(0, len(landmark_images), self.options.batch_size):
            x = landmark_images[start:start + self.options.batch_size].to(self.device)
            b = len(x)
            image = model(x, z_layout[None].expand(b, -1), z_style[None].expand(b, -1)).image.float()
            out.append(image.add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)


class BaselineMethod:
    """A reference method that needs no training (``copy-source``, ``landmark-warp``)."""

    def __init__(self, name: str, size: int):
        self.label = name
        self.function = BASELINES[name]
        self.size = size

    def landmark_images(self, video: TestVideo, frames: list[int], points: np.ndarray | None = None) -> None:
        return None

    def prepare(self, video: TestVideo, shots: np.ndarray, finetuned: bool) -> Any:
        return np.stack([video.images[f] for f in shots.tolist()]), video.landmarks68[shots]

    def generate(self, state: Any, landmark_images: Any, points68: np.ndarray) -> np.ndarray:
        images, points = state
        return np.stack([self.function(images, points, target) for target in points68])


# ----------------------------------------------------------------------------- metrics


class MetricSuite:
    """The metrics that can run here, with ground-truth values cached per video."""

    def __init__(self, options: EvaluateOptions):
        self.frame: dict[str, Any] = {}
        self.video: dict[str, Any] = {}
        self.fid = None
        self.skipped: dict[str, str] = {}
        device = "cuda" if options.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        for name in options.metrics:
            spec = METRICS[name]
            kwargs: dict[str, Any] = {}
            if name in ("lpips", "fid"):
                kwargs["device"] = device
            if name == "id_sim":
                kwargs["network"] = options.id_network
            if name == "nmke":
                kwargs["backend"] = options.landmark_backend
            try:
                metric = build_metric(name, **kwargs)
            except MetricUnavailable as err:
                self.skipped[name] = err.reason
                log.warning("metric %s skipped: %s", name, err.reason)
                continue
            if spec.kind == "frame":
                self.frame[name] = metric
            elif spec.kind == "video":
                self.video[name] = metric
            else:
                self.fid = metric
        self._gt_cache: dict[tuple[str, str], np.ndarray] = {}

    def names(self) -> list[str]:
        order = list(DEFAULT_METRICS)
        ran = set(self.frame) | set(self.video) | ({"fid"} if self.fid is not None else set())
        return [n for n in order if n in ran]

    def networks(self) -> dict[str, str]:
        out = {}
        for name, metric in {**self.frame, **self.video, **({"fid": self.fid} if self.fid else {})}.items():
            out[name] = getattr(metric, "description", None) or METRICS[name].description
        return out

    def _gt(self, kind: str, video: str, images: np.ndarray, compute) -> np.ndarray:
        key = (kind, video)
        if key not in self._gt_cache:
            self._gt_cache = {k: v for k, v in self._gt_cache.items() if k[1] == video}  # one video at a time
            self._gt_cache[key] = compute(images)
        return self._gt_cache[key]

    def per_frame(self, video: str, outputs: np.ndarray, targets: np.ndarray, *, cross: bool = False,
                  reference_embeddings: np.ndarray | None = None, asked68: np.ndarray | None = None) -> dict:
        """Per-frame values of every frame metric (cross mode: ID-SIM to the source, NMKE to the asked pose)."""
        values: dict[str, np.ndarray] = {}
        for name, metric in self.frame.items():
            if cross:
                if name == "id_sim":
                    values[name] = metric.similarity(metric.embed(outputs), reference_embeddings)
                elif name == "nmke":
                    values[name] = normalized_mean_error(metric.landmarks(outputs), asked68)
                continue
            if name == "id_sim":
                gt = self._gt("id_sim", video, targets, metric.embed)
                values[name] = metric(outputs, target_embeddings=gt)
            elif name == "nmke":
                gt = self._gt("nmke", video, targets, metric.landmarks)
                values[name] = metric(outputs, target_landmarks=gt)
            else:
                values[name] = metric(outputs, targets)
        return values

    def fid_features(self, video: str, outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        extractor = self.fid.extractor
        return extractor(outputs).astype(np.float32), self._gt("fid", video, targets, extractor).astype(np.float32)

    def close(self) -> None:
        for metric in [*self.frame.values(), *self.video.values()]:
            if hasattr(metric, "close"):
                metric.close()


# ----------------------------------------------------------------------------- the loop


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def checkpoint_hash(path: Path) -> str:
    """sha256 over a checkpoint file, or over a release folder's weight and config files."""
    path = Path(path)
    if path.is_file():
        return _sha256([path])
    files = [p for p in path.iterdir() if p.suffix in (".safetensors", ".json", ".pt")]
    return _sha256(files) if files else ""


def _finite(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _run_list(method: str, options: EvaluateOptions) -> list[dict]:
    settings = ["baseline"] if method in BASELINES else ["meta-learned"] + (["fine-tuned"] if options.finetune_steps else [])
    return [{"method": "lsr" if method not in BASELINES else method, "setting": s, "k": k}
            for s in settings for k in options.ks]


def _run_id(run: dict) -> str:
    return f"{run['method']}-{run['setting']}-k{run['k']}"


def _safe(key: str) -> str:
    return key.replace("/", "__").replace(" ", "_")


def evaluate(method: str, dataset_root: str | Path, output: str | Path, options: EvaluateOptions | None = None,
             *, progress: bool = True) -> dict:
    """Run the protocol; returns the results dict (see ``evaluation/report.py``) and writes the cache.

    Args:
        method: a checkpoint (release folder, checkpoint file, run folder) or a baseline
            name (``copy-source``, ``landmark-warp``).
        dataset_root: a folder written by ``talkinghead prepare`` (e.g. the ``fsth-eval`` layout).
        output: the report folder (its ``cache/`` makes re-runs resume).
    """
    options = options or EvaluateOptions()
    output = Path(output)
    prepared = PreparedDataset(dataset_root)
    is_baseline = method in BASELINES
    if is_baseline:
        model: Any = BaselineMethod(method, prepared.size)
    else:
        if not Path(method).exists():
            raise FileNotFoundError(
                f"{method}: no such checkpoint; give a release folder, checkpoint file or run folder, or a "
                f"reference method: {', '.join(BASELINES)}"
            )
        model = LSRMethod(method, options)
    size = model.size
    split = options.split if options.split in {r.split for r in prepared.records} else None
    if options.split and split is None:
        log.warning("%s has no split %r; evaluating every clip", dataset_root, options.split)
    dataset = EpisodeDataset(prepared, split=split, k=1, size=size, min_frames=2,
                             holdout_fraction=options.holdout_fraction)
    indices = list(range(len(dataset)))[: options.max_videos or None]
    if options.cross and len({dataset.records[i].identity for i in indices}) < 2:
        raise ValueError("cross-identity evaluation needs videos of at least two identities")
    suite = MetricSuite(options)
    runs = _run_list(method, options)
    settings = {
        "method": method, "dataset": str(dataset_root),
        "dataset_manifest_sha256": _sha256([prepared.root / "manifest.csv"]),
        "checkpoint": None if is_baseline else str(method),
        "checkpoint_sha256": None if is_baseline else checkpoint_hash(Path(method)),
        "seed": options.seed, "ks": options.ks, "finetune_steps": options.finetune_steps, "cross": options.cross,
        "split": split, "holdout_fraction": options.holdout_fraction, "targets_per_video": options.targets_per_video,
        "landmark_backend": options.landmark_backend, "id_network": options.id_network,
        "metric_networks": suite.networks(), "skipped_metrics": suite.skipped, "image_size": size,
    }
    # What a cached (run, video) result depends on: not K (part of the run id), not the wording
    # of skip reasons, but which metrics ran and everything that changes frames or values.
    affecting = ("method", "dataset_manifest_sha256", "checkpoint_sha256", "seed", "finetune_steps", "cross",
                 "split", "holdout_fraction", "targets_per_video", "landmark_backend", "id_network", "image_size")
    signature_source = {k: settings[k] for k in affecting} | {"metrics": suite.names()}
    signature = hashlib.sha256(json.dumps(signature_source, sort_keys=True).encode()).hexdigest()[:16]
    cache = output / "cache"
    per_run: dict[str, list[dict]] = {_run_id(r): [] for r in runs}
    fid_features: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {_run_id(r): [] for r in runs}
    qualitative: list[dict] = []
    qual_keys = {dataset.records[i].key for i in indices[: options.qualitative_videos]}
    bar = tqdm(total=len(indices) * len(runs), unit="run", desc="evaluate", disable=not progress, dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            futures = [pool.submit(_load_video, dataset, i, size, options) for i in indices[: options.workers + 1]]
            for position, index in enumerate(indices):
                video = futures[position].result()
                futures[position] = None  # free the frames once used
                ahead = position + options.workers + 1
                if ahead < len(indices):
                    futures.append(pool.submit(_load_video, dataset, indices[ahead], size, options))
                driver = _driver_for(dataset, indices, position, size, options) if options.cross else None
                for run in runs:
                    entry = _evaluate_run(model, suite, video, run, options, cache / _run_id(run), signature,
                                          output, driver, video.key in qual_keys, qualitative)
                    per_run[_run_id(run)].append(entry["result"])
                    if entry.get("fid") is not None:
                        fid_features[_run_id(run)].append(entry["fid"])
                    bar.update(1)
    finally:
        bar.close()
        suite.close()
    return _assemble(runs, per_run, fid_features, suite, settings, qualitative)


def _driver_for(dataset: EpisodeDataset, indices: list[int], position: int, size: int,
                options: EvaluateOptions) -> TestVideo:
    """The next video (cyclically) of another identity drives this one."""
    identity = dataset.records[indices[position]].identity
    for step in range(1, len(indices)):
        candidate = indices[(position + step) % len(indices)]
        if dataset.records[candidate].identity != identity:
            return _load_video(dataset, candidate, size, options)
    raise ValueError("no video of another identity to drive with")


def _evaluate_run(model, suite: MetricSuite, video: TestVideo, run: dict, options: EvaluateOptions,
                  cache_dir: Path, signature: str, output: Path, driver: TestVideo | None,
                  keep_qualitative: bool, qualitative: list[dict]) -> dict:
    k, finetuned = run["k"], run["setting"] == "fine-tuned"
    cache_file = cache_dir / f"{_safe(video.key)}.json"
    features_file = cache_dir / f"{_safe(video.key)}.fid.npz"
    if cache_file.is_file():
        cached = json.loads(cache_file.read_text())
        if cached.get("signature") == signature:
            fid = None
            if features_file.is_file():
                with np.load(features_file) as data:
                    fid = (data["outputs"], data["targets"])
            return {"result": cached["result"], "fid": fid}
    result: dict[str, Any] = {"video": video.key, "identity": video.identity}
    if len(video.input_frames) < k:
        result.update(frames=[], warp_error=None,
                      skipped=f"{len(video.input_frames)} input frames, fewer than K = {k}")
        return {"result": result, "fid": None}
    shots = np.sort(video.input_frames[:k])
    assert not set(shots.tolist()) & set(video.targets.tolist()), "a hold-out frame among the shots"
    result["source_frames"] = shots.tolist()
    state = model.prepare(video, shots, finetuned)
    targets = video.targets.tolist()
    if driver is None:
        points68 = video.landmarks68[targets]
        landmark_images = model.landmark_images(video, targets)
        truth = np.stack([video.images[t] for t in targets])
    else:
        points68, landmark_images = _retarget(model, video, shots, driver)
        truth = np.stack([driver.images[t] for t in driver.targets.tolist()])
        targets = driver.targets.tolist()
    outputs = model.generate(state, landmark_images, points68)
    reference = None
    if driver is not None and "id_sim" in suite.frame:
        metric = suite.frame["id_sim"]
        emb = metric.embed(np.stack([video.images[s] for s in shots.tolist()]))
        reference = np.repeat(np.nanmean(emb, axis=0, keepdims=True), len(outputs), axis=0)
    values = suite.per_frame(video.key if driver is None else f"{video.key}->{driver.key}", outputs, truth,
                             cross=driver is not None, reference_embeddings=reference, asked68=points68)
    pose = normalized_mean_error(np.repeat(video.landmarks68[shots[:1]], len(points68), axis=0), points68)
    frames = []
    for i, frame in enumerate(targets):
        row = {"frame": int(frame), **{name: _finite(v)[i] for name, v in values.items()}}
        row["pose_difference"] = _finite(pose)[i]
        frames.append(row)
    result["frames"] = frames
    warp = None
    if "warp_error" in suite.video and driver is None and video.consecutive and len(outputs) > 1:
        warp = _mean(_finite(suite.video["warp_error"](outputs, reference=truth)))
    result["warp_error"] = warp
    fid = suite.fid_features(video.key, outputs, truth) if suite.fid is not None and driver is None else None
    if keep_qualitative and frames:
        result["qualitative"] = _save_qualitative(output, run, video, shots, targets[0], outputs[0], truth[0],
                                                  qualitative)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if fid is not None:
        np.savez(features_file, outputs=fid[0], targets=fid[1])
    atomic_write_json(cache_file, {"signature": signature, "result": result})
    return {"result": result, "fid": fid}


def _retarget(model, video: TestVideo, shots: np.ndarray, driver: TestVideo) -> tuple[np.ndarray, Any]:
    """The driver's hold-out motion applied to the first shot's landmarks (relative motion)."""
    rasterizer_dense = getattr(model, "rasterizer", None) is not None and model.rasterizer.landmarks == "dense"
    use_dense = rasterizer_dense and video.dense.shape[1] >= 468
    base = video.dense[shots[0]] if use_dense else video.landmarks68[shots[0]].astype(np.float32)
    drv = driver.dense if use_dense else driver.landmarks68.astype(np.float32)
    reference = drv[driver.input_frames[0]] if len(driver.input_frames) else drv[driver.targets[0]]
    transfer = MotionTransfer("relative", size=model.size, source_points=base, reference_points=reference)
    retargeted = np.stack([transfer(drv[t]) for t in driver.targets.tolist()])
    if use_dense:
        from talkinghead.data.landmarks.ibug68 import dense_to_ibug68

        points68 = np.stack([dense_to_ibug68(p) for p in retargeted]).astype(np.float64)
    else:
        points68 = retargeted[..., :2].astype(np.float64)
    images = model.landmark_images(video, [], points=retargeted if use_dense else points68) if hasattr(
        model, "rasterizer") else None
    return points68, images


def _save_qualitative(output: Path, run: dict, video: TestVideo, shots: np.ndarray, frame: int,
                      image: np.ndarray, truth: np.ndarray, qualitative: list[dict]) -> list[dict]:
    def write(relative: str, rgb: np.ndarray) -> str:
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return relative

    name = f"{_safe(video.key)}_{frame:05d}.png"
    if not any(q["video"] == video.key and q["frame"] == frame for q in qualitative):
        qualitative.append({
            "video": video.key, "frame": int(frame),
            "source": write(f"qualitative/sources/{name}", video.images[int(shots[0])]),
            "ground_truth": write(f"qualitative/gt/{name}", truth),
        })
    return [{"video": video.key, "frame": int(frame), "output": write(f"qualitative/{_run_id(run)}/{name}", image)}]


def _assemble(runs, per_run, fid_features, suite: MetricSuite, settings: dict, qualitative: list[dict]) -> dict:
    names = suite.names()
    smallest_k = min(r["k"] for r in runs)
    poses = [f["pose_difference"] for r in runs if r["k"] == smallest_k for v in per_run[_run_id(r)]
             for f in v.get("frames", []) if f.get("pose_difference") is not None]
    edges = [float(np.quantile(poses, 1 / 3)), float(np.quantile(poses, 2 / 3))] if len(poses) >= 3 else None
    out_runs = []
    for run in runs:
        videos = per_run[_run_id(run)]
        frames = [f for v in videos for f in v.get("frames", [])]
        for f in frames:
            p = f.get("pose_difference")
            f["pose_bucket"] = None if edges is None or p is None else BUCKETS[int(np.searchsorted(edges, p, "right"))]
        summary: dict[str, Any] = {n: _mean([f.get(n) for f in frames]) for n in names if METRICS[n].kind == "frame"}
        if "warp_error" in names:
            summary["warp_error"] = _mean([v.get("warp_error") for v in videos])
        if "fid" in names:
            feats = fid_features[_run_id(run)]
            summary["fid"] = None
            if feats and sum(len(a) for a, _ in feats) >= 2:
                from talkinghead.evaluation.metrics.fid import fid_from_features

                summary["fid"] = float(fid_from_features(np.concatenate([a for a, _ in feats]),
                                                         np.concatenate([b for _, b in feats])))
        summary["num_frames"] = len(frames)
        summary["num_videos"] = sum(1 for v in videos if v.get("frames"))
        buckets = None
        if edges is not None and "id_sim" in names:
            buckets = {}
            for bucket in BUCKETS:
                values = [f.get("id_sim") for f in frames if f.get("pose_bucket") == bucket]
                buckets[bucket] = {"id_sim": _mean(values), "count": len(values)}
        label = "LSR" if run["method"] == "lsr" else run["method"]
        out_runs.append({
            **run, "label": label, "videos": videos, "summary": summary, "pose_buckets": buckets,
            "qualitative": [q for v in videos for q in v.pop("qualitative", [])],
        })
    metrics = {n: {"higher_is_better": METRICS[n].higher_is_better, "description": suite.networks().get(n, "")}
               for n in names}
    if settings["cross"]:
        for n, text in (("id_sim", "to the source person's shots"), ("nmke", "to the retargeted driver landmarks")):
            if n in metrics:
                metrics[n]["description"] += f" (cross-identity: {text})"
    return {
        "format": RESULTS_FORMAT, "settings": settings, "metrics": metrics, "pose_bucket_edges": edges,
        "runs": out_runs, "qualitative_inputs": qualitative,
    }


__all__ = ["EvaluateOptions", "evaluate", "shot_order", "checkpoint_hash", "asdict"]
