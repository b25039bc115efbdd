"""The fixed reference workload every speed benchmark reports its figures against.

Absolute times on a shared CPU drift by +-20% between machines and hours; a ratio to a
fixed convolution stack timed in the same process, at the same moment, does not drift as
much. The reference is ten 3x3 convolutions, 64 -> 64 channels, on one 256 x 256 map
(fp32, batch 1, eager), about 48 GFLOP: roughly the work of one mid-sized generator.

    python benchmarks/reference.py        # prints the reference's median time
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

LAYERS, CHANNELS, SIZE = 10, 64, 256


def reference_stack() -> nn.Module:
    """The reference network (fixed seed; speed does not depend on the weights)."""
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1) for _ in range(LAYERS)]).eval()


def median_ms(function, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``function()`` in milliseconds over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


@torch.no_grad()
def reference_ms(repeats: int = 10, device: str | torch.device = "cpu") -> float:
    """Median milliseconds of one forward pass of the reference stack on ``device``."""
    device = torch.device(device)
    net = reference_stack().to(device)
    x = torch.randn(1, CHANNELS, SIZE, SIZE, device=device)

    def run():
        net(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return median_ms(run, repeats)


if __name__ == "__main__":
    print(f"reference conv stack ({LAYERS} x conv3x3 {CHANNELS}->{CHANNELS} at {SIZE}^2, fp32, batch 1): "
          f"{reference_ms():.1f} ms (torch {torch.__version__}, {torch.get_num_threads()} threads)")
