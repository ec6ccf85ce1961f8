"""The core: check one instance's CPU, alert its recipient once, and keep an audit.

Every adapter (HTTP, Slack, the command line, the worker) builds a
:class:`Checker` with :func:`build_checker` and calls :meth:`Checker.check`; none
of them talks to AWS, Twilio or the database itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from bot import validation
from bot.alerts import Alerter
from bot.aws import CloudWatchCpu
from bot.config import Settings
from bot.errors import (
    AccessDenied,
    AwsError,
    AwsUnavailable,
    CpuBotError,
    NoData,
    NotAllowed,
    StoreUnavailable,
)
from bot.models import CheckRequest, CheckResult, Clock, Requester
from bot.sms import build_sender
from bot.store import CheckRecord, Store

log = logging.getLogger(__name__)

ERROR_KINDS: list[tuple[type[Exception], str]] = [
    (NotAllowed, "not_allowed"),
    (NoData, "no_data"),
    (AccessDenied, "access_denied"),
    (AwsUnavailable, "aws_unavailable"),
    (AwsError, "aws_error"),
    (CpuBotError, "error"),
]


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


@dataclass
class Checker:
    """Checks instances, alerts through an :class:`Alerter`, records every check."""

    settings: Settings
    cpu: CloudWatchCpu
    alerts: Alerter
    store: Store
    clock: Clock = utc_now

    def request(
        self,
        account: str,
        role: str,
        instance: str,
        phone: str | None = None,
        region: str | None = None,
        threshold: str | float | None = None,
    ) -> CheckRequest:
        """Validate a check's fields, filling the region and threshold defaults."""
        return validation.check_request(
            account=account,
            role=role,
            instance=instance,
            phone=phone,
            region_name=region or self.settings.aws_region,
            threshold_value=self.settings.cpu_threshold
            if threshold is None
            else threshold,
        )

    def authorize(self, request: CheckRequest, requester: Requester) -> None:
        """Raise ``NotAllowed`` unless ALLOWED_ACCOUNTS lets this account be checked.

        A refusal is recorded in the audit trail like any other outcome.
        """
        allowed = self.settings.allowed_accounts
        if allowed and request.account_id not in allowed:
            self._audit(request, requester, outcome="not_allowed")
            raise NotAllowed(
                f"Account {request.account_id} may not be checked here: it is not "
                "in ALLOWED_ACCOUNTS."
            )

    def check(self, request: CheckRequest, requester: Requester) -> CheckResult:
        """Read the CPU, alert when it is above the threshold, and record the check."""
        self.authorize(request, requester)
        try:
            reading = self.cpu.read(request, requester)
            alert = self.alerts.alert(request, reading)
        except Exception as exc:
            self._audit(request, requester, outcome=_error_kind(exc))
            raise

        result = CheckResult(request, reading, alert, checked_at=self.clock())
        log.info(
            "check by=%s account=%s instance=%s cpu=%.1f threshold=%.1f alert=%s",
            requester.label,
            request.account_id,
            request.instance_id,
            reading.usage,
            request.threshold,
            alert.status,
        )
        self._audit(request, requester, outcome="ok", result=result)
        return result

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers and is migrated."""
        self.store.ping()

    def first_delivery(self, delivery_id: str) -> bool:
        """Record a delivery (such as a Slack trigger id); False when seen before."""
        return self.store.first_delivery(delivery_id, self.clock())

    def history(self, instance_id: str | None, limit: int = 20) -> list[CheckRecord]:
        """Return the latest recorded checks, newest first."""
        return self.store.recent_checks(instance_id, limit)

    def settle_pending(self) -> int:
        """Settle SMS left pending by an earlier process; return how many were."""
        try:
            return self.alerts.settle_pending()
        except CpuBotError as exc:
            log.warning("could not settle pending SMS at start: %s", exc)
            return 0

    def _audit(
        self,
        request: CheckRequest,
        requester: Requester,
        *,
        outcome: str,
        result: CheckResult | None = None,
    ) -> None:
        """Append the check to the audit trail; a database outage only logs."""
        record = CheckRecord(
            checked_at=result.checked_at if result else self.clock(),
            requester_kind=requester.kind,
            requester=requester.name[:64],
            channel=requester.channel,
            account_id=request.account_id,
            role_name=request.role_name,
            region=request.region,
            instance_id=request.instance_id,
            outcome=outcome,
            cpu_usage=result.cpu_usage if result else None,
            datapoint_time=result.reading.latest.time if result else None,
            alert_status=result.alert.status.value if result else None,
        )
        try:
            self.store.record_check(record)
        except StoreUnavailable:
            log.warning("could not record the check of %s", request.instance_id)


def build_checker(
    settings: Settings, clock: Clock = utc_now, *, with_sms: bool = True
) -> Checker:
    """Wire the real AWS, SMS and database modules into a Checker.

    ``with_sms=False`` builds one that reads CPU without needing SMS settings; it
    reports any alert it would have sent as failed.
    """
    store = Store(settings.database_url)
    sms = build_sender(settings) if with_sms else None
    return Checker(
        settings=settings,
        cpu=CloudWatchCpu(settings, clock),
        alerts=Alerter(settings, sms, store, clock),
        store=store,
        clock=clock,
    )


def _error_kind(exc: Exception) -> str:
    return next((kind for cls, kind in ERROR_KINDS if isinstance(exc, cls)), "internal")
