"""Settings read from the environment (or a ``.env`` file), checked once at start.

Every setting that is missing or malformed raises :class:`ConfigError` with one
line naming the variable and what it should hold, so a process stops at start
instead of failing on its first request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot import validation
from bot.errors import ConfigError, InvalidInput

T = TypeVar("T")

EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
TOKEN_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{1,32}$")
STATISTICS = ("Average", "Maximum", "Minimum")
DEFAULT_DATABASE_URL = "sqlite:///cpubot.db"
TWILIO_VARIABLES = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_PHONE_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
)


@dataclass(frozen=True)
class ApiToken:
    """A bearer token for the HTTP API and the name it is known by in logs."""

    name: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Settings:
    """All of cpubot's configuration; see ``.env.example`` for each variable."""

    aws_region: str = "us-east-1"
    aws_external_id: str | None = None
    aws_endpoint_url: str | None = None
    aws_connect_timeout: float = 3.0
    aws_read_timeout: float = 5.0
    aws_max_attempts: int = 3
    cpu_threshold: float = 85.0
    cpu_statistic: str = "Average"
    cpu_period_seconds: int = 300
    cpu_lookback_minutes: int = 20
    alert_cooldown_minutes: int = 60
    api_tokens: tuple[ApiToken, ...] = ()
    allowed_accounts: frozenset[str] = frozenset()
    sms_backend: str = "twilio"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_phone_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str | None = None
    twilio_timeout: float = 10.0
    twilio_retry_seconds: float = 8.0
    sms_allowed_countries: frozenset[str] = frozenset()
    sms_allowed_numbers: frozenset[str] = frozenset()
    sms_max_per_number_per_hour: int = 5
    sms_max_per_hour: int = 100
    sms_pending_seconds: int = 120
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str | None = None
    slack_allowed_channels: frozenset[str] = frozenset()
    slack_allowed_users: frozenset[str] = frozenset()
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def slack_enabled(self) -> bool:
        """Return True when the Slack app is configured (bot token and secret)."""
        return bool(self.slack_bot_token and self.slack_signing_secret)

    def require_twilio(self) -> None:
        """Raise :class:`ConfigError` unless Twilio can be used to send an SMS."""
        for name, value in (
            ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
        ):
            if not value:
                raise ConfigError(
                    f"{name} is not set: set it to your Twilio credentials, "
                    "or set SMS_BACKEND=console to print messages instead."
                )

        if not (self.twilio_phone_number or self.twilio_messaging_service_sid):
            raise ConfigError(
                "TWILIO_PHONE_NUMBER or TWILIO_MESSAGING_SERVICE_SID must be set: "
                "the sender of the SMS alerts."
            )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting from ``env`` (default: the environment)."""
    source = _Source(os.environ if env is None else env)

    values: dict[str, Any] = {}
    for name, variable, parse in _VARIABLES:
        value = source.optional(variable, parse)
        if value is not None:
            values[name] = value
    settings = Settings(**values)

    if settings.sms_backend == "twilio" and source.has_any(*TWILIO_VARIABLES):
        settings.require_twilio()
    _check_slack_pair(settings)
    _check_pending_outlives_a_send(settings)
    return settings


def _check_pending_outlives_a_send(settings: Settings) -> None:
    """Refuse a pending timeout that a live send could outlast."""
    longest = settings.twilio_retry_seconds + 2 * settings.twilio_timeout
    if settings.sms_pending_seconds <= longest:
        raise ConfigError(
            f"SMS_PENDING_SECONDS must be more than {longest:g} seconds "
            "(TWILIO_RETRY_SECONDS plus twice TWILIO_TIMEOUT), the longest a send "
            f"can take (got {settings.sms_pending_seconds})."
        )


def _check_slack_pair(settings: Settings) -> None:
    """Slack needs both its bot token and its signing secret, or neither."""
    token, secret = settings.slack_bot_token, settings.slack_signing_secret
    if token and not secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: Slack needs it beside SLACK_BOT_TOKEN "
            "(Basic Information > App Credentials > Signing Secret)."
        )
    if secret and not token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: Slack needs it beside SLACK_SIGNING_SECRET "
            "(OAuth & Permissions > Bot User OAuth Token, xoxb-...)."
        )
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-...).")


class _Source:
    """Reads raw values and turns a parser's ``ValueError`` into a ``ConfigError``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def has_any(self, *names: str) -> bool:
        return any(self._env.get(name, "").strip() for name in names)

    def optional(self, name: str, parse: Callable[[str], T]) -> T | None:
        raw = self._env.get(name, "").strip()
        if not raw:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} {exc} (got {_shown(name, raw)}).") from None


