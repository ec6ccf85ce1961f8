"""The worker process: the Slack app over Socket Mode, when SLACK_APP_TOKEN is set."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.config import Settings
from bot.core import build_checker
from bot.errors import ConfigError, SlackUnavailable
from bot.slack.app import build_bolt_app
from bot.store import migrate_if_local

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Serve ``/cpu`` over Socket Mode until SIGTERM or Ctrl-C; return an exit code."""
    if not settings.slack_app_token:
        print(
            "cpubot worker: nothing to run: set SLACK_APP_TOKEN (xapp-...) to serve "
            "Slack over Socket Mode, or scale this process to zero.",
            flush=True,
        )
        return 0
    if not settings.slack_enabled:
        raise ConfigError(
            "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must be set beside "
            "SLACK_APP_TOKEN for Socket Mode."
        )

    checker = build_checker(settings)
    migrate_if_local(settings.database_url)
    checker.settle_pending()
    handler = SocketModeHandler(
        build_bolt_app(settings, checker), settings.slack_app_token
    )

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker stopping on signal %s", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    try:
        # slack_bolt leaves connect() and close() without type hints.
        handler.connect()  # type: ignore[no-untyped-call]
    except Exception as exc:  # slack_sdk raises several unrelated kinds here
        raise SlackUnavailable(
            f"Slack could not be reached to open Socket Mode ({type(exc).__name__}); "
            "check SLACK_APP_TOKEN and the network."
        ) from exc
    log.info("worker connected to Slack over Socket Mode")
    try:
        stop.wait()
    finally:
        handler.close()  # type: ignore[no-untyped-call]
    return 0
