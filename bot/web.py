"""The web process: build the app, migrate a local database if needed, then serve."""

from __future__ import annotations

import uvicorn

from bot.api import create_app
from bot.config import Settings
from bot.store import migrate


def serve(settings: Settings, *, port: int | None = None) -> None:
    """Serve the API on ``HOST``:``PORT`` until interrupted."""
    app = create_app(settings)
    if settings.database_url.startswith("sqlite"):
        migrate(settings.database_url)

    uvicorn.run(
        app,
        host=settings.host,
        port=port or settings.port,
        log_config=None,
        timeout_graceful_shutdown=25,
    )
