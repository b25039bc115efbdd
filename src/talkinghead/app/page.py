"""The Gradio page of ``talkinghead app``: inputs, settings, *Animate*, results.

Only layout and wiring live here; every decision about the inputs is
:class:`talkinghead.app.jobs.AppJobRunner`'s. The bundled portraits and driving videos are
thumbnails to click; the chosen photos are shown with the face the model will use and any
warning about them, next to the control that changes it (*Face number*). The result plays
at its native size, with a link to the side-by-side video. The page asks nothing of the
internet: the theme uses the browser's own fonts (Gradio's default theme loads Google Fonts).
"""

from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import gradio as gr

from talkinghead.app.jobs import AppJobRunner, AppRequest, AppResult
from talkinghead.app.live_page import add_live_section
from talkinghead.inference.options import MOTION_MODES

TITLE = "talkinghead"
# Named fonts are system fonts; Gradio would fetch a GoogleFont from the web.
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "monospace"]
NO_EXAMPLE = "(none)"


def offline_theme() -> gr.themes.Base:
    """Gradio's default look with local fonts only."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)


def _default(choices: list[str], preferred: str) -> str:
    return preferred if preferred in choices else (choices[0] if choices else NO_EXAMPLE)


def file_url(path: Path) -> str:
    """The page-relative URL at which Gradio serves a file of the app's folder (``allowed_paths``)."""
    return "gradio_api/file=" + quote(str(path))


def result_html(answer: AppResult) -> str:
    """The result video at its native size (never stretched), with links to it and the side-by-side."""
    width, height = answer.result_size()
    result, side = file_url(answer.result), file_url(answer.side_by_side)
    return (
        f'<div class="th-result"><video src="{html.escape(result)}" width="{width}" height="{height}" '
        f'style="width:{width}px;height:auto;max-width:100%" controls autoplay loop muted playsinline></video>'
        f'<p>Result, {width} x {height} px. <a id="side-by-side-link" href="{html.escape(side)}" target="_blank">'
        'Open the side-by-side video (source | driving | result)</a>.</p></div>'
    )


def notes_markdown(notes: list[str], error: str | None) -> str:
    """The warnings about the photos as the page shows them (empty when there are none)."""
    if error:
        return f"⛔ {error}"
    return "\n".join(f"- ⚠️ {note}" for note in notes)


def _choose(names: list[str]):
    """A gallery's select handler: the name of the clicked thumbnail."""

    def choose(event: gr.SelectData) -> str:
        return names[event.index]

    return choose


def _input_widgets(runner: AppJobRunner, portraits: list[str], videos: list[str]) -> SimpleNamespace:
    """Source photos and driving video (uploads, galleries and dropdowns of the bundled examples), and the preview."""
    w = SimpleNamespace()
    with gr.Row():
        with gr.Column():
            w.sources = gr.File(label="Source photo(s)", file_count="multiple", file_types=["image"],
                                elem_id="source-files")
            w.portrait_gallery = gr.Gallery([(runner.portraits[name], name) for name in portraits],
                                            label="or click a bundled portrait", columns=4, height=170,
                                            allow_preview=False, object_fit="cover", elem_id="portrait-gallery")
            w.bundled_source = gr.Dropdown([NO_EXAMPLE, *portraits], value=_default(portraits, "sadtalker_happy.png"),
                                           label="Bundled portrait", elem_id="bundled-source")
        with gr.Column():
            w.driving = gr.Video(label="Driving video (upload or record)", sources=["upload", "webcam"],
                                 format=None, elem_id="driving-video")
            w.video_gallery = gr.Gallery([(str(image), name) for image, name in runner.video_thumbnails()],
                                         label="or click a bundled driving video (first frame shown)", columns=4,
                                         height=170, allow_preview=False, object_fit="cover",
                                         elem_id="driving-gallery")
            w.bundled_driving = gr.Dropdown([NO_EXAMPLE, *videos], value=_default(videos, "liveportrait_d18.mp4"),
                                            label="Bundled driving video", elem_id="bundled-driving")
    with gr.Row():
        w.source_preview = gr.Gallery(label="The photo(s) to animate, and the face the model will use", columns=4,
                                      height=260, allow_preview=False, object_fit="contain", interactive=False,
                                      elem_id="source-preview")
        with gr.Column():
            w.face_index = gr.Number(0, precision=0, minimum=0, maximum=99, label="Face number",
                                     info="which face of the photo(s) to animate; 0 is the largest",
                                     elem_id="face-index")
            w.source_notes = gr.Markdown(elem_id="source-notes")
    return w


