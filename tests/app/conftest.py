"""Fixtures of the app tests: a running ``talkinghead app`` server and a headless Chromium.

The browser tests need Gradio (``talkinghead[app]``), Playwright (``talkinghead[dev]``) and a
system Chromium (Debian: ``apt-get install chromium``; Playwright's own browser download is
not used). Each missing piece skips them with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Flags that keep Chromium quiet and offline in a container (no sandbox: we run as root).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-dev-shm-usage",
]
SERVER_START_SECONDS = 180


def chromium_path() -> str | None:
    """A system Chromium: $TALKINGHEAD_CHROMIUM, else chromium / chromium-browser on PATH."""
    explicit = os.environ.get("TALKINGHEAD_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if importlib.util.find_spec("gradio") is None:
        return "gradio is not installed (pip install 'talkinghead[app]')"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install 'talkinghead[dev]')"
    if chromium_path() is None:
        return "no system Chromium (apt-get install chromium, or set TALKINGHEAD_CHROMIUM)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """``talkinghead app`` on a free port, its outside connections recorded; yields its URL, stops it afterwards."""
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    folder = tmp_path_factory.mktemp("app")
    log_path, connections = folder / "server.log", folder / "connections.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("serve_recording_connections.py")), str(connections),
             "app", "--port", str(port), "--device", "cpu", "--max-upload-mb", "5"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"the app server exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2).read(100)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the app server did not answer within {SERVER_START_SECONDS} s:\n{log_path.read_text()}")
                time.sleep(0.5)
        yield {"url": url, "log": log_path, "process": server, "connections": connections}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def playwright(app_server):
    """One Playwright driver for the module (a second sync driver cannot start beside it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser_page(playwright, app_server):
    """A Chromium page that may only talk to the app server; ``external`` lists what it tried elsewhere."""
    external: list[str] = []
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()

    def only_local(route):
        if route.request.url.startswith(app_server["url"]) or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    yield page, external
    context.close()
    browser.close()


@pytest.fixture
def two_people_photo(real_data, tmp_path) -> Path:
    """A 460 x 256 PNG with two real faces: sadtalker_happy (face 0, the larger) and a smaller second one."""
    import numpy as np
    from PIL import Image

    canvas = np.full((256, 460, 3), 200, np.uint8)
    canvas[:, :256] = np.asarray(Image.open(real_data / "sadtalker_happy.png").convert("RGB"))
    canvas[40:208, 270:450] = np.asarray(Image.open(real_data / "facerec_alex-lacamoire.png").convert("RGB")
                                         .resize((180, 168)))
    photo = tmp_path / "two_people.png"
    Image.fromarray(canvas).save(photo)
    return photo
