"""The values the core passes around: a check's request, its reading and its answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Requester:
    """Who asked for a check: an API token's name, a Slack user, or a terminal user."""

    kind: str
    name: str
    channel: str | None = None

    @property
    def label(self) -> str:
        """Return a short text such as ``api:ops`` or ``slack:U123``."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class CheckRequest:
    """A validated request to check one instance and maybe alert one recipient."""

    account_id: str
    role_name: str
    instance_id: str
    region: str
    threshold: float
    phone_number: str | None = None


@dataclass(frozen=True)
class Datapoint:
    """One CloudWatch value and the start of the period it covers (UTC)."""

    time: datetime
    value: float


@dataclass(frozen=True)
class Reading:
    """The newest datapoint of an instance's CPU and the last hour, oldest first."""

    latest: Datapoint
    recent: tuple[Datapoint, ...]
    statistic: str
    period_seconds: int
    fetched_at: datetime

    @property
    def usage(self) -> float:
        """Return the newest value to one decimal: what is shown and what is decided."""
        return round(self.latest.value, 1)

    def above(self, threshold: float) -> bool:
        """Return True when the shown usage is strictly above ``threshold``."""
        return self.usage > threshold

    def age_seconds(self, now: datetime) -> int:
        """Return how many seconds old the newest datapoint's period start is."""
        return max(0, int((now - self.latest.time).total_seconds()))


class AlertStatus(StrEnum):
    """What happened to the alert of a check."""

    NOT_NEEDED = "not_needed"
    SENT = "sent"
    SUPPRESSED = "suppressed"
    BLOCKED = "blocked"
    FAILED = "failed"


@dataclass(frozen=True)
class Alert:
    """The alert outcome of one check, with a sentence saying why."""

    status: AlertStatus
    detail: str
    message_sid: str | None = None
    next_alert_after: datetime | None = None
    recipient: str | None = None
    provider_unavailable: bool = False


@dataclass(frozen=True)
class CheckResult:
    """The whole answer to one check."""

    request: CheckRequest
    reading: Reading
    alert: Alert
    checked_at: datetime

    @property
    def cpu_usage(self) -> float:
        """Return the newest datapoint's value, to one decimal."""
        return self.reading.usage

    @property
    def alert_sent(self) -> bool:
        """Return True only when the SMS provider accepted a message for this check."""
        return self.alert.status is AlertStatus.SENT

    @property
    def datapoint_age_seconds(self) -> int:
        """Return the newest datapoint's age when the check was made."""
        return self.reading.age_seconds(self.checked_at)
