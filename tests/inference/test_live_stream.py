"""The live path: a bounded queue that drops late frames, and its latency / frames/s report."""

from __future__ import annotations

import threading

import pytest

from pathlib import Path

from talkinghead.inference.live import LiveAnimator, play_in_real_time

REPO = Path(__file__).resolve().parents[2]
PORTRAIT = REPO / "examples" / "portraits" / "sadtalker_happy.png"


def test_a_slow_model_drops_frames_and_the_queue_stays_bounded():
    seen, release = [], threading.Event()

    def slow(frame):
        release.wait(2.0)
        seen.append(frame)
        return frame * 10

    with LiveAnimator(slow, max_queue=2, max_latency=10.0) as animator:
        for frame in range(20):
            animator.submit(frame)
            assert animator.pending() <= 2
        release.set()
        assert animator.wait_idle(5.0)
        stats = animator.stats
        # the worker took frame 0 (or 0 and 1) at once; of the rest only the newest two waited
        assert seen[-2:] == [18, 19] and len(seen) <= 4
        assert stats.submitted == 20 and stats.dropped_full == 20 - len(seen)
        assert animator.latest() == 190  # the newest result; older unread ones are gone
        assert animator.latest() is None
        assert "frames dropped to keep up" in stats.summary()


def test_frames_that_waited_too_long_are_dropped_as_late():
    now = [100.0]
    done = []
    animator = LiveAnimator(done.append, max_queue=4, max_latency=0.5, clock=lambda: now[0])
    with animator:
        animator.submit("stale", timestamp=99.0)  # arrived a second ago
        animator.submit("fresh", timestamp=99.9)
        assert animator.wait_idle(5.0)
    assert done == ["fresh"] and animator.stats.dropped_late == 1


def test_results_report_latency_and_rate():
    with LiveAnimator(lambda f: f, max_queue=1, max_latency=1.0) as animator:
        for i in range(5):
            animator.submit(i)
            assert animator.latest(timeout=2.0) == i
    stats = animator.stats
    assert stats.animated == 5 and len(stats.latencies) == 5 and all(lat >= 0 for lat in stats.latencies)
    assert stats.frames_per_second() > 0 and "latency" in stats.summary()


def test_errors_of_the_model_reach_the_caller():
    def broken(frame):
        raise RuntimeError("out of memory")

    with LiveAnimator(broken) as animator:
        animator.submit(1)
        with pytest.raises(RuntimeError, match="out of memory"):
            animator.latest(timeout=2.0)


def test_real_time_play_keeps_the_schedule_without_waiting_for_a_late_consumer():
    clock = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    times = []
    for due, _ in play_in_real_time(range(4), 10.0, clock=lambda: clock[0], sleep=sleep):
        times.append(due)
        clock[0] += 0.25  # the consumer takes 2.5 frame periods
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert sleeps == []  # always late: never waits


def test_live_cli_writes_at_the_input_rate_and_reports(real_data, tmp_path, capsys):
    from talkinghead.cli import main
    from talkinghead.data.video import probe_video

    import torch

    out = tmp_path / "live.mp4"
    threads = torch.get_num_threads()
    assert main(["animate", "--checkpoint", str(REPO / "models" / "demo"), "--source", str(PORTRAIT),
                 "--driving", str(real_data / "liveportrait_d19.mp4"), "--output", str(out), "--max-frames", "12",
                 "--live", "--no-progress", "--threads", str(threads + 1)]) == 0
    assert torch.get_num_threads() == threads  # --threads applies to the job, not to the process after it
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("animated ") and "frames/s; live:" in line and "latency" in line
    assert "12 input frames" in line
    written = int(line.split(" written)")[0].rsplit(", ", 1)[1])
    assert 1 <= written <= 12 and probe_video(out).num_frames == written
