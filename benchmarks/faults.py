"""A battery of faults against the real command line: interrupts, kills, full and read-only disks, the runtime cache.

    OMP_NUM_THREADS=1 python benchmarks/faults.py             # every case (a few minutes; mounts need root)
    OMP_NUM_THREADS=1 python benchmarks/faults.py --quick     # two cases (what tests/benchmarks runs)

Each case runs ``python -m talkinghead`` in a subprocess on real media from
``../shared/data/real`` (a 1 s cut of ``liveportrait_d18.mp4``, ``sadtalker_happy.png``, the
shipped ``models/demo``) and is judged as a user would:

* **good**: one line on stderr, the right exit code, nothing lost or half-written (no partial
  output, no hidden temporary left beside it);
* **poor**: it works, but the words mislead (more than one line, no path, no fix);
* **bad**: a traceback, an abort, a silent partial result, or something lost.

Cases: Ctrl-C (SIGINT) at random moments over ``--runs`` runs of ``animate`` (also in the first
seconds, while Python imports); SIGKILL mid-run, then the same command again; a full disk
(a 5 MiB tmpfs, filled) and a read-only mount as the output of ``animate`` and ``export``, and of
``train`` and ``evaluate`` (a tiny dataset, 2 + 2 training steps); the runtime cache with a damaged
ONNX file, with a file where a folder belongs, and two first builds at once; the app on a
port in use, and a killed app's temporary folder. Mount cases
are skipped (and said so) without root. Prints one line per case and the counts.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
MODEL = REPO / "models" / "demo"
PORTRAIT = REAL / "sadtalker_happy.png"
FRAMES = 8


@dataclass
class Verdict:
    case: str
    grade: str  # good | poor | bad | skipped
    note: str


@dataclass
class Run:
    code: int
    err: str
    seconds: float


def talkinghead(args: list[str], env: dict | None = None, *, interrupt_after: float | None = None,
                sig: int = signal.SIGINT, timeout: float = 300) -> Run:
    """``python -m talkinghead ARGS``; with ``interrupt_after``, ``sig`` is sent after that many seconds."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONPATH": str(REPO / "src"), **(env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", *args], env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if interrupt_after is not None:
        try:
            proc.wait(timeout=interrupt_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
    _, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, err, time.perf_counter() - start)


def animate_args(driving: Path, output: Path, *extra: str) -> list[str]:
    return ["animate", "--checkpoint", str(MODEL), "--source", str(PORTRAIT), "--driving", str(driving),
            "--output", str(output), "--max-frames", str(FRAMES), "--no-progress", *extra]


def leftovers(folder: Path, keep: set[str] = frozenset()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep) if folder.is_dir() else []


def judge_error(case: str, run: Run, code: int, words: tuple[str, ...], leftover: list[str]) -> Verdict:
    """A command that must fail: ``code``, one line holding ``words``, nothing left behind."""
    lines = run.err.strip().splitlines()
    if "Traceback" in run.err or run.code < 0 or run.code == 134:
        return Verdict(case, "bad", f"exit {run.code}, traceback or abort: {lines[-1] if lines else ''}")
    if leftover:
        return Verdict(case, "bad", f"exit {run.code}, left behind: {leftover}")
    if run.code != code:
        return Verdict(case, "bad" if run.code == 0 else "poor", f"exit {run.code} (want {code}): {lines[-1:]} ")
    if len(lines) != 1 or not all(w in lines[0] for w in words):
        return Verdict(case, "poor", f"exit {run.code}, words: {lines}")
    return Verdict(case, "good", f"exit {run.code}: {lines[0][:150]}")


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:150] if lines else ""


# ----------------------------------------------------------------------------- cases


def case_interrupts(work: Path, driving: Path, runs: int, rng: random.Random) -> list[Verdict]:
    """SIGINT at random moments of ``animate``: before, during imports, loading, animating, writing."""
    reference = talkinghead(animate_args(driving, work / "reference.mp4"))
    verdicts = []
    for i in range(runs):
        folder = work / f"sigint-{i}"
        folder.mkdir()
        delay = rng.uniform(0.1, reference.seconds * 1.05)
        run = talkinghead(animate_args(driving, folder / "out.mp4"), interrupt_after=delay)
        case = f"sigint animate at {delay:.1f} s"
        if run.code == 0:  # finished before the signal: the output must be whole
            whole = (folder / "out.mp4").is_file() and leftovers(folder) == ["out.mp4"]
            verdicts.append(Verdict(case, "good" if whole and "Traceback" not in run.err else "bad",
                                    "finished before the signal" + ("" if whole else f"; left {leftovers(folder)}")))
        else:
            verdicts.append(judge_error(case, run, 130, ("interrupted",), leftovers(folder)))
    return verdicts