def _shown(name: str, raw: str) -> str:
    """Quote a bad value for an error line, unless the variable holds a secret."""
    private = ("TOKEN", "SECRET", "DATABASE_URL", "NUMBERS")
    if any(word in name for word in private):
        return "a value that is hidden because it is private"
    return repr(raw)


def _number(raw: str, low: float, high: float, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be {what}") from None
    if not low <= value <= high:
        raise ValueError(f"must be {what}")
    return value


def _whole(raw: str, low: int, high: int, what: str) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"must be {what}")
    return int(raw)


def _percentage(raw: str) -> float:
    return _number(raw, 0, 100, "a percentage from 0 to 100")


def _seconds(raw: str) -> float:
    return _number(raw, 0.1, 120, "a number of seconds from 0.1 to 120")


def _attempts(raw: str) -> int:
    return _whole(raw, 1, 10, "a whole number of attempts from 1 to 10")


def _minutes(raw: str) -> int:
    return _whole(raw, 0, 10080, "a whole number of minutes from 0 to 10080")


def _lookback(raw: str) -> int:
    return _whole(raw, 5, 1440, "a whole number of minutes from 5 to 1440")


def _port(raw: str) -> int:
    return _whole(raw, 1, 65535, "a port number from 1 to 65535")


def _period(raw: str) -> int:
    value = _whole(raw, 60, 3600, "a multiple of 60 seconds from 60 to 3600")
    if value % 60:
        raise ValueError("must be a multiple of 60 seconds from 60 to 3600")
    return value


def _statistic(raw: str) -> str:
    if raw not in STATISTICS:
        raise ValueError(f"must be one of {', '.join(STATISTICS)}")
    return raw


def _region(raw: str) -> str:
    if not validation.REGION_PATTERN.match(raw):
        raise ValueError("must be an AWS region name such as us-east-1")
    return raw


def _external_id(raw: str) -> str:
    if not EXTERNAL_ID_PATTERN.match(raw):
        raise ValueError("must be 2 to 1224 letters, digits or the characters +=,.@:/-")
    return raw


def _url(raw: str) -> str:
    if not re.match(r"^https?://[^\s/]+", raw):
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _e164(raw: str) -> str:
    if not re.match(r"^\+[1-9]\d{6,14}$", raw):
        raise ValueError("must be a phone number in E.164 form such as +14155550100")
    return raw


def _messaging_service(raw: str) -> str:
    if not re.match(r"^MG[0-9a-fA-F]{32}$", raw):
        raise ValueError("must be a Messaging Service SID: MG and 32 hex digits")
    return raw


def _sms_backend(raw: str) -> str:
    if raw not in ("twilio", "console"):
        raise ValueError("must be twilio or console")
    return raw


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


def _log_format(raw: str) -> str:
    if raw not in ("text", "json"):
        raise ValueError("must be text or json")
    return raw


def _accounts(raw: str) -> frozenset[str]:
    accounts = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not all(validation.ACCOUNT_PATTERN.match(account) for account in accounts):
        raise ValueError("must be comma-separated 12-digit AWS account ids")
    return accounts


def _retry_seconds(raw: str) -> float:
    return _number(raw, 0, 60, "a number of seconds from 0 to 60")


def _cap(raw: str) -> int:
    return _whole(raw, 0, 100000, "a whole number of messages from 0 to 100000")


def _pending_seconds(raw: str) -> int:
    return _whole(raw, 1, 3600, "a whole number of seconds from 1 to 3600")


def _countries(raw: str) -> frozenset[str]:
    import phonenumbers

    codes = frozenset(part.strip().upper() for part in raw.split(",") if part.strip())
    unknown = sorted(codes - phonenumbers.SUPPORTED_REGIONS)
    if unknown:
        raise ValueError(
            "must be comma-separated ISO country codes such as US,GB "
            f"({', '.join(unknown)} unknown)"
        )
    return codes


def _numbers(raw: str) -> frozenset[str]:
    numbers = set()
    for part in raw.split(","):
        if part.strip():
            try:
                numbers.add(validation.phone_number(part.strip()))
            except InvalidInput:
                raise ValueError(
                    "must be comma-separated E.164 numbers such as +14155550100"
                ) from None
    return frozenset(numbers)


