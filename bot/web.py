"""The web process: build the app, migrate a local database if needed, then serve."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from bot.api import create_app
from bot.config import Settings
from bot.store import migrate_if_local


def serve(settings: Settings, *, port: int | None = None) -> None:
    """Serve the API on ``HOST``:``PORT`` until SIGTERM or Ctrl-C, then drain."""
    app = create_app(settings)
    migrate_if_local(settings.database_url)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port or settings.port,
        log_config=None,
        timeout_graceful_shutdown=25,
    )
    with _interrupts_end_quietly():
        uvicorn.Server(config).run()


@contextmanager
def _interrupts_end_quietly() -> Iterator[None]:
    """Let uvicorn drain on Ctrl-C or SIGTERM, then end with exit code 0.

    uvicorn handles both signals itself while it serves and raises them again
    afterwards for the previous handlers; no-op handlers receive them, so neither a
    KeyboardInterrupt traceback nor a death by signal follows the drain.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    stopping = (signal.SIGINT, signal.SIGTERM)
    previous = {
        sig: signal.signal(sig, lambda _signum, _frame: None) for sig in stopping
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