def _settings_widgets(runner: AppJobRunner, w: SimpleNamespace) -> None:
    """Model, motion, smoothing, paste-back, fine-tuning, output size and frame limit (added to ``w``)."""
    with gr.Accordion("Settings", open=True):
        with gr.Row():
            w.model = gr.Dropdown(list(runner.models), value=runner.default_model, label="Model",
                                  elem_id="model")
            w.motion = gr.Radio(list(MOTION_MODES), value="relative", label="Motion",
                                info="relative: another person's video; absolute: the same person")
            w.smooth = gr.Slider(0, 4, value=0, step=0.5, label="Smoothing (frames)",
                                 info="Gaussian over the driver's landmarks against jitter (0 = off)")
        with gr.Row():
            w.paste_back = gr.Checkbox(False, label="Paste back into the full photo")
            w.finetune_steps = gr.Number(0, precision=0, minimum=0, maximum=1000, label="Fine-tuning steps",
                                         info="tune the model on the photo(s) first; ~0.6 s a step on a CPU",
                                         elem_id="finetune-steps")
            w.output_size = gr.Slider(64, 512, value=256, step=32, label="Output size (px)")
            w.max_frames = gr.Number(0, precision=0, minimum=0, label="Frame limit (0 = all)",
                                     elem_id="max-frames")


def _wire_source_check(runner: AppJobRunner, page: gr.Blocks, w: SimpleNamespace) -> None:
    """Preview the chosen photos and the face the model will use whenever the choice changes."""

    def check(source_files, bundled_source_name, model_label, face):
        answer = runner.check_sources(AppRequest(
            sources=[str(f) for f in source_files or []],
            bundled_source=None if bundled_source_name == NO_EXAMPLE else bundled_source_name,
            model=model_label, face_index=int(face or 0),
        ))
        return answer.previews, notes_markdown(answer.notes, answer.error)

    check_inputs = [w.sources, w.bundled_source, w.model, w.face_index]
    for trigger in (w.sources.change, w.bundled_source.change, w.model.change, w.face_index.change, page.load):
        trigger(check, check_inputs, [w.source_preview, w.source_notes], concurrency_limit=1,
                concurrency_id="source-check", show_progress="minimal")


def _wire_animate(runner: AppJobRunner, w: SimpleNamespace, run: gr.Button, outputs: list) -> None:
    """The Animate button: one job with the page's choices; status, the result and its downloads come back."""

    def animate(source_files, bundled_source_name, driving_file, bundled_driving_name, model_label, motion_mode,
                sigma, paste, steps, size, limit, face, progress=gr.Progress()):
        request = AppRequest(
            sources=[str(f) for f in source_files or []],
            bundled_source=None if bundled_source_name == NO_EXAMPLE else bundled_source_name,
            driving=driving_file or None,
            bundled_driving=None if bundled_driving_name == NO_EXAMPLE else bundled_driving_name,
            model=model_label, motion=motion_mode, smooth=float(sigma or 0), paste_back=bool(paste),
            finetune_steps=int(steps or 0), output_size=int(size), max_frames=int(limit or 0),
            face_index=int(face or 0),
        )
        answer = runner.run(request, report=lambda fraction, text: progress(fraction, desc=text))
        if not answer.ok:
            gr.Warning(answer.error)
            return answer.status(), "", None
        return answer.status(), result_html(answer), [str(answer.result), str(answer.side_by_side)]

    run.click(
        animate,
        [w.sources, w.bundled_source, w.driving, w.bundled_driving, w.model, w.motion, w.smooth, w.paste_back,
         w.finetune_steps, w.output_size, w.max_frames, w.face_index],
        outputs,
        concurrency_limit=1, concurrency_id="device",  # one device: jobs and live frames take turns
    )


def build_page(runner: AppJobRunner, *, delete_cache: tuple[int, int] | None = (3600, 3600)) -> gr.Blocks:
    """The page; events run ``runner`` one job at a time (the queue is set up by the caller).

    Args:
        runner: runs the animation jobs.
        delete_cache: (every, older than) in seconds: Gradio's copies of uploads and results
            that are removed while the server runs (all go when it stops).
    """
    portraits = list(runner.portraits)
    videos = list(runner.driving_videos)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=delete_cache) as page:
        gr.Markdown(
            "# talkinghead\nGive one or more photos of a person and a driving video of anyone: the person is "
            "rendered with the driver's head motion and expressions. Upload your own, or click a bundled "
            "example; uploads take precedence over the bundled examples."
        )
        w = _input_widgets(runner, portraits, videos)
        _settings_widgets(runner, w)
        run = gr.Button("Animate", variant="primary", elem_id="animate")
        status = gr.Markdown(elem_id="status")
        result = gr.HTML(elem_id="result-video")
        downloads = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="downloads")
        _wire_source_check(runner, page, w)
        # A click on a thumbnail chooses that example (the dropdowns stay the record of the choice).
        w.portrait_gallery.select(_choose(portraits), None, w.bundled_source)
        w.video_gallery.select(_choose(videos), None, w.bundled_driving)
        _wire_animate(runner, w, run, [status, result, downloads])
        add_live_section(runner, sources=w.sources, bundled_source=w.bundled_source, model=w.model, motion=w.motion,
                         output_size=w.output_size, face_index=w.face_index, no_example=NO_EXAMPLE)
    return page