def _slack_ids(raw: str) -> frozenset[str]:
    ids = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not all(re.match(r"^[A-Z0-9]{2,}$", part) for part in ids):
        raise ValueError("must be comma-separated Slack ids such as C0123ABC or U0456")
    return ids


def _api_tokens(raw: str) -> tuple[ApiToken, ...]:
    """Parse ``name:secret`` or bare ``secret`` entries; bare ones are numbered."""
    tokens = []
    for position, entry in enumerate(raw.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        name, _, secret = entry.rpartition(":")
        name = name or f"token{position}"
        if not TOKEN_NAME_PATTERN.match(name):
            raise ValueError("names must be 1 to 32 letters, digits or +=,.@-")
        if len(secret) < 16:
            raise ValueError("must hold tokens of at least 16 characters each")
        tokens.append(ApiToken(name=name, secret=secret))
    return tuple(tokens)


def _database(raw: str) -> str:
    """Accept Heroku's ``postgres://`` scheme and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw.removeprefix(prefix)
    if not re.match(r"^[a-z0-9+]+://", raw):
        raise ValueError("must be a database URL such as postgres://... or sqlite:///")
    return raw


# Each setting: its field, its variable, and the parser that checks it. Defaults are
# those of the Settings dataclass.
_VARIABLES: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("aws_region", "AWS_REGION", _region),
    ("aws_external_id", "AWS_EXTERNAL_ID", _external_id),
    ("aws_endpoint_url", "AWS_ENDPOINT_URL", _url),
    ("aws_connect_timeout", "AWS_CONNECT_TIMEOUT", _seconds),
    ("aws_read_timeout", "AWS_READ_TIMEOUT", _seconds),
    ("aws_max_attempts", "AWS_MAX_ATTEMPTS", _attempts),
    ("cpu_threshold", "CPU_THRESHOLD", _percentage),
    ("cpu_statistic", "CPU_STATISTIC", _statistic),
    ("cpu_period_seconds", "CPU_PERIOD_SECONDS", _period),
    ("cpu_lookback_minutes", "CPU_LOOKBACK_MINUTES", _lookback),
    ("alert_cooldown_minutes", "ALERT_COOLDOWN_MINUTES", _minutes),
    ("api_tokens", "API_TOKENS", _api_tokens),
    ("allowed_accounts", "ALLOWED_ACCOUNTS", _accounts),
    ("sms_backend", "SMS_BACKEND", _sms_backend),
    ("twilio_account_sid", "TWILIO_ACCOUNT_SID", str),
    ("twilio_auth_token", "TWILIO_AUTH_TOKEN", str),
    ("twilio_phone_number", "TWILIO_PHONE_NUMBER", _e164),
    (
        "twilio_messaging_service_sid",
        "TWILIO_MESSAGING_SERVICE_SID",
        _messaging_service,
    ),
    ("twilio_api_base_url", "TWILIO_API_BASE_URL", _url),
    ("twilio_timeout", "TWILIO_TIMEOUT", _seconds),
    ("twilio_retry_seconds", "TWILIO_RETRY_SECONDS", _retry_seconds),
    ("sms_allowed_countries", "SMS_ALLOWED_COUNTRIES", _countries),
    ("sms_allowed_numbers", "SMS_ALLOWED_NUMBERS", _numbers),
    ("sms_max_per_number_per_hour", "SMS_MAX_PER_NUMBER_PER_HOUR", _cap),
    ("sms_max_per_hour", "SMS_MAX_PER_HOUR", _cap),
    ("sms_pending_seconds", "SMS_PENDING_SECONDS", _pending_seconds),
    ("slack_bot_token", "SLACK_BOT_TOKEN", str),
    ("slack_signing_secret", "SLACK_SIGNING_SECRET", str),
    ("slack_app_token", "SLACK_APP_TOKEN", str),
    ("slack_api_url", "SLACK_API_URL", _url),
    ("slack_allowed_channels", "SLACK_ALLOWED_CHANNELS", _slack_ids),
    ("slack_allowed_users", "SLACK_ALLOWED_USERS", _slack_ids),
    ("database_url", "DATABASE_URL", _database),
    ("host", "HOST", str),
    ("port", "PORT", _port),
    ("log_level", "LOG_LEVEL", _log_level),
    ("log_format", "LOG_FORMAT", _log_format),
)
