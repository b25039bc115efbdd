"""``talkinghead app``: serve the page on this machine, offline, one job at a time.

Gradio is an optional dependency (``pip install 'talkinghead[app]'``). Before it is
imported, its analytics and Hugging Face lookups are switched off and its upload folder
is moved into the app's own temporary folder, which also holds the job folders and is
removed when the server stops.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from talkinghead.app.jobs import DEFAULT_MAX_UPLOAD_MB, AppJobRunner
from talkinghead.errors import MissingDependencyError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# Jobs that may wait behind the running one; more get "queue full" in the page.
MAX_QUEUED_JOBS = 8
# Environment that keeps Gradio off the network: no usage analytics, no version check,
# no Hugging Face Hub calls.
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def import_gradio():
    """Gradio, imported offline, or a one-line error saying how to install it."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ[key] = value
    try:
        import gradio
    except ImportError as err:
        raise MissingDependencyError(
            f"talkinghead app needs Gradio ({err}); install it with: pip install 'talkinghead[app]'"
        ) from None
    return gradio


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    checkpoints: list[str | Path] | None = None,
    device: str = "auto",
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
) -> None:
    """Serve the page at http://HOST:PORT until interrupted (Ctrl-C / SIGTERM), then clean up.

    Args:
        host: address to listen on (127.0.0.1: this machine only).
        port: TCP port.
        checkpoints: models offered besides the bundled one.
        device: ``auto``, ``cpu`` or ``cuda``.
        max_upload_mb: the largest upload accepted, in MiB.

    Raises:
        MissingDependencyError: Gradio is not installed.
        AppInputError: a ``--checkpoint`` that does not exist, or no model at all.
    """
    with tempfile.TemporaryDirectory(prefix="talkinghead-app-") as work:
        # Uploads and Gradio's copies of results live here too, so stopping removes them all.
        os.environ["GRADIO_TEMP_DIR"] = str(Path(work) / "gradio")
        gr = import_gradio()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes of the local server
        from talkinghead.app.page import build_page, offline_theme

        runner = AppJobRunner(work, checkpoints=checkpoints, device=device, max_upload_mb=max_upload_mb)
        page = build_page(runner)
        page.queue(default_concurrency_limit=1, max_size=MAX_QUEUED_JOBS)
        try:
            page.launch(
                server_name=host, server_port=port, share=False, inbrowser=False, show_error=False,
                max_file_size=f"{max_upload_mb:g}mb", allowed_paths=[work], ssr_mode=False, pwa=False,
                mcp_server=False, footer_links=[], theme=offline_theme(), quiet=False,
            )
        finally:
            page.close()
            gr.close_all()
            runner.close()
