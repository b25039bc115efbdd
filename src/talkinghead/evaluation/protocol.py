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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from talkinghead.data.dataset_format import PreparedDataset
from talkinghead.data.episodes import EpisodeDataset
from talkinghead.evaluation.baselines import BASELINES
from talkinghead.errors import InputNotFoundError, InvalidInputError
from talkinghead.evaluation.coverage import check_k_coverage, check_report_folder, input_frame_counts
from talkinghead.evaluation.cross_motion import cross_motion, metric_entries
from talkinghead.evaluation.methods import BaselineMethod, TrainedMethod
from talkinghead.evaluation.metric_suite import MetricSuite
from talkinghead.evaluation.metrics import METRICS
from talkinghead.evaluation.metrics.motion_transfer import CROSS_METRICS
from talkinghead.evaluation.metrics.nmke import normalized_mean_error
from talkinghead.evaluation.options import EvaluateOptions
from talkinghead.evaluation.test_set import TestVideo, load_test_video
from talkinghead.inference.motion import MotionTransfer
from talkinghead.inference.source import ibug68_points
from talkinghead.utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

RESULTS_FORMAT = 1
BUCKETS = ("low", "medium", "high")


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


def _run_list(model: Any, options: EvaluateOptions) -> list[dict]:
    settings = ["baseline"] if model.baseline else ["meta-learned"] + (["fine-tuned"] if options.finetune_steps else [])
    return [{"method": model.name, "label": model.label, "setting": s, "k": k} for s in settings for k in options.ks]


def _run_id(run: dict) -> str:
    return f"{run['method']}-{run['setting']}-k{run['k']}"


def _safe(key: str) -> str:
    return key.replace("/", "__").replace(" ", "_")


def _method(method: str, prepared: PreparedDataset, options: EvaluateOptions) -> Any:
    """A reference method by name, or the trained model at the path ``method``."""
    if method in BASELINES:
        return BaselineMethod(method, options.output_size or prepared.size)
    if not Path(method).exists():
        raise InputNotFoundError(
            f"{method}: no such checkpoint; give a release folder, checkpoint file or run folder, or a "
            f"reference method: {', '.join(BASELINES)}"
        )
    return TrainedMethod(method, options)


