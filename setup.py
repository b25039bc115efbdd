"""Build hook: copy the bundled model and examples into the wheel.

Everything else is configured in pyproject.toml. The demo model (``models/demo``) and the
example photos and videos (``examples/``) live at the top of the repository; a wheel puts
copies under ``talkinghead/bundled/`` so that ``talkinghead demo`` and ``talkinghead app``
find them after ``pip install`` (see ``talkinghead.utils.bundled``). An editable install
reads the checkout's files directly and copies nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# What a wheel carries, relative to the repository root; the model card travels with the model.
BUNDLED = ("models/demo", "models/lsr_demo", "models/upscale", "models/pretrained", "examples/portraits", "examples/videos")


class BuildWithBundledData(build_py):
    """``build_py`` that also copies :data:`BUNDLED` into ``talkinghead/bundled``."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "talkinghead" / "bundled"
        for relative in BUNDLED:
            source = HERE / relative
            if not source.is_dir():
                raise FileNotFoundError(f"{source}: bundled data missing from the source tree; restore it with git")
            shutil.copytree(source, target / relative, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithBundledData})
