"""``talkinghead app`` driven in a real (headless) Chromium through Playwright.

The page is used as a person would: upload the bundled portrait and driving clip, press
*Animate*, wait for the result; then a photo without a face. The result video is fetched
from the page and decoded; the page may not reach anything but the local server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import av
import numpy as np
import pytest
from PIL import Image

from conftest import CHROMIUM_ARGS, browser_skip_reason, chromium_path

REPO = Path(__file__).resolve().parents[2]
PORTRAIT = REPO / "examples" / "portraits" / "sadtalker_happy.png"
DRIVING = REPO / "examples" / "videos" / "liveportrait_d18.mp4"
JOB_SECONDS = 300

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=str(browser_skip_reason()))


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _keep_screenshot(page, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in tmp_path, copied to $TALKINGHEAD_SCREENSHOT_DIR when set (to look at)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("TALKINGHEAD_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def _status_after_run(page) -> str:
    """Press Animate and wait for this job's answer in the status line (not an earlier job's)."""
    status = page.locator("#status")
    before = status.inner_text()
    page.locator("#animate").click()
    page.wait_for_function(
        "before => { const text = document.querySelector('#status')?.innerText || '';"
        " return text !== before && /^(Animated|Could not animate)/.test(text.trim()); }",
        arg=before, timeout=JOB_SECONDS * 1000,
    )
    return status.inner_text().strip()


def test_upload_animate_and_download(browser_page, app_server, tmp_path):
    page, external = browser_page
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    page.locator("#source-files input[type=file]").set_input_files(str(PORTRAIT))
    page.locator("#driving-video input[type=file]").set_input_files(str(DRIVING))
    page.wait_for_selector("#driving-video video")  # the upload has arrived and is shown

    status = _status_after_run(page)
    assert status.startswith("Animated"), status
    page.wait_for_selector("#result-video video[src]")
    src = page.locator("#result-video video").get_attribute("src")
    response = page.request.get(urljoin(app_server["url"], src))
    assert response.ok, f"{src}: {response.status}"
    result = tmp_path / "result.mp4"
    result.write_bytes(response.body())
    expected = _frames(DRIVING)
    assert _frames(result) == expected
    assert f"Animated {expected} frames" in status
    downloads = page.locator("#downloads a")
    assert downloads.count() == 2
    shot = _keep_screenshot(page, tmp_path, "app_result.png")
    assert shot.stat().st_size > 10_000
    assert external == [], f"the page tried to reach the internet: {external}"


def test_photo_without_a_face_gets_a_message(browser_page, app_server, tmp_path):
    page, external = browser_page
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(blank)
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    page.locator("#source-files input[type=file]").set_input_files(str(blank))
    page.locator("#max-frames input").fill("4")

    status = _status_after_run(page)
    assert status.startswith("Could not animate"), status
    assert "wall.png" in status and "face" in status, status
    assert "Traceback" not in page.content()
    _keep_screenshot(page, tmp_path, "app_no_face.png")
    # The server keeps serving: the bundled examples animate after the error.
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    page.locator("#max-frames input").fill("4")
    status = _status_after_run(page)
    assert status.startswith("Animated 4 frames"), status
    assert app_server["process"].poll() is None
    assert external == [], f"the page tried to reach the internet: {external}"


@pytest.fixture
def fake_camera(real_data, tmp_path) -> Path:
    """Four seconds of a real shared clip as a Y4M file, Chromium's fake webcam input."""
    import imageio_ffmpeg

    clip = tmp_path / "camera.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i",
                    str(real_data / "liveportrait_d19.mp4"), "-t", "4", "-vf", "scale=320:320", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    return clip


def test_live_webcam_frames_come_back_animated(playwright, app_server, fake_camera, tmp_path):
    camera_args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-video-capture={fake_camera}"]
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS + camera_args,
                                         headless=True)
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
        page = context.new_page()
        page.goto(app_server["url"])
        page.locator("#live-start").click()
        page.wait_for_function("() => /ready|Could not/.test(document.querySelector('#live-status')?.innerText || '')",
                               timeout=120_000)
        assert "Live mode ready for sadtalker_happy.png" in page.locator("#live-status").inner_text()
        page.locator("#live-webcam [title='grant webcam access'] button").click()
        page.locator("#live-webcam button[aria-label='capture photo']").click()  # starts the stream
        sources, start = set(), time.monotonic()
        while time.monotonic() - start < 60 and len(sources) < 6:
            image = page.locator("#live-output img")
            if image.count():
                sources.add(image.first.get_attribute("src"))
            time.sleep(0.2)
        status = page.locator("#live-status").inner_text()
        _keep_screenshot(page, tmp_path, "app_live.png")
    finally:
        browser.close()
    assert len(sources) >= 6, f"only {len(sources)} animated frames came back; status: {status}"
    frames = int(re.search(r"(\d+) frames animated", status).group(1))
    assert frames >= 6, status


def test_the_server_asked_nothing_of_the_network(app_server):
    """Runs last in this module: the page was served and jobs ran (analytics, version check, Hub lookups off)."""
    record = app_server["connections"]
    attempts = record.read_text() if record.exists() else ""
    assert attempts == "", f"the app server tried to reach:\n{attempts}"