def case_kill(work: Path, driving: Path) -> list[Verdict]:
    """SIGKILL in the middle of animating, then the same command again: the rerun works and tidies up."""
    folder = work / "sigkill"
    folder.mkdir()
    out = folder / "out.mp4"
    talkinghead(animate_args(driving, out, "--max-frames", "30"), interrupt_after=6.0, sig=signal.SIGKILL)
    killed_left = leftovers(folder)
    again = talkinghead(animate_args(driving, out))
    left = leftovers(folder, {"out.mp4"})
    if again.code == 0 and out.is_file() and not left and "Traceback" not in again.err:
        return [Verdict("sigkill animate, then again", "good", f"killed run left {killed_left}; the rerun removed it")]
    return [Verdict("sigkill animate, then again", "bad", f"rerun exit {again.code}, left {left}: {last_line(again.err)}")]


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True)


def case_disks(work: Path, driving: Path) -> list[Verdict]:
    """Output on a full disk and on a read-only mount: one line with the path and the fix, exit 2."""
    if os.geteuid() != 0:
        return [Verdict("full disk / read-only mount", "skipped", "needs root to mount a tmpfs")]
    verdicts = []
    full = work / "full"
    if not _mount_tmpfs(full, "5m"):
        return [Verdict("full disk / read-only mount", "skipped", "mount -t tmpfs failed")]
    try:
        filler = full / "filler.bin"
        with open(filler, "wb") as f:  # leave about 20 KiB: less than the frames need
            free = shutil.disk_usage(full).free
            f.write(b"\0" * max(free - 20_000, 0))
        run = talkinghead(animate_args(driving, full / "frames"))  # a PNG folder: ~8 x 30 KiB
        verdicts.append(judge_error("animate to a full disk", run, 2, ("full",), leftovers(full, {"filler.bin"})))
        with open(filler, "ab") as f:  # now leave about 2 KiB: not even an mp4's header and first frame
            f.write(b"\0" * max(shutil.disk_usage(full).free - 2_000, 0))
        run = talkinghead(animate_args(driving, full / "out.mp4", "--max-frames", "30"))
        verdicts.append(judge_error("animate mp4 to a full disk", run, 2, ("full",), leftovers(full, {"filler.bin"})))
    finally:
        _unmount(full)
    read_only = work / "read-only"
    if not _mount_tmpfs(read_only, "5m"):
        return verdicts + [Verdict("read-only mount", "skipped", "mount -t tmpfs failed")]
    try:
        (read_only / "keep.txt").write_text("mine")
        subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
        run = talkinghead(animate_args(driving, read_only / "out.mp4"))
        verdicts.append(judge_error("animate to a read-only mount", run, 2, ("read-only",),
                                    leftovers(read_only, {"keep.txt"})))
        run = talkinghead(["export", "onnx", "--checkpoint", str(MODEL), "--output", str(read_only / "onnx")])
        verdicts.append(judge_error("export onnx to a read-only mount", run, 2, ("read-only",),
                                    leftovers(read_only, {"keep.txt"})))
    finally:
        _unmount(read_only)
    return verdicts


def tiny_dataset(work: Path) -> Path:
    """A 64 px dataset of the three bundled videos, 8 frames each (``prepare``, about 10 s)."""
    data = work / "tiny-data"
    run = talkinghead(["prepare", str(REPO / "examples" / "videos"), str(data), "--size", "64",
                       "--frames-per-clip", "8", "--no-progress"])
    if run.code != 0:
        raise SystemExit(f"preparing the tiny dataset failed: {last_line(run.err)}")
    return data


def train_args(data: Path, run_dir: Path) -> list[str]:
    """``train`` of the tiny LSR preset for 2 + 2 steps with a checkpoint after each stage (about 10 s)."""
    return ["train", str(REPO / "configs" / "lsr" / "tiny.yaml"), f"data.root={data}", "data.num_workers=0",
            "data.holdout_fraction=0.25", "stages.0.steps=2", "stages.0.batch_size=2", "stages.0.warmup_steps=1",
            "stages.1.steps=2", "stages.1.batch_size=2", "stages.1.warmup_steps=1", "trainer.checkpoint_every=2",
            "trainer.image_every=2", "trainer.eval_every=2", "--run-dir", str(run_dir)]


