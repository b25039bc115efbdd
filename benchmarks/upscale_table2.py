"""MetaPortrait Table 2 for the temporal super-resolution module, on held-out clips.

    python benchmarks/upscale_table2.py --data /work/data/sr512 --output /work/data/sr_eval
    python benchmarks/upscale_table2.py --data DATA --model RUN_DIR/release --output OUT

For every held-out (``split: test``) segment of a folder written by
``talkinghead prepare-sr`` (consecutive 512 px head crops and their degraded
256 px inputs), the 256 px input is brought to 512 px by

* ``bicubic``: bicubic interpolation (PyTorch, ``align_corners=False``: the base the network
  adds its residual to);
* ``ours (single frame)``: the module with its neighbour fusion switched off (fusion convs
  zeroed), i.e. the same network seeing the centre frame only; an ablation of the window;
* ``ours``: the module (``--model``, default the bundled ``models/upscale``), streamed over the
  clip with edge-replicated windows exactly as ``talkinghead upscale`` runs it;

and compared with the ground truth, which is also scored for E_warp. Per-frame fidelity: PSNR
and SSIM (8-bit RGB, :mod:`talkinghead.evaluation.metrics`), LPIPS when its weights are
installed. Temporal stability: E_warp (:mod:`talkinghead.evaluation.metrics.warp_error`, MSE x
1e3 of RGB in [0, 1] between frame t and frame t-1 warped by Farneback flow, flow and occlusion
mask taken from the ground truth), lower is steadier; the ground truth's own value is the floor
that real motion leaves (interpolation and occlusion errors of the flow).

Writes ``OUT/table2.md``, ``OUT/table2.json`` (per clip and mean) and ``OUT/strip.png``
(bicubic | ours | ground truth for a few frames of the first held-out clip, plus a 2x zoom of
the mouth-and-eyes region).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from talkinghead.data.sr_windows import SRWindowDataset
from talkinghead.evaluation.metrics import MetricUnavailable, build_metric
from talkinghead.inference.upscale import StreamingUpscaler


def bicubic(frames: np.ndarray) -> np.ndarray:
    """(t, h, w, 3) uint8 -> (t, 2h, 2w, 3) uint8 by bicubic interpolation."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255
    y = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    return (y * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def single_frame(upscaler: StreamingUpscaler) -> StreamingUpscaler:
    """The same network with its neighbour fusion zeroed: it sees the centre frame only."""
    network = copy.deepcopy(upscaler.network)
    with torch.no_grad():
        for fusion in network.fusions:
            fusion.conv.weight.zero_()
            fusion.conv.bias.zero_()
    return StreamingUpscaler(network, upscaler.device, upscaler.batch_size)


def strip(rows: list[list[np.ndarray]], labels: list[str]) -> np.ndarray:
    """Rows of equally sized images side by side, a label over each column."""
    lines = [np.concatenate(row, axis=1) for row in rows]
    image = np.concatenate(lines, axis=0).copy()
    w = rows[0][0].shape[1]
    for i, label in enumerate(labels):
        cv2.putText(image, label, (i * w + 8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 0), 2, cv2.LINE_AA)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder written by talkinghead prepare-sr")
    parser.add_argument("--model", type=Path, help="super-resolution release (default: bundled models/upscale)")
    parser.add_argument("--output", type=Path, required=True, help="folder for table2.md, table2.json, strip.png")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-frames", type=int, help="use only the first N frames of each clip (a quick check)")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    data = SRWindowDataset(args.data, "test")
    upscaler = StreamingUpscaler.from_pretrained(args.model, device=args.device)
    methods = {"bicubic": lambda lr: bicubic(lr),
               "ours (single frame)": lambda lr, u=single_frame(upscaler): np.stack(list(u.stream(lr))),
               "ours": lambda lr: np.stack(list(upscaler.stream(lr)))}
    psnr, ssim, warp = build_metric("psnr"), build_metric("ssim"), build_metric("warp_error")
    try:
        lpips = build_metric("lpips", device=args.device)
    except (MetricUnavailable, TypeError) as err:
        lpips = None
        print(f"LPIPS left out: {err}")

    per_clip = []
    for segment, lr, hr in zip(data.segments, data.lr, data.hr):
        lr, hr = np.array(lr[: args.max_frames]), np.array(hr[: args.max_frames])  # read from the memory map
        row = {"clip": segment["clip_id"], "identity": segment["identity"], "frames": len(hr), "methods": {}}
        outputs = {name: make(lr) for name, make in methods.items()}
        for name, out in outputs.items():
            scores = {"psnr": float(psnr(out, hr).mean()), "ssim": float(ssim(out, hr).mean()),
                      "e_warp_x1e3": float(np.nanmean(warp(out, reference=hr)) * 1e3)}
            if lpips is not None:
                scores["lpips"] = float(lpips(out, hr).mean())
            row["methods"][name] = scores
        row["methods"]["ground truth"] = {"e_warp_x1e3": float(np.nanmean(warp(hr, reference=hr)) * 1e3)}
        per_clip.append(row)
        print(segment["clip_id"], json.dumps(row["methods"]))
        if len(per_clip) == 1:
            picks = [0, len(hr) // 2, len(hr) - 1]
            cols = ["bicubic", "ours", "ground truth"]
            frames = {"bicubic": outputs["bicubic"], "ours": outputs["ours"], "ground truth": hr}
            rows = [[frames[c][t] for c in cols] for t in picks]
            # 2x zoom of the central region (eyes to mouth) of the middle frame
            zoom = [cv2.resize(frames[c][picks[1]][160:416, 128:384], (512, 512), interpolation=cv2.INTER_NEAREST)
                    for c in cols]
            image = strip(rows + [zoom], cols)
            cv2.imwrite(str(args.output / "strip.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    names = list(methods) + ["ground truth"]
    keys = ["psnr", "ssim"] + (["lpips"] if lpips is not None else []) + ["e_warp_x1e3"]
    mean = {n: {k: float(np.mean([c["methods"][n][k] for c in per_clip]))
                for k in keys if k in per_clip[0]["methods"][n]} for n in names}
    header = "| method | " + " | ".join(k.replace("_x1e3", " (x1e-3)") for k in keys) + " |"
    lines = [f"Held-out clips: {', '.join(c['clip'] for c in per_clip)} "
             f"({sum(c['frames'] for c in per_clip)} frames, 256 -> 512 px)", "", header,
             "|" + "---|" * (len(keys) + 1)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{mean[n][k]:.4f}" if k in mean[n] else "-" for k in keys) + " |")
    table = "\n".join(lines) + "\n"
    (args.output / "table2.md").write_text(table)
    (args.output / "table2.json").write_text(json.dumps({"mean": mean, "clips": per_clip}, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
