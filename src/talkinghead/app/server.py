"""``talkinghead app``: serve the page on this machine, offline, one job at a time.

Gradio is an optional dependency (``pip install 'talkinghead[app]'``). Before it is
imported, its analytics and Hugging Face lookups are switched off and its upload folder
is moved into the app's own temporary folder, which also holds the job folders and is
removed when the server stops.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

from talkinghead.app.jobs import DEFAULT_MAX_UPLOAD_MB, AppJobRunner
from talkinghead.errors import MissingDependencyError, TalkingHeadError

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


TEMP_PREFIX = "talkinghead-app-"  # + owner pid + "-": the app's temporary folder in the system's temp folder


class PortInUseError(TalkingHeadError, OSError):
    """The app's port is taken by another program (or another app)."""


def check_port_free(host: str, port: int) -> None:
    """Refuse, with the fix, a ``port`` that something already listens on at ``host``.

    Checked before Gradio starts: its own message advises an environment variable and a
    ``launch()`` argument, not the command's ``--port``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                return  # not ours to judge here (an unknown host...): Gradio says what it says
            raise PortInUseError(
                f"port {port} on {host} is already in use (another talkinghead app or another server); "
                f"choose a free one with --port, e.g. --port {port + 1}"
            ) from None


def remove_dead_app_folders(root: str | Path | None = None) -> list[Path]:
    """Delete the temporary folders of apps that were killed (their process no longer runs).

    A stopped app removes its folder; one killed with SIGKILL (or a power cut) cannot, and its
    uploads and results stayed in the temp folder for ever. Only ``talkinghead-app-PID-*``
    folders whose PID is dead are touched. Returns what was removed.
    """
    from talkinghead.inference.stale_temporaries import process_alive

    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        pid = folder.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir() or process_alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            log.warning("%s: the temporary folder of a stopped app could not be removed entirely; delete it", folder)
        else:
            removed.append(folder)
            log.info("removed %s, left by an app that was killed", folder)
    return removed


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
        PortInUseError: ``port`` is taken on ``host``.
        KeyboardInterrupt: when stopped (Ctrl-C / SIGTERM), after the clean-up.
    """
    check_port_free(host, port)
    remove_dead_app_folders()
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as work:
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
            # launch() blocks until Ctrl-C / SIGTERM; Gradio catches that itself and returns. Raised
            # again, so the command ends as every interrupted command does (one line, exit 130).
            raise KeyboardInterrupt
        finally:
            page.close()
            gr.close_all()
            runner.close()
