"""``talkinghead app`` driven in a real (headless) Chromium through Playwright.

The page is used as a person would: upload the bundled portrait and driving clip, press
*Animate*, wait for the result; then a photo without a face. The result video is fetched
from the page and decoded; the page may not reach anything but the local server.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urljoin

import av
import numpy as np
import pytest
from PIL import Image

from conftest import browser_skip_reason

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
