"""Silence start-up lines that native libraries print straight to file descriptor 2.

mediapipe's TFLite and absl/glog code write lines such as ``INFO: Created TensorFlow Lite
XNNPACK delegate`` and ``W0000 ... inference_feedback_manager.cc`` from C++ when a graph is
built and first run. They bypass Python's ``sys.stderr`` and ``GLOG_minloglevel``, and
printed before every message they bury what the command has to say. :func:`quiet_native_logs`
points descriptor 2 at ``/dev/null`` for the duration of such a call; with ``-v``
(``TALKINGHEAD_VERBOSE=1``) it does nothing, so the lines can still be seen.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator

VERBOSE_ENV = "TALKINGHEAD_VERBOSE"


def native_logs_wanted() -> bool:
    """Whether the user asked to see native libraries' log lines (``-v``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send what native code writes to descriptor 2 to ``/dev/null`` inside the block.

    Python's own ``sys.stderr`` is flushed first, so nothing written before the block is lost.
    """
    if native_logs_wanted():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def output_to_file(path: str | os.PathLike) -> Iterator[None]:
    """Send what is written to the terminal inside the block to the file ``path``.

    For chatty tools (the ONNX exporter logs about 320 lines, from Python and from C++):
    their log is kept where a user can read it when something fails, and the terminal shows
    only what the command has to say. Covered: descriptors 1 and 2 (C++ and ``print``) and
    the root logger's handlers that write to the terminal (``logging.basicConfig``'s, which
    keep their own reference to the stream). ``path`` is replaced.
    """
    terminal = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}
    handlers = [h for h in logging.getLogger().handlers
                if type(h) is logging.StreamHandler and id(h.stream) in terminal]
    with open(path, "w") as log_file:
        previous = [h.setStream(log_file) for h in handlers]
        try:
            with _descriptors_to(log_file):
                yield
        finally:
            for handler, stream in zip(handlers, previous):
                handler.setStream(stream)


@contextmanager
def _descriptors_to(log_file) -> Iterator[None]:
    """Descriptors 1 and 2 point at ``log_file`` inside the block (Python's streams flushed around it)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
    except (OSError, ValueError):  # no descriptors (embedded interpreters): nothing to redirect
        yield
        return
    try:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        yield
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # the log file's disk is full: the terminal comes back all the same
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
