"""The Gradio page of ``talkinghead app``: inputs, settings, *Animate*, results.

Only layout and wiring live here; every decision about the inputs is
:class:`talkinghead.app.jobs.AppJobRunner`'s. The page asks nothing of the internet: the
theme uses the browser's own fonts (Gradio's default theme loads Google Fonts).
"""

from __future__ import annotations

import gradio as gr

from talkinghead.app.jobs import AppJobRunner, AppRequest
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
            "rendered with the driver's head motion and expressions. Uploads take precedence over the bundled "
            "examples."
        )
        with gr.Row():
            with gr.Column():
                sources = gr.File(label="Source photo(s)", file_count="multiple", file_types=["image"],
                                  elem_id="source-files")
                bundled_source = gr.Dropdown([NO_EXAMPLE, *portraits], value=_default(portraits, "sadtalker_happy.png"),
                                             label="or a bundled portrait", elem_id="bundled-source")
            with gr.Column():
                driving = gr.Video(label="Driving video (upload or record)", sources=["upload", "webcam"],
                                   format=None, elem_id="driving-video")
                bundled_driving = gr.Dropdown([NO_EXAMPLE, *videos], value=_default(videos, "liveportrait_d18.mp4"),
                                              label="or a bundled driving video", elem_id="bundled-driving")
        with gr.Accordion("Settings", open=True):
            with gr.Row():
                model = gr.Dropdown(list(runner.models), value=next(iter(runner.models)), label="Model",
                                    elem_id="model")
                motion = gr.Radio(list(MOTION_MODES), value="relative", label="Motion",
                                  info="relative: another person's video; absolute: the same person")
                smooth = gr.Slider(0, 4, value=0, step=0.5, label="Smoothing (frames)",
                                   info="Gaussian over the driver's landmarks against jitter (0 = off)")
            with gr.Row():
                paste_back = gr.Checkbox(False, label="Paste back into the full photo")
                finetune_steps = gr.Number(0, precision=0, minimum=0, maximum=1000, label="Fine-tuning steps",
                                           info="tune the model on the photo(s) first; ~0.6 s a step on a CPU",
                                           elem_id="finetune-steps")
                output_size = gr.Slider(64, 512, value=256, step=32, label="Output size (px)")
                max_frames = gr.Number(0, precision=0, minimum=0, label="Frame limit (0 = all)",
                                       elem_id="max-frames")
        run = gr.Button("Animate", variant="primary", elem_id="animate")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            result = gr.Video(label="Result", format=None, interactive=False, elem_id="result-video")
            side_by_side = gr.Video(label="Source | driving | result", format=None, interactive=False,
                                    elem_id="side-video")
        downloads = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="downloads")

        def animate(source_files, bundled_source_name, driving_file, bundled_driving_name, model_label, motion_mode,
                    sigma, paste, steps, size, limit, progress=gr.Progress()):
            request = AppRequest(
                sources=[str(f) for f in source_files or []],
                bundled_source=None if bundled_source_name == NO_EXAMPLE else bundled_source_name,
                driving=driving_file or None,
                bundled_driving=None if bundled_driving_name == NO_EXAMPLE else bundled_driving_name,
                model=model_label, motion=motion_mode, smooth=float(sigma or 0), paste_back=bool(paste),
                finetune_steps=int(steps or 0), output_size=int(size), max_frames=int(limit or 0),
            )
            answer = runner.run(request, report=lambda fraction, text: progress(fraction, desc=text))
            if not answer.ok:
                gr.Warning(answer.error)
                return answer.status(), None, None, None
            files = [str(answer.result), str(answer.side_by_side)]
            return answer.status(), files[0], files[1], files

        run.click(
            animate,
            [sources, bundled_source, driving, bundled_driving, model, motion, smooth, paste_back, finetune_steps,
             output_size, max_frames],
            [status, result, side_by_side, downloads],
            concurrency_limit=1, concurrency_id="device",  # one device: jobs and live frames take turns
        )
        add_live_section(runner, sources=sources, bundled_source=bundled_source, model=model, motion=motion,
                         output_size=output_size, no_example=NO_EXAMPLE)
    return page