def evaluate_args(data: Path, output: Path) -> list[str]:
    """``evaluate`` of the copy-source reference (no model) on one video, K = 2 (about 5 s)."""
    return ["evaluate", "copy-source", str(data), "--output", str(output), "--k", "2", "--max-videos", "1",
            "--targets-per-video", "2", "--metrics", "psnr", "ssim", "--no-progress"]


def half_written(folder: Path) -> list[str]:
    """Files under ``folder`` that a finished write does not leave: temporaries, and checkpoints that do not load."""
    import torch

    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if ".tmp" in path.name or path.name.startswith((".talkinghead", "tmp")) or path.name.endswith(".partial"):
            found.append(name)
        elif path.suffix == ".pt":
            try:
                torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # a truncated checkpoint is the loss this case looks for
                found.append(f"{name} ({type(err).__name__})")
    return found


def judge_late_error(case: str, run: Run, words: tuple[str, ...], output: Path) -> Verdict:
    """A command that fails on its output's disk after it began: exit 2, nothing half-written, and
    its last stderr line the one ``error:`` line holding ``words``.

    ``train`` and ``evaluate`` report progress on stderr before the failure; that is kept out of
    the one-line rule. What they finished before the disk failed (a run's config and log, an
    evaluation's cache) may stay: those are what ``--resume`` and a rerun continue from, and the
    note lists them.
    """
    lines = run.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    said = Run(run.code, errors[-1] if len(errors) == 1 and lines[-1] == errors[-1] else run.err, run.seconds)
    verdict = judge_error(case, said, 2, words, half_written(output) if output.is_dir() else [])
    kept = sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()) if output.is_dir() else []
    verdict.note += f"; kept {kept}" if kept else "; nothing kept"
    return verdict


def case_train_evaluate_disks(work: Path) -> list[Verdict]:
    """``train`` and ``evaluate`` writing to a full disk and to a read-only mount (root: tmpfs mounts)."""
    if os.geteuid() != 0:
        return [Verdict("train / evaluate: full disk, read-only mount", "skipped", "needs root to mount a tmpfs")]
    data = tiny_dataset(work)
    verdicts = []
    full = work / "full-train"
    if not _mount_tmpfs(full, "24m"):  # the run's config and logs fit, its first checkpoint (55 MB) does not
        return [Verdict("train / evaluate: full disk", "skipped", "mount -t tmpfs failed")]
    try:
        run = talkinghead(train_args(data, full / "run"))
        verdicts.append(judge_late_error("train to a full disk", run, ("full", str(full / "run")), full / "run"))
        (full / "keep.bin").write_bytes(b"\0" * 1024)
        shutil.rmtree(full / "run", ignore_errors=True)
        with open(full / "filler.bin", "wb") as f:  # leave about 30 KiB: the cache fits, the images do not
            f.write(b"\0" * max(shutil.disk_usage(full).free - 30_000, 0))
        run = talkinghead(evaluate_args(data, full / "report"))
        verdicts.append(judge_late_error("evaluate to a full disk", run, ("full", str(full / "report")),
                                         full / "report"))
    finally:
        _unmount(full)
    read_only = work / "read-only-train"
    if not _mount_tmpfs(read_only, "5m"):
        return verdicts + [Verdict("train / evaluate: read-only mount", "skipped", "mount -t tmpfs failed")]
    try:
        (read_only / "keep.txt").write_text("mine")
        subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
        for case, args, output in [("train", train_args(data, read_only / "run"), read_only / "run"),
                                   ("evaluate", evaluate_args(data, read_only / "report"), read_only / "report")]:
            run = talkinghead(args)
            verdicts.append(judge_error(f"{case} to a read-only mount", run, 2, ("read-only", str(output)),
                                        leftovers(read_only, {"keep.txt"})))
    finally:
        _unmount(read_only)
    return verdicts


