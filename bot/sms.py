"""SMS behind one small module: Twilio for real, or the console for demos."""

from __future__ import annotations

import logging
import sys
import time
import uuid
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


class SmsSender(Protocol):
    """Anything that can deliver a text message and name it by an id."""

    def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` and return the provider's message id.

        Raises ``SmsFailed`` when the provider refuses or cannot be reached.
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

    def send(self, to: str, body: str) -> str:
        """Create the message at Twilio and return its SID."""
        started = time.perf_counter()
        outcome = "error"
        try:
            message = self._client.messages.create(to=to, body=body, **self._sender)
            outcome = "accepted"
            return str(message.sid)
        except TwilioRestException as exc:
            outcome = f"refused status={exc.status} code={exc.code}"
            raise SmsFailed(
                f"Twilio refused the message (error {exc.code}): {exc.msg}",
                retryable=exc.status in RETRYABLE_STATUSES,
            ) from exc
        except requests.RequestException as exc:
            outcome = f"unreachable {type(exc).__name__}"
            raise SmsFailed(
                "Twilio could not be reached; the message may not have been sent.",
                retryable=False,
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


def build_sender(settings: Settings) -> SmsSender:
    """Return the sender that ``SMS_BACKEND`` names."""
    if settings.sms_backend == "console":
        return ConsoleSms()
    return TwilioSms(settings)


def _sender_fields(settings: Settings) -> dict[str, Any]:
    if settings.twilio_messaging_service_sid:
        return {"messaging_service_sid": settings.twilio_messaging_service_sid}
    return {"from_": settings.twilio_phone_number}
