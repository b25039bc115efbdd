"""The page's live section: the webcam stream in, the animated person out, frame by frame.

It reuses the main section's photo, face number, model, motion and size inputs; *Start live mode*
encodes the person once (a :class:`talkinghead.app.live.LiveSession` kept per browser
session), then every webcam frame Gradio streams is animated as it arrives.
"""

from __future__ import annotations

import gradio as gr

from talkinghead.app.jobs import AppJobRunner, AppRequest

# Seconds between webcam frames sent to the server (the server answers each before the next).
STREAM_EVERY = 0.1
# A stream stops after this many seconds (the page can start it again).
STREAM_TIME_LIMIT = 600


def add_live_section(runner: AppJobRunner, *, sources, bundled_source, model, motion, output_size, face_index,
                     no_example: str) -> None:
    """Add the live section to the page being built (call inside its ``gr.Blocks``)."""
    with gr.Accordion("Live webcam", open=True):
        gr.Markdown("Animate your webcam live with the photo(s) above: start live mode (the person is encoded "
                    "once), then start the webcam. Your first frame with a face is the neutral pose.")
        start = gr.Button("Start live mode", elem_id="live-start")
        status = gr.Markdown(elem_id="live-status")
        with gr.Row():
            webcam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", elem_id="live-webcam")
            animated = gr.Image(label="Animated", interactive=False, elem_id="live-output")
        session = gr.State(None)

        def start_live(source_files, bundled_source_name, model_label, motion_mode, size, face):
            request = AppRequest(
                sources=[str(f) for f in source_files or []],
                bundled_source=None if bundled_source_name == no_example else bundled_source_name,
                model=model_label, motion=motion_mode, output_size=int(size), face_index=int(face or 0),
            )
            live, line = runner.live_session(request)
            return live, line

        def live_frame(frame, live):
            if live is None:
                return None, "Start live mode first (it encodes the photo)."
            if frame is None:
                return gr.skip(), gr.skip()
            image = live.stream(frame)
            line = live.summary() if live.animator.stats.animated else "No face in the webcam yet."
            return (image if image is not None else gr.skip()), line

        start.click(start_live, [sources, bundled_source, model, motion, output_size, face_index], [session, status],
                    concurrency_limit=1, concurrency_id="device")
        webcam.stream(live_frame, [webcam, session], [animated, status], stream_every=STREAM_EVERY,
                      time_limit=STREAM_TIME_LIMIT, concurrency_limit=1, concurrency_id="device")
