"""MetaPortrait Fig. 7: held-out quality against fine-tuning steps, meta-learned initialisation vs plain base model.

    talkinghead train configs/metaportrait/meta_demo.yaml data.root=/work/data/mp128 --run-dir runs/mp_meta
    python benchmarks/personalization.py --meta runs/mp_meta/release --base models/demo \\
        --data /work/data/mp128 --out bench_out/personalization

For every held-out identity (the ``test`` split of a prepared dataset; one clip each) the
subject frames are ``--support`` frames spread over the first ``--heldout-from`` fraction of
the clip and the held-out frames are the rest of it. Both models are personalised with
the same fine-tuning code as ``talkinghead finetune`` (one run of the largest step count
in ``--steps``, observed after each listed count), and the held-out frames are
reconstructed by the fine-tuned networks from the subject frames (encoded as inference
does; 0 steps: the model as shipped). Measured per frame: L1 (8-bit, /255), PSNR, ID-SIM (dlib's 128-d
embedding) and LPIPS when its weights are installed.

Writes ``OUT/curve.csv`` (one row per model, step count and identity), ``OUT/curve.png``
(the mean curves) and ``OUT/summary.json``: the plain model's final quality on the primary
metric (LPIPS when installed, else L1), the first step count at which the meta-learned
initialisation reaches it, whether that is within a third of the steps (the paper's
claim), and the seconds per personalisation on this machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from talkinghead.data.episodes import EpisodeDataset
from talkinghead.data.subject import SubjectFrames
from talkinghead.evaluation.metrics.base import MetricUnavailable, build_metric
from talkinghead.models.pretrained import PretrainedModel, load_pretrained
from talkinghead.training.finetune import finetune_config
from talkinghead.training.metaportrait_finetune import finetune_metaportrait_networks, is_meta_learned

MODELS = ("meta", "base")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(n, 3, s, s) in [-1, 1] -> (n, s, s, 3) uint8."""
    return images.float().add(1).mul(127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def identity_clips(data: str, split: str, size: int, style: str, limit: int) -> list[tuple[str, dict]]:
    """(identity, all its first clip's frames) for up to ``limit`` identities of ``split``, sorted by name."""
    dataset = EpisodeDataset(data, split=split, k=1, size=size, landmark_style=style, holdout_fraction=0.0)
    first: dict[str, int] = {}
    for index, record in enumerate(dataset.records):
        first.setdefault(record.identity, index)
    out = []
    for identity in sorted(first)[:limit]:
        index = first[identity]
        n = dataset.records[index].num_frames
        item = dataset.episode(index, np.arange(n - 1), n - 1)  # every frame: the sources, then the last
        images = torch.cat([item["source_images"], item["target_image"][None]])
        landmarks = torch.cat([item["source_landmarks"], item["target_landmarks"][None]])
        out.append((identity, {"images": images, "landmarks": landmarks}))
    return out


def split_frames(n: int, support: int, heldout_from: float) -> tuple[np.ndarray, np.ndarray]:
    """(support frame indices spread over the first part of the clip, the held-out frames after it)."""
    cut = max(support, int(round(n * heldout_from)))
    if cut >= n:
        raise SystemExit(f"a clip of {n} frames leaves no held-out frame after {cut}; lower --heldout-from")
    return np.linspace(0, cut - 1, support).round().astype(int), np.arange(cut, n)


class Metrics:
    """L1, PSNR, ID-SIM and (when installed) LPIPS of uint8 frames, per frame."""

    def __init__(self):
        self.psnr = build_metric("psnr")
        self.id_sim = build_metric("id_sim")
        try:
            self.lpips = build_metric("lpips")
        except MetricUnavailable as err:
            print(f"LPIPS not measured: {err}")
            self.lpips = None

    @property
    def names(self) -> list[str]:
        return ["l1", "psnr", "id_sim"] + (["lpips"] if self.lpips is not None else [])

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        values = {
            "l1": float(np.abs(outputs.astype(np.float64) - targets.astype(np.float64)).mean() / 255.0),
            "psnr": float(np.mean(self.psnr(outputs, targets))),
            "id_sim": float(np.nanmean(self.id_sim(outputs, targets))),
        }
        if self.lpips is not None:
            values["lpips"] = float(np.mean(self.lpips(outputs, targets)))
        return values


@torch.no_grad()
def reconstruct(pretrained: PretrainedModel, networks, subject: SubjectFrames, landmarks: torch.Tensor) -> np.ndarray:
    """The held-out frames: encode the subject frames, then drive with ``landmarks`` (networks None: as shipped)."""
    model = pretrained.inference_model()
    if networks is not None:
        for name in model.network_names:
            getattr(model, name).load_state_dict(networks[name].state_dict())
    state = {k: v[0] for k, v in model.encode(subject.images[None], subject.landmarks[None]).items()}
    return to_uint8(model(landmarks, model.expand_state(state, len(landmarks))))


def curve(pretrained: PretrainedModel, subject: SubjectFrames, steps_list: list[int], values: dict,
          measure) -> tuple[dict[int, dict[str, float]], dict[int, float]]:
    """({steps: measure(networks)}, {steps: seconds of fine-tuning to that step}) in one fine-tuning run."""
    results, seconds = {}, {}
    if 0 in steps_list:
        results[0], seconds[0] = measure(None), 0.0
    wanted = [s for s in steps_list if s > 0]
    if not wanted:
        return results, seconds
    spent = {"measuring": 0.0}
    start = time.perf_counter()

    def observe(done: int, networks) -> None:
        if done in wanted:
            t0 = time.perf_counter()
            seconds[done] = t0 - start - spent["measuring"]  # fine-tuning time only (setup included)
            results[done] = measure(networks)
            spent["measuring"] += time.perf_counter() - t0

    config = finetune_config(pretrained.method, values={**values, "steps": max(wanted)})
    finetune_metaportrait_networks(pretrained, subject, config, observe=observe)
    return results, seconds


def steps_to_reach(curve: dict[int, float], target: float, lower_is_better: bool) -> int | None:
    """The first step count whose value is at least as good as ``target`` (None: never)."""
    for steps in sorted(curve):
        if (curve[steps] <= target) if lower_is_better else (curve[steps] >= target):
            return steps
    return None


def plot(means: dict[str, dict[str, dict[int, float]]], names: list[str], path: Path, title: str) -> None:
    """One panel per metric, a line per model, the step axis in log2 (0 drawn at the left)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6))
    for ax, metric in zip(np.atleast_1d(axes), names):
        for model, style in zip(MODELS, ("o-", "s--")):
            curve = means[model][metric]
            steps = sorted(curve)
            ax.plot([max(s, 0.5) for s in steps], [curve[s] for s in steps], style, label=model)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("fine-tuning steps (0 plotted at 0.5)")
        ax.set_title(metric + (" (lower is better)" if metric in ("l1", "lpips") else " (higher is better)"))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meta", required=True, help="the meta-learned model (release, checkpoint or run folder)")
    parser.add_argument("--base", default="models/demo", help="the plain base model it was meta-trained from")
    parser.add_argument("--data", required=True, help="prepared dataset; its --split identities are held out")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", default="0,1,2,4,8,16,32", help="fine-tuning step counts")
    parser.add_argument("--identities", type=int, default=1000, help="at most this many held-out identities")
    parser.add_argument("--support", type=int, default=8, help="subject frames fine-tuned on")
    parser.add_argument("--heldout-from", type=float, default=0.75, help="held-out frames: after this fraction")
    parser.add_argument("--lr", type=float, default=2e-4, help="fine-tuning Adam lr (the meta stage's inner lr)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--modules", default="refinement_network", help="networks tuned (comma-separated)")
    args = parser.parse_args()

    torch.set_grad_enabled(True)
    steps_list = sorted({int(s) for s in args.steps.split(",")})
    models = {"meta": load_pretrained(args.meta, method="metaportrait"),
              "base": load_pretrained(args.base, method="metaportrait")}
    if not is_meta_learned(models["meta"].info):
        print(f"warning: {args.meta} does not record a meta stage; is it the meta-learned model?")
    config = models["base"].config
    # The same fine-tuning for both, the meta stage's inner loop: no adversarial term (D is not tuned).
    values = {"lr": args.lr, "batch_size": args.batch_size, "modules": args.modules.split(","), "device": "cpu",
              "perceptual": "auto", "seed": 0,
              "loss_weights": {"gan": 0.0, "feature_matching": 0.0}}
    metrics = Metrics()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, seconds = [], {m: {} for m in MODELS}
    clips = identity_clips(args.data, args.split, config.image_size, config.landmark_style, args.identities)
    print(f"{len(clips)} held-out identities of {args.data} ({args.split}); steps {steps_list}")
    for identity, frames in clips:
        support, heldout = split_frames(len(frames["images"]), args.support, args.heldout_from)
        subject = SubjectFrames(frames["images"][support], frames["landmarks"][support],
                                [f"{identity}#{i}" for i in support])
        targets = to_uint8(frames["images"][heldout])
        for model in MODELS:
            pretrained = models[model]

            def measure(networks, pretrained=pretrained):
                return metrics(reconstruct(pretrained, networks, subject, frames["landmarks"][heldout]), targets)

            numbers, took = curve(pretrained, subject, steps_list, values, measure)
            for steps in steps_list:
                row = {"model": model, "steps": steps, "identity": identity, "seconds": took[steps], **numbers[steps]}
                seconds[model].setdefault(steps, []).append(took[steps])
                rows.append(row)
                print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    names = metrics.names
    with open(out / "curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "steps", "identity", "seconds", *names])
        writer.writeheader()
        writer.writerows(rows)
    means = {m: {n: {s: float(np.mean([r[n] for r in rows if r["model"] == m and r["steps"] == s]))
                     for s in steps_list} for n in names} for m in MODELS}
    primary = "lpips" if "lpips" in names else "l1"
    final = steps_list[-1]
    target = means["base"][primary][final]
    reached = steps_to_reach(means["meta"][primary], target, lower_is_better=True)
    # the claim only means something when fine-tuning improves the plain model at all
    testable = means["base"][primary][steps_list[0]] - target > 0
    summary = {
        "meta": str(args.meta), "base": str(args.base), "data": args.data, "split": args.split,
        "identities": [c[0] for c in clips], "steps": steps_list, "primary_metric": primary,
        "base_final": target, "meta_steps_to_base_final": reached,
        # how much fine-tuning improves the plain model at all (the claim is vacuous if it does not)
        "base_gain": means["base"][primary][steps_list[0]] - target,
        "claim_testable": testable,
        "within_a_third": testable and reached is not None and reached <= final / 3,
        "means": means,
        "seconds_per_personalisation": {m: {s: float(np.mean(v)) for s, v in seconds[m].items()} for m in MODELS},
        "device": "cpu", "torch_threads": torch.get_num_threads(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(means, names, out / "curve.png",
         f"held-out quality vs fine-tuning steps, {len(clips)} held-out identities")
    for n in names:
        print(f"{n:7s} " + "  ".join(f"{s}: meta {means['meta'][n][s]:.4f} base {means['base'][n][s]:.4f}"
                                     for s in steps_list))
    when = "never within the steps run" if reached is None else f"after {reached} steps"
    print(f"plain model after {final} steps: {primary} {target:.4f}; the meta-learned init reaches it {when} "
          f"({'within' if summary['within_a_third'] else 'not within'} a third of the steps)")
    print(f"the plain model's own gain from {steps_list[0]} to {final} steps: {summary['base_gain']:+.4f} {primary}"
          + ("" if testable else " (fine-tuning does not improve it: the claim cannot be tested on this data)"))
    per = summary["seconds_per_personalisation"]
    print("seconds per personalisation on this CPU: "
          + ", ".join(f"{s} steps {per['meta'][s]:.2f} s" for s in steps_list if not math.isnan(per['meta'][s])))
    print(f"wrote {out / 'curve.csv'}, {out / 'curve.png'}, {out / 'summary.json'}")


if __name__ == "__main__":
    main()