def _cache_signature(settings: dict[str, Any], suite: MetricSuite) -> str:
    """The key of the cached per-(run, video) results these settings may reuse.

    What a cached result depends on: not K (part of the run id), not the wording of skip
    reasons, but which metrics ran and everything that changes frames or values.
    """
    affecting = ("method", "dataset_manifest_sha256", "checkpoint_sha256", "seed", "finetune_steps", "cross",
                 "split", "holdout_fraction", "targets_per_video", "landmark_backend", "id_network", "image_size",
                 "mouth")
    signature_source = {k: settings[k] for k in affecting} | {"metrics": suite.names()}
    return hashlib.sha256(json.dumps(signature_source, sort_keys=True).encode()).hexdigest()[:16]


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
    check_report_folder(output, {"dataset": dataset_root, "checkpoint": None if method in BASELINES else method})
    prepared = PreparedDataset(dataset_root)
    is_baseline = method in BASELINES
    model = _method(method, prepared, options)
    size = model.size
    split = options.split if options.split in {r.split for r in prepared.records} else None
    if options.split and split is None:
        log.warning("%s has no split %r; evaluating every clip", dataset_root, options.split)
    # clips are read directly (load_test_video): the model draws its own landmark images
    dataset = EpisodeDataset(prepared, split=split, k=1, size=size, landmark_style=None, min_frames=2,
                             holdout_fraction=options.holdout_fraction)
    indices = list(range(len(dataset)))[: options.max_videos or None]
    warnings = check_k_coverage(input_frame_counts(dataset, indices), options.ks)  # before any compute
    for warning in warnings:
        log.warning("%s", warning)
    if options.cross and len({dataset.records[i].identity for i in indices}) < 2:
        raise InvalidInputError("cross-identity evaluation needs videos of at least two identities")
    suite = MetricSuite(options)
    runs = _run_list(model, options)
    settings = {
        "method": method, "dataset": str(dataset_root),
        "dataset_manifest_sha256": _sha256([prepared.root / "manifest.csv"]),
        "checkpoint": None if is_baseline else str(method),
        "checkpoint_sha256": None if is_baseline else checkpoint_hash(Path(method)),
        "seed": options.seed, "ks": options.ks, "finetune_steps": options.finetune_steps, "cross": options.cross,
        "split": split, "holdout_fraction": options.holdout_fraction, "targets_per_video": options.targets_per_video,
        "landmark_backend": options.landmark_backend, "id_network": options.id_network,
        "metric_networks": suite.networks(), "skipped_metrics": suite.skipped, "image_size": size,
        "mouth": options.mouth,
    }
    signature = _cache_signature(settings, suite)
    cache = output / "cache"
    per_run: dict[str, list[dict]] = {_run_id(r): [] for r in runs}
    fid_features: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {_run_id(r): [] for r in runs}
    qualitative: list[dict] = []
    qual_keys = {dataset.records[i].key for i in indices[: options.qualitative_videos]}
    bar = tqdm(total=len(indices) * len(runs), unit="run", desc="evaluate", disable=not progress, dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            futures = [pool.submit(load_test_video, dataset, i, size, options) for i in indices[: options.workers + 1]]
            for position, index in enumerate(indices):
                video = futures[position].result()
                futures[position] = None  # free the frames once used
                ahead = position + options.workers + 1
                if ahead < len(indices):
                    futures.append(pool.submit(load_test_video, dataset, indices[ahead], size, options))
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
    results = _assemble(runs, per_run, fid_features, suite, settings, qualitative)
    results["warnings"] = results.get("warnings", []) + warnings
    return results


def _driver_for(dataset: EpisodeDataset, indices: list[int], position: int, size: int,
                options: EvaluateOptions) -> TestVideo:
    """The next video (cyclically) of another identity drives this one."""
    identity = dataset.records[indices[position]].identity
    for step in range(1, len(indices)):
        candidate = indices[(position + step) % len(indices)]
        if dataset.records[candidate].identity != identity:
            return load_test_video(dataset, candidate, size, options)
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
        dense = video.dense[targets] if len(video.dense) else None
        landmark_images = model.landmark_images(video, targets)
        truth = np.stack([video.images[t] for t in targets])
    else:
        points68, landmark_images, dense = _retarget(model, video, shots, driver)
        truth = np.stack([driver.images[t] for t in driver.targets.tolist()])
        targets = driver.targets.tolist()
    outputs = model.generate(state, landmark_images, points68, dense)
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
    if driver is not None:
        result["cross_motion"] = cross_motion(video, shots, driver, outputs)
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


def _retarget(model, video: TestVideo, shots: np.ndarray, driver: TestVideo) -> tuple[np.ndarray, Any, np.ndarray | None]:
    """The driver's hold-out motion applied to the first shot's landmarks (relative motion).

    Returns the target iBUG-68 points, the model's landmark images and the dense target points
    (None without dense landmarks).
    """
    rasterizer_dense = getattr(model, "rasterizer", None) is not None and model.rasterizer.landmarks == "dense"
    use_dense = rasterizer_dense and video.dense.shape[1] >= 468
    base = video.dense[shots[0]] if use_dense else video.landmarks68[shots[0]].astype(np.float32)
    drv = driver.dense if use_dense else driver.landmarks68.astype(np.float32)
    reference = drv[driver.input_frames[0]] if len(driver.input_frames) else drv[driver.targets[0]]
    transfer = MotionTransfer("relative", size=model.size, source_points=base, reference_points=reference)
    retargeted = np.stack([transfer(drv[t]) for t in driver.targets.tolist()])
    if use_dense:
        points68 = np.stack([ibug68_points(p) for p in retargeted]).astype(np.float64)
    else:
        points68 = retargeted[..., :2].astype(np.float64)
    images = model.landmark_images(video, [], points=retargeted if use_dense else points68) if hasattr(
        model, "rasterizer") else None
    return points68, images, (retargeted if use_dense else None)


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
        if settings["cross"]:
            summary.update({n: _mean([(v.get("cross_motion") or {}).get(n) for v in videos]) for n in CROSS_METRICS})
        summary["num_frames"] = len(frames)
        summary["num_videos"] = sum(1 for v in videos if v.get("frames"))
        buckets = None
        if edges is not None and "id_sim" in names:
            buckets = {}
            for bucket in BUCKETS:
                values = [f.get("id_sim") for f in frames if f.get("pose_bucket") == bucket]
                buckets[bucket] = {"id_sim": _mean(values), "count": len(values)}
        out_runs.append({
            **run, "videos": videos, "summary": summary, "pose_buckets": buckets,
            "qualitative": [q for v in videos for q in v.pop("qualitative", [])],
        })
    metrics = {n: {"higher_is_better": METRICS[n].higher_is_better, "description": suite.networks().get(n, "")}
               for n in names}
    if settings["cross"]:
        for n, text in (("id_sim", "to the source person's shots"), ("nmke", "to the retargeted driver landmarks")):
            if n in metrics:
                metrics[n]["description"] += f" (cross-identity: {text})"
        metrics.update(metric_entries())
    return {
        "format": RESULTS_FORMAT, "settings": settings, "metrics": metrics, "pose_bucket_edges": edges,
        "runs": out_runs, "qualitative_inputs": qualitative,
    }


__all__ = ["EvaluateOptions", "checkpoint_hash", "evaluate"]
