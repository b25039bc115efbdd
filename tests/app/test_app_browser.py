"""``talkinghead app`` driven in a real (headless) Chromium through Playwright.

The page is used as a person would: upload the bundled portrait and driving clip, press
*Animate*, wait for the result; click the bundled thumbnails; upload a photo of two people
and choose the other face; a photo without a face; a broken video. The result video is
fetched from the page and decoded; the page may not reach anything but the local server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
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


def _preview_captions(page) -> list[str]:
    """The captions of the source preview (the photo with its face box, then the model's crop)."""
    return [t.strip() for t in page.locator("#source-preview .caption-label").all_inner_texts()]


def _wait_for_preview(page, text: str) -> None:
    page.wait_for_function(
        "text => [...document.querySelectorAll('#source-preview .caption-label')].some(e => e.innerText.includes(text))",
        arg=text, timeout=60_000,
    )


def _loaded_images(page, selector: str) -> list[int]:
    """naturalWidth of every image under ``selector`` (0: it did not load)."""
    return page.evaluate("sel => [...document.querySelectorAll(sel + ' img')].map(i => i.complete ? i.naturalWidth : 0)",
                         selector)


def test_page_labels_the_model_and_shows_the_bundled_examples(browser_page, app_server, tmp_path):
    page, external = browser_page
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    assert page.locator("#model input").input_value() == "demo (MetaPortrait, 128 px)"
    _keep_screenshot(page, tmp_path, "app_start.png")
    # thumbnails of the three bundled portraits and driving videos, loaded
    page.wait_for_function("() => document.querySelectorAll('#portrait-gallery img').length === 3"
                           " && document.querySelectorAll('#driving-gallery img').length === 3", timeout=30_000)
    page.wait_for_function("() => [...document.querySelectorAll('#portrait-gallery img, #driving-gallery img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
    assert all(w > 50 for w in _loaded_images(page, "#driving-gallery"))
    # the default portrait is shown with the face the model will use
    _wait_for_preview(page, "sadtalker_happy.png: face 0 of 1")
    assert page.locator("#source-notes").inner_text().strip() == ""
    # a click on a thumbnail chooses it
    page.locator("#portrait-gallery .thumbnail-item").nth(1).click()
    _wait_for_preview(page, "liveportrait_s12.jpg: face 0 of 1")
    assert page.locator("#bundled-source input").input_value() == "liveportrait_s12.jpg"
    page.locator("#driving-gallery .thumbnail-item").nth(2).click()
    page.wait_for_function("() => document.querySelector('#bundled-driving input').value === 'tpsmm_driving.mp4'",
                           timeout=30_000)
    assert external == [], f"the page tried to reach the internet: {external}"


def test_upload_animate_and_download(browser_page, app_server, tmp_path):
    page, external = browser_page
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    page.locator("#source-files input[type=file]").set_input_files(str(PORTRAIT))
    page.locator("#driving-video input[type=file]").set_input_files(str(DRIVING))
    page.wait_for_selector("#driving-video video")  # the upload has arrived and is shown
    _wait_for_preview(page, f"{PORTRAIT.name}: what the model sees (128 px)")  # the uploaded photo is shown
    assert all(w > 0 for w in _loaded_images(page, "#source-preview"))

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
    # shown at its native size (the default output size, 256 px), not stretched to the page's width
    page.wait_for_function("() => document.querySelector('#result-video video').videoWidth > 0", timeout=30_000)
    size = page.evaluate("() => { const v = document.querySelector('#result-video video');"
                         " return [v.videoWidth, v.videoHeight, v.clientWidth, v.clientHeight]; }")
    assert size == [256, 256, 256, 256], size
    # the side-by-side is one link away: three panels of the result's height
    link = page.locator("#side-by-side-link").get_attribute("href")
    response = page.request.get(urljoin(app_server["url"], link))
    assert response.ok, f"{link}: {response.status}"
    side = tmp_path / "side.mp4"
    side.write_bytes(response.body())
    with av.open(str(side)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (3 * 256, 256)
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


def test_two_people_get_a_warning_and_the_face_number_chooses(browser_page, app_server, two_people_photo, tmp_path):
    page, external = browser_page
    photo = two_people_photo
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    page.locator("#source-files input[type=file]").set_input_files(str(photo))
    page.wait_for_function("() => /2 faces found/.test(document.querySelector('#source-notes')?.innerText || '')",
                           timeout=60_000)
    notes = page.locator("#source-notes").inner_text()
    assert "two_people.png: 2 faces found; animating face 0" in notes and "Face number" in notes, notes
    assert "--source-face-index" not in notes and "Traceback" not in page.content()
    _keep_screenshot(page, tmp_path, "app_two_faces.png")
    page.locator("#face-index input").fill("1")
    page.locator("#face-index input").press("Enter")
    _wait_for_preview(page, "two_people.png: face 1 of 2")
    # no such face: the page names its own control
    page.locator("#face-index input").fill("5")
    page.locator("#face-index input").press("Enter")
    page.wait_for_function("() => /no face 5/.test(document.querySelector('#source-notes')?.innerText || '')",
                           timeout=60_000)
    assert "set Face number to 0 or 1" in page.locator("#source-notes").inner_text()
    page.locator("#face-index input").fill("1")
    page.locator("#max-frames input").fill("4")
    status = _status_after_run(page)
    assert status.startswith("Animated 4 frames"), status
    assert external == [], f"the page tried to reach the internet: {external}"


def test_a_small_and_a_sideways_photo_get_warnings_in_plain_words(browser_page, app_server, real_data, tmp_path):
    page, external = browser_page
    photo = Image.open(real_data / "sadtalker_happy.png").convert("RGB")
    small, sideways = tmp_path / "small.png", tmp_path / "sideways.png"
    photo.resize((80, 80)).save(small)
    photo.rotate(90, expand=True).save(sideways)  # lying on its side, no EXIF orientation
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    page.locator("#source-files input[type=file]").set_input_files([str(small), str(sideways)])
    page.wait_for_function("() => /side/.test(document.querySelector('#source-notes')?.innerText || '')",
                           timeout=60_000)
    notes = page.locator("#source-notes").inner_text()
    assert "small.png: the face is small" in notes and "Upload a larger photo" in notes, notes
    assert "sideways.png: the face lay on its side" in notes and "turned 90° clockwise" in notes, notes
    _wait_for_preview(page, "sideways.png: what the model sees")
    assert len(_preview_captions(page)) == 4  # each photo and its crop
    _keep_screenshot(page, tmp_path, "app_small_sideways.png")
    assert external == [], f"the page tried to reach the internet: {external}"


def test_a_broken_video_gets_a_message_without_error_numbers(browser_page, app_server, tmp_path):
    page, external = browser_page
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 200)
    page.goto(app_server["url"])
    page.wait_for_selector("#animate")
    page.locator("#driving-video input[type=file]").set_input_files(str(broken))
    page.wait_for_selector("#driving-video video")
    status = _status_after_run(page)
    assert status.startswith("Could not animate: broken.mp4: not a readable media file"), status
    assert "Errno" not in status and "/tmp" not in status, status
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
    """Runs last in this module: the page was served and jobs ran (analytics, version check, Hub lookups off).

    The recorder writes its (empty) file before the server starts; a missing file means it
    never ran, which proves nothing, so the test fails. Run alone, the page is still served
    (and its start-up work done) before the record is read.
    """
    record = app_server["connections"]
    assert record.is_file(), f"{record}: the connection recorder did not start, so nothing was checked"
    with urllib.request.urlopen(app_server["url"], timeout=30) as response:
        assert response.status == 200 and b"talkinghead" in response.read()
    attempts = record.read_text()
    assert attempts == "", f"the app server tried to reach:\n{attempts}"
