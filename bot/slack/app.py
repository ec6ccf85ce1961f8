"""The Bolt app behind ``/cpu``: acknowledge at once, then check and answer.

The same app serves HTTP (``POST /slack/events`` in the web process) and Socket
Mode (the worker). Nothing here calls AWS, Twilio or SQL: the core does.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import validation
from bot.config import Settings
from bot.core import Checker
from bot.errors import CpuBotError, InvalidInput, NotAllowed, StoreUnavailable
from bot.models import CheckRequest, Requester
from bot.slack import messages
from bot.slack.command import Help, History, parse

log = logging.getLogger(__name__)

COMMAND = "/cpu"
BOT_SCOPES = ("commands", "chat:write")  # the command itself, and replies in channels
HISTORY_LINES = 10
LISTENER_THREADS = 64  # each /cpu holds one while AWS answers; Bolt's default is 5


class Answered(Exception):
    """The command is answered at once, only to the caller, and nothing is checked.

    Help, history, mistakes and refusals all end this way.
    """

    def __init__(self, message: messages.Message) -> None:
        super().__init__(message.get("text", ""))
        self.message = message


class CpuCommand:
    """Handles ``/cpu``: gate, acknowledge, check, reply."""

    def __init__(self, settings: Settings, checker: Checker) -> None:
        self._settings = settings
        self._checker = checker

    def handle(self, ack: Ack, respond: Respond, command: dict[str, Any]) -> None:
        """Answer one ``/cpu`` invocation."""
        requester = Requester("slack", command["user_id"], command.get("channel_id"))
        try:
            request = self._accept(command, requester)
        except Answered as answer:
            ack(**answer.message)
            return

        if not self._first_delivery(command):
            ack()
            return

        ack(**messages.checking(request))
        _post(respond, self._answer(request, requester))

    def _accept(self, command: dict[str, Any], requester: Requester) -> CheckRequest:
        """Return the validated request, or raise ``Answered`` with the answer."""
        self._gate(requester)
        try:
            parsed = parse(command.get("text", ""))
            if isinstance(parsed, Help):
                raise Answered(messages.help_message())
            if isinstance(parsed, History):
                raise Answered(self._history(parsed.instance))
            request = self._checker.request(
                parsed.account,
                parsed.role,
                parsed.instance,
                parsed.phone,
                parsed.region,
                parsed.threshold,
            )
            self._checker.authorize(request, requester)
        except InvalidInput as exc:
            raise Answered(messages.mistake(str(exc))) from exc
        except NotAllowed as exc:
            raise Answered(messages.refusal(str(exc))) from exc
        return request

    def _history(self, instance: str) -> messages.Message:
        """Answer ``/cpu history INSTANCE`` from the audit trail."""
        instance_id = validation.instance_id(instance)
        try:
            records = self._checker.history(instance_id, limit=HISTORY_LINES)
        except StoreUnavailable as exc:
            return messages.failure(str(exc))
        return messages.history(instance_id, records)

    def _gate(self, requester: Requester) -> None:
        users = self._settings.slack_allowed_users
        channels = self._settings.slack_allowed_channels
        if users and requester.name not in users:
            raise Answered(messages.refusal(messages.not_allowed_user()))
        if channels and requester.channel not in channels:
            raise Answered(messages.refusal(messages.not_allowed_channel()))

    def _first_delivery(self, command: dict[str, Any]) -> bool:
        """Say whether this invocation is new, so a redelivery runs no second check."""
        trigger = command.get("trigger_id")
        if not trigger:
            return True
        try:
            return self._checker.first_delivery(f"slack:{trigger}")
        except StoreUnavailable:
            log.warning("could not record the Slack delivery; handling it anyway")
            return True

    def _answer(self, request: CheckRequest, requester: Requester) -> messages.Message:
        try:
            outcome = self._checker.check(request, requester)
        except CpuBotError as exc:
            return messages.failure(str(exc))
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("unexpected error in /cpu ref=%s", ref)
            return messages.failure(
                f"Error retrieving CPU usage: internal error (ref {ref})."
            )
        return messages.result(outcome, requester)


def build_bolt_app(settings: Settings, checker: Checker) -> App:
    """Return the Bolt app, built so that it starts without reaching Slack."""
    client = WebClient(
        token=settings.slack_bot_token, base_url=api_base_url(settings.slack_api_url)
    )
    app = App(
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="slack-listener"
        ),
        signing_secret=settings.slack_signing_secret,
        client=client,
        token_verification_enabled=False,
        process_before_response=False,
        logger=logging.getLogger("bot.slack.bolt"),
    )
    app.command(COMMAND)(CpuCommand(settings, checker).handle)
    return app


def api_base_url(url: str | None) -> str:
    """Return the Web API base URL, ending in ``/api/``, Slack's own by default."""
    if not url:
        return str(WebClient.BASE_URL)
    base = url.rstrip("/")
    return base + "/" if base.endswith("/api") else base + "/api/"


def _post(respond: Callable[..., Any], message: messages.Message) -> None:
    """Send a reply to the command's response_url, logging the call and its time."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        answer = respond(replace_original=False, **message)
        if getattr(answer, "status_code", 200) >= 300:
            outcome = f"status={answer.status_code}"
    except Exception as exc:  # Slack being away must not crash the listener
        outcome = f"error={type(exc).__name__}"
    log.info(
        "slack.respond type=%s outcome=%s duration_ms=%.0f",
        message.get("response_type"),
        outcome,
        (time.perf_counter() - started) * 1000,
    )
