"""SMS behind one small module: Twilio for real, or the console for demos."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot.config import Settings
from bot.errors import SmsFailed
from bot.logs import mask_phone, redact

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429})
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_PAUSE = 4.0
LOOKUP_LIMIT = 50
LOOKUP_SKEW = timedelta(minutes=1)


class SmsSender(Protocol):
    """Anything that can deliver a text message and name it by an id."""

    def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` and return the provider's message id.

        Raises ``SmsFailed`` when the provider refuses or cannot be reached.
        """
        ...

    def find(self, to: str, body: str, since: datetime) -> str | None:
        """Return the id of a message with this body sent to ``to`` since then.

        Raises ``SmsFailed`` when the provider cannot be asked.
        """
        ...


class TwilioSms:
    """Sends through Twilio's REST API with the official client."""

    def __init__(self, settings: Settings) -> None:
        settings.require_twilio()
        self._sender = _sender_fields(settings)
        self._client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=TwilioHttpClient(timeout=settings.twilio_timeout),
        )
        if settings.twilio_api_base_url:
            self._client.api.base_url = settings.twilio_api_base_url
        self._retry_seconds = settings.twilio_retry_seconds

    def send(self, to: str, body: str) -> str:
        """Create the message at Twilio and return its SID, retrying its 429s."""
        deadline = time.monotonic() + self._retry_seconds
        pause = RETRY_BASE_SECONDS
        while True:
            try:
                return self._create(to, body)
            except SmsFailed as exc:
                if not exc.retryable or time.monotonic() + pause > deadline:
                    raise
                log.warning("twilio throttled the SMS; retrying in %.1f s", pause)
                time.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_PAUSE)

    def find(self, to: str, body: str, since: datetime) -> str | None:
        """Ask Twilio whether a message with this body went to ``to`` since then."""
        started = time.perf_counter()
        outcome = "error"
        try:
            messages = self._client.messages.list(to=to, limit=LOOKUP_LIMIT)
            found = next(
                (
                    str(message.sid)
                    for message in messages
                    if message.body == body
                    and message.date_created is not None
                    and message.date_created >= since - LOOKUP_SKEW
                ),
                None,
            )
            outcome = "found" if found else "absent"
            return found
        except (TwilioRestException, requests.RequestException) as exc:
            raise SmsFailed("Twilio could not be asked about an earlier SMS.") from exc
        finally:
            log.info(
                "twilio.Messages.list to=%s outcome=%s duration_ms=%.0f",
                mask_phone(to),
                outcome,
                (time.perf_counter() - started) * 1000,
            )

    def _create(self, to: str, body: str) -> str:
        started = time.perf_counter()
        outcome = "error"
        try:
            message = self._client.messages.create(to=to, body=body, **self._sender)
            outcome = "accepted"
            return str(message.sid)
        except TwilioRestException as exc:
            outcome = f"refused status={exc.status} code={exc.code}"
            raise SmsFailed(
                f"Twilio refused the message (error {exc.code}): "
                f"{redact(_reason(exc.msg))}",
                retryable=exc.status in RETRYABLE_STATUSES,
                unavailable=exc.status >= 500,
            ) from exc
        except requests.RequestException as exc:
            outcome = f"unreachable {type(exc).__name__}"
            raise SmsFailed(
                "Twilio could not be reached; the message may not have been sent.",
                uncertain=True,
            ) from exc
        finally:
            log.info(
                "twilio.Messages.create to=%s outcome=%s duration_ms=%.0f",
                mask_phone(to),
                redact(outcome),
                (time.perf_counter() - started) * 1000,
            )


class ConsoleSms:
    """Prints each message to standard output instead of sending it."""

    def send(self, to: str, body: str) -> str:
        """Print the message and return a made-up id."""
        sid = "CONSOLE" + uuid.uuid4().hex[:25]
        print(f"[SMS to {mask_phone(to)}] {body}", file=sys.stdout, flush=True)
        log.info("console.sms to=%s sid=%s", mask_phone(to), sid)
        return sid

    def find(self, to: str, body: str, since: datetime) -> str | None:
        """Nothing printed survives a crash, so nothing is ever found."""
        return None


def build_sender(settings: Settings) -> SmsSender:
    """Return the sender that ``SMS_BACKEND`` names."""
    if settings.sms_backend == "console":
        return ConsoleSms()
    return TwilioSms(settings)


def _reason(message: str) -> str:
    """Drop the Twilio client's own prefix from an error message."""
    return message.removeprefix("Unable to create record: ")


def _sender_fields(settings: Settings) -> dict[str, Any]:
    if settings.twilio_messaging_service_sid:
        return {"messaging_service_sid": settings.twilio_messaging_service_sid}
    return {"from_": settings.twilio_phone_number}
