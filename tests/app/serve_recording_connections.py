"""Run ``talkinghead ARGS...`` and append every connection it tries off this machine to RECORD.

Usage: python serve_recording_connections.py RECORD app --port N ...

A Python audit hook sees each ``socket.connect`` and ``socket.getaddrinfo`` of the server
process (Gradio, httpx, Hugging Face Hub included), so the app test can check that serving the
page and running jobs asks nothing of the network.
"""

from __future__ import annotations

import sys
from pathlib import Path

LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", None}


def main() -> int:
    record = Path(sys.argv[1])
    record.write_text("")  # exists from here on: the test refuses to trust a record that was never started

    def hook(event: str, args: tuple) -> None:
        if event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else None  # a str/bytes address is a local socket
        elif event == "socket.getaddrinfo":
            host = args[0]
            host = host.decode() if isinstance(host, bytes) else host
        else:
            return
        if host not in LOCAL:
            with record.open("a") as out:
                out.write(f"{event} {host}\n")

    sys.addaudithook(hook)
    from talkinghead.cli import main as cli

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
