"""The JSON shapes of a check's answer and of errors, shared by the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from bot.models import CheckResult


class AlertOut(BaseModel):
    """What happened to the alert."""

    status: Literal["not_needed", "sent", "suppressed", "blocked", "failed"]
    detail: str = Field(description="A sentence saying why.")
    message_sid: str | None = Field(None, description="The provider's message id.")
    next_alert_after: datetime | None = Field(
        None, description="When the next SMS for this instance and recipient may go."
    )


class PointOut(BaseModel):
    """One CloudWatch datapoint."""

    time: datetime = Field(description="Start of the period the value covers (UTC).")
    value: float


class CheckOut(BaseModel):
    """The answer to a check; the first two fields are those of the original API."""

    cpu_usage: float = Field(description="The newest datapoint's value, in percent.")
    alert_sent: bool = Field(
        description="True only when the SMS provider accepted a message for this check."
    )
    account_id: str
    instance_id: str
    region: str
    threshold: float
    statistic: str
    period_seconds: int
    datapoint_time: datetime = Field(description="Start of the newest datapoint.")
    datapoint_age_seconds: int = Field(description="Age of the newest datapoint.")
    checked_at: datetime
    alert: AlertOut
    recent: list[PointOut] = Field(description="The last hour, oldest first.")

    @classmethod
    def from_result(cls, result: CheckResult) -> CheckOut:
        """Build the answer from the core's result."""
        reading = result.reading
        return cls(
            cpu_usage=result.cpu_usage,
            alert_sent=result.alert_sent,
            account_id=result.request.account_id,
            instance_id=result.request.instance_id,
            region=result.request.region,
            threshold=result.request.threshold,
            statistic=reading.statistic,
            period_seconds=reading.period_seconds,
            datapoint_time=reading.latest.time,
            datapoint_age_seconds=result.datapoint_age_seconds,
            checked_at=result.checked_at,
            alert=AlertOut(
                status=result.alert.status.value,
                detail=result.alert.detail,
                message_sid=result.alert.message_sid,
                next_alert_after=result.alert.next_alert_after,
            ),
            recent=[PointOut(time=p.time, value=p.value) for p in reading.recent],
        )


class ErrorOut(BaseModel):
    """Every error answer: one human sentence."""

    detail: str


class CheckRecordOut(BaseModel):
    """One check of the audit trail."""

    checked_at: datetime
    requester_kind: str = Field(description="api, slack or cli.")
    requester: str = Field(description="The API token's name or the Slack user id.")
    channel: str | None = Field(None, description="The Slack channel, if any.")
    account_id: str
    role_name: str
    region: str
    instance_id: str
    outcome: str = Field(
        description="ok, or the error: no_data, access_denied, aws_unavailable, "
        "aws_error, not_allowed, internal."
    )
    cpu_usage: float | None = None
    datapoint_time: datetime | None = None
    alert_status: str | None = None
