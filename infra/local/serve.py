"""Serve WSGI apps on loopback in a background thread (local stack and tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server

WSGIApp = Callable


@dataclass
class RunningServer:
    """A threaded WSGI server started by `serve_in_thread`."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """Base URL such as `http://127.0.0.1:41234` (no trailing slash)."""
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        """Stop accepting requests and join the serving thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_in_thread(app: WSGIApp, *, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start `app` on `host:port` (0 picks a free port) with one thread per request."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"wsgi-{server.server_port}", daemon=True)
    thread.start()
    return RunningServer(server=server, thread=thread)
