"""A threaded HTTP server on 127.0.0.1 that the stand-ins share."""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

HandlerFactory = Callable[..., BaseHTTPRequestHandler]


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler that keeps the test output free of access logs."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the access log line."""

    def write_reply(
        self, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Send a complete answer; a client that has gone away is ignored."""
        try:
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    """A threaded server whose listen backlog takes a burst of simultaneous clients.

    The standard library's backlog of 5 drops the connections of a burst, and the
    dropped clients retry a second later: a delay that is ours, not the product's.
    """

    request_queue_size = 256
    daemon_threads = True


class BackgroundServer:
    """Serve requests on 127.0.0.1 (a free port) from a daemon thread."""

    def __init__(self) -> None:
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def _handler_factory(self) -> HandlerFactory:
        raise NotImplementedError

    def _on_stop(self) -> None:
        """Release requests that are still waiting; subclasses extend this."""

    @property
    def url(self) -> str:
        """Return the base URL, ``http://127.0.0.1:PORT``, of the running server."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", 0), self._handler_factory())
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release waiting requests and close the socket."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        self._on_stop()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return False at once when the server stops."""
        return not self._stopping.wait(seconds)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