def case_runtime_cache(work: Path, driving: Path) -> list[Verdict]:
    """``--runtime onnx``: two first builds at once, then a damaged cached file, then a wrong-type entry."""
    home = work / "home"
    env = {"TALKINGHEAD_HOME": str(home)}
    verdicts = []
    # two first builds at once: both succeed, one export
    procs = []
    for i in range(2):
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"),
                    **env}
        procs.append(subprocess.Popen([sys.executable, "-m", "talkinghead",
                                       *animate_args(driving, work / f"concurrent-{i}.mp4", "--runtime", "onnx")],
                                      env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    ok = all(code == 0 and "Traceback" not in err for code, err in results)
    noisy = max(len(err.strip().splitlines()) for _, err in results)
    verdicts.append(Verdict("two first onnx builds at once", ("good" if noisy <= 4 else "poor") if ok else "bad",
                            f"exits {[c for c, _ in results]}, at most {noisy} stderr lines"
                            + ("" if ok else f": {[last_line(e) for _, e in results]}")))
    entries = [p for p in (home / "runtime" / "onnx").glob("*") if p.is_dir() and ".bad-" not in p.name]
    if not entries:
        return verdicts + [Verdict("damaged cache", "bad", "no ONNX entry was cached")]
    entry = entries[0]
    onnx_file = entry / "synthesis.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 3])
    run = talkinghead(animate_args(driving, work / "damaged.mp4", "--runtime", "onnx"), env)
    repaired = run.code == 0 and (entry / "synthesis.onnx").is_file() and list(entry.parent.glob(f"{entry.name}.bad-*"))
    warned = "set aside" in run.err
    verdicts.append(Verdict("truncated cached synthesis.onnx",
                            "bad" if not repaired or "Traceback" in run.err else ("good" if warned else "poor"),
                            f"exit {run.code}: {last_line(run.err) if run.code else 'rebuilt, warned: ' + str(warned)}"))
    shutil.rmtree(entry)
    entry.write_text("not a folder")
    run = talkinghead(animate_args(driving, work / "wrong-type.mp4", "--runtime", "onnx"), env)
    verdicts.append(Verdict("a file where the cache keeps a folder",
                            "good" if run.code == 0 and entry.is_dir() and "Traceback" not in run.err else "bad",
                            f"exit {run.code}: {last_line(run.err)}"))
    return verdicts


def _start_app(port: int) -> subprocess.Popen:
    """``talkinghead app --port PORT``, once it answers (or has exited)."""
    import urllib.request

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "talkinghead", "app", "--port", str(port), "--device", "cpu"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    return proc


def case_app(rng: random.Random) -> list[Verdict]:
    """A second app on a taken port; a killed app's temporary folder, removed when the next app starts."""
    port = rng.randrange(20000, 30000)
    first = _start_app(port)
    folders = list(Path(tempfile.gettempdir()).glob(f"talkinghead-app-{first.pid}-*"))
    second = talkinghead(["app", "--port", str(port)])
    verdicts = [judge_error("app on a port in use", second, 2, ("--port", str(port)), [])]
    first.kill()
    first.wait()
    stale = [f for f in folders if f.is_dir()]
    restarted = _start_app(port + 1)
    restarted.send_signal(signal.SIGINT)
    _, err = restarted.communicate(timeout=60)
    gone = stale and not any(f.exists() for f in stale)
    verdicts.append(Verdict("a killed app's temporary folder", "good" if gone else "bad",
                            f"left {[f.name for f in stale]} when killed; removed at the next start: {bool(gone)}"))
    own_left = list(Path(tempfile.gettempdir()).glob(f"talkinghead-app-{restarted.pid}-*"))
    said = "\n".join(line for line in err.splitlines() if not line.startswith("INFO: "))  # start-up notes
    verdicts.append(judge_error("Ctrl-C on the app", Run(restarted.returncode, said, 0), 130, ("interrupted",),
                                [f.name for f in own_left]))
    return verdicts


def make_clip(folder: Path) -> Path:
    import imageio_ffmpeg

    clip = folder / "d18_1s.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i",
                    str(REAL / "liveportrait_d18.mp4"), "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-an", str(clip)], check=True)
    return clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two cases only: one Ctrl-C, one full disk")
    parser.add_argument("--runs", type=int, default=20, help="Ctrl-C runs of animate (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="talkinghead-faults-") as tmp:
        work = Path(tmp)
        driving = make_clip(work)
        if args.quick:
            verdicts += case_interrupts(work, driving, 1, rng)
            verdicts += case_disks(work, driving)[:1]
        else:
            verdicts += case_interrupts(work, driving, args.runs, rng)
            verdicts += case_kill(work, driving)
            verdicts += case_disks(work, driving)
            verdicts += case_train_evaluate_disks(work)
            verdicts += case_runtime_cache(work, driving)
            verdicts += case_app(rng)
    for v in verdicts:
        print(f"{v.grade:7s} {v.case}: {v.note}")
    counts = {g: sum(v.grade == g for v in verdicts) for g in ("good", "poor", "bad", "skipped")}
    print("counts: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    return 1 if counts["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
