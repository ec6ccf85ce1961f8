"""Logging set-up, and the masking that keeps phone numbers and secrets out of logs."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

PHONE_PATTERN = re.compile(r"(\+|%2[bB])(\d{3,11})(\d{4})\b")


def mask_phone(number: str) -> str:
    """Return the number with every digit but the last four hidden: ``*******2671``."""
    digits = re.sub(r"\D", "", number)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def redact(text: str) -> str:
    """Mask every E.164 phone number (plain or URL-encoded) found in ``text``."""
    return PHONE_PATTERN.sub(lambda match: "*" * len(match[2]) + match[3], text)


class RedactingFilter(logging.Filter):
    """A handler filter that masks phone numbers in every record, whoever logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message and any traceback once, masked, so nothing escapes."""
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log drains."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Send logs to stderr in ``text`` or ``json`` form, with phone numbers masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

    for noisy in (
        "twilio.http_client",
        "botocore",
        "urllib3",
        "werkzeug",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
