"""LSR Table 2 style comparison: the five LSR ablation variants and FSTH (FF and FT), same data, same steps.

    talkinghead prepare VIDEOS data/abl64 --config configs/prepare/tiny.yaml --frames-per-clip 16 \\
        --split-by identity --test-fraction 0.2
    python benchmarks/ablation.py data/abl64 bench_out/ablation --steps 300 --finetune-steps 20

For every variant it runs ``talkinghead train`` on the ``train`` split with ``--steps`` optimiser
steps in total (split over a variant's stages in the proportion its config gives them), then
``talkinghead evaluate`` on the held-out identities of the ``test`` split (FSTH-FT also
fine-tuned for ``--finetune-steps`` on the K shots, as FSTH §3.3; FSTH-FF feed-forward only),
and ``talkinghead evaluate --compare`` over all results. It writes ``OUT/summary.md``: one row
per variant with the evaluation metrics and the trainer's own held-out L1/PSNR (new frames of
the training identities). The oracle-segmentation upper bound renders from the target's
ground-truth segmentation, which ``evaluate`` does not have, so only its held-out numbers are
reported. Runs already finished in ``OUT`` are reused, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from talkinghead.cli import main
from talkinghead.config import load_config

REPO = Path(__file__).resolve().parents[1]
ABLATIONS = REPO / "configs" / "lsr" / "ablations"


@dataclass(frozen=True)
class Variant:
    """One row of the table.

    Args:
        name: the row label (LSR Table 2's wording).
        config: the training config.
        evaluate: run ``talkinghead evaluate`` on it (False: it cannot animate).
        finetune: also evaluate it fine-tuned on the K shots.
    """

    name: str
    config: Path
    evaluate: bool = True
    finetune: bool = False


VARIANTS = (
    Variant("1 baseline (AdaIN U-Net)", ABLATIONS / "1_baseline_adain.yaml"),
    Variant("2 +SPADE", ABLATIONS / "2_spade.yaml"),
    Variant("3 +learned segmentation", ABLATIONS / "3_learned_segmentation.yaml"),
    Variant("4 +latent layout (LSR)", ABLATIONS / "4_latent_layout.yaml"),
    Variant("5 upper bound (oracle segmentation)", ABLATIONS / "5_oracle_segmentation.yaml", evaluate=False),
    Variant("FSTH-FF", REPO / "configs" / "fsth" / "tiny_ff.yaml"),
    Variant("FSTH-FT", REPO / "configs" / "fsth" / "tiny.yaml", finetune=True),
)


def stage_overrides(config_path: Path, total_steps: int) -> list[str]:
    """``stages.i.steps`` (and scaled warm-up / decay windows) giving ``total_steps`` over the stages."""
    stages = load_config(config_path).stages
    configured = [s.steps for s in stages]
    if any(s is None for s in configured):
        raise SystemExit(f"{config_path}: every stage needs `steps` for a step-matched comparison")
    out = []
    for i, stage in enumerate(stages):
        steps = max(1, round(total_steps * stage.steps / sum(configured)))
        scale = steps / stage.steps
        out += [f"stages.{i}.steps={steps}", f"stages.{i}.warmup_steps={int(stage.warmup_steps * scale)}"]
        if stage.decay_steps is not None:
            out.append(f"stages.{i}.decay_steps={max(1, int(stage.decay_steps * scale))}")
    return out


def held_out(run: Path) -> dict[str, float]:
    """The last held-out numbers the trainer logged (``<stage>/eval/*`` of the last stage)."""
    last: dict[str, float] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        for key, value in json.loads(line).items():
            if "/eval/" in key:
                last[key.split("/eval/")[1]] = value
    return last


def eval_summary(results: Path) -> dict[tuple[str, int], dict[str, float]]:
    """(setting, K) -> metric means of a results.json."""
    data = json.loads(results.read_text())
    return {(run["setting"], run["k"]): run["summary"] for run in data["runs"]}


def fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def main_cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="prepared dataset with train and test splits (identity split)")
    parser.add_argument("out", type=Path, help="output folder (runs, evaluations, summary.md)")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per variant, over all its stages")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4], help="shots of the evaluation")
    parser.add_argument("--finetune-steps", type=int, default=20, help="FSTH-FT fine-tuning steps per test video")
    parser.add_argument("--metrics", nargs="+", default=["psnr", "ssim", "id_sim", "nmke"])
    parser.add_argument("--max-videos", type=int, default=0, help="test videos evaluated (0 = all)")
    parser.add_argument("--targets-per-video", type=int, default=4)
    parser.add_argument("--only", nargs="+", default=None, help="variant numbers/names to run (default all)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    rows, results_files, timings = [], [], {}
    for variant in VARIANTS:
        if args.only and not any(variant.name.startswith(o) or o in variant.name for o in args.only):
            continue
        slug = variant.config.stem if variant.config.parent == ABLATIONS else f"fsth_{variant.config.stem}"
        run = args.out / "runs" / slug
        start = time.perf_counter()
        if not (run / "release" / "config.json").is_file():
            code = main(["train", str(variant.config), f"data.root={args.data}", "data.split=train",
                         "data.num_workers=0", *stage_overrides(variant.config, args.steps), "--run-dir", str(run)])
            if code != 0:
                raise SystemExit(f"training {variant.name} failed (exit {code}); see {run}/train.log")
        evaluation = {}
        if variant.evaluate:
            report = args.out / "eval" / slug
            if not (report / "results.json").is_file():
                cmd = ["evaluate", str(run / "release"), str(args.data), "--output", str(report), "--split", "test",
                       "--k", *map(str, args.k), "--metrics", *args.metrics,
                       "--targets-per-video", str(args.targets_per_video), "--no-progress"]
                if args.max_videos:
                    cmd += ["--max-videos", str(args.max_videos)]
                if variant.finetune:
                    cmd += ["--finetune-steps", str(args.finetune_steps)]
                if main(cmd) != 0:
                    raise SystemExit(f"evaluating {variant.name} failed; see {report}")
            results_files.append(report / "results.json")
            evaluation = eval_summary(report / "results.json")
        timings[variant.name] = time.perf_counter() - start
        rows.append((variant, held_out(run), evaluation))

    if len(results_files) > 1:
        main(["evaluate", "--compare", *map(str, results_files), "--output", str(args.out / "compare")])

    lines = [
        f"# LSR Table 2 style comparison ({args.steps} steps per variant, data {args.data})", "",
        "Held-out: the trainer's last L1/PSNR on the last frames of the training identities. "
        f"Evaluation: `talkinghead evaluate` on the test identities ({', '.join(args.metrics)}).", "",
    ]
    header = ["variant", "held-out L1", "held-out PSNR"]
    settings = sorted({key for _, _, ev in rows for key in ev})
    for setting, k in settings:
        header += [f"{m} ({setting}, K={k})" for m in args.metrics]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, numbers, evaluation in rows:
        cells = [variant.name, fmt(numbers.get("l1")), fmt(numbers.get("psnr"))]
        for key in settings:
            summary = evaluation.get(key, {})
            cells += [fmt(summary.get(m)) for m in args.metrics]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Training + evaluation wall time of this invocation (s; ~0 for reused runs): "
              + ", ".join(f"{name} {seconds:.0f}" for name, seconds in timings.items())]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_cli())
