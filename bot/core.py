"""The core: check one instance's CPU and alert its recipient, once per incident.

Every adapter (HTTP, Slack, the command line, the worker) builds a
:class:`Checker` with :func:`build_checker` and calls :meth:`Checker.check`; none
of them talks to AWS, Twilio or the database itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import validation
from bot.aws import CloudWatchCpu
from bot.config import Settings
from bot.errors import NotAllowed, SmsFailed, StoreUnavailable
from bot.logs import mask_phone, redact
from bot.models import (
    Alert,
    AlertStatus,
    CheckRequest,
    CheckResult,
    Reading,
    Requester,
)
from bot.sms import SmsSender, build_sender
from bot.store import AlertKey, Claim, Held, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
STALE_CLAIM = timedelta(minutes=2)


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


@dataclass
class Checker:
    """Checks instances and sends at most one SMS per cooldown and recipient."""

    settings: Settings
    cpu: CloudWatchCpu
    sms: SmsSender | None
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

    def check(self, request: CheckRequest, requester: Requester) -> CheckResult:
        """Read the instance's CPU, decide, and alert when it is above the threshold."""
        self.authorize(request)

        reading = self.cpu.read(request, requester)
        alert = self._alert(request, reading)

        log.info(
            "check by=%s account=%s instance=%s cpu=%.1f threshold=%.1f alert=%s",
            requester.label,
            request.account_id,
            request.instance_id,
            reading.latest.value,
            request.threshold,
            alert.status,
        )
        return CheckResult(request, reading, alert, checked_at=self.clock())

    def authorize(self, request: CheckRequest) -> None:
        """Raise ``NotAllowed`` unless ALLOWED_ACCOUNTS lets this account be checked."""
        allowed = self.settings.allowed_accounts
        if allowed and request.account_id not in allowed:
            raise NotAllowed(
                f"Account {request.account_id} may not be checked here: it is not "
                "in ALLOWED_ACCOUNTS."
            )

    def _alert(self, request: CheckRequest, reading: Reading) -> Alert:
        """Decide whether to alert, then claim, send and record the SMS."""
        usage = reading.latest.value
        if usage <= request.threshold:
            return Alert(
                AlertStatus.NOT_NEEDED,
                f"CPU {usage:.1f} % is not above the {request.threshold:g} % "
                "threshold.",
            )
        if request.phone_number is None:
            return Alert(
                AlertStatus.NOT_NEEDED,
                f"CPU {usage:.1f} % is above the {request.threshold:g} % threshold, "
                "but no phone number was given.",
            )

        return self._send_once(request, reading, request.phone_number)

    def _send_once(self, request: CheckRequest, reading: Reading, to: str) -> Alert:
        key = AlertKey(request.account_id, request.region, request.instance_id, to)
        cooldown = timedelta(minutes=self.settings.alert_cooldown_minutes)
        try:
            claim = self.store.claim_alert(key, self.clock(), cooldown, STALE_CLAIM)
        except StoreUnavailable:
            log.warning("alert store unavailable; no SMS to %s", mask_phone(to))
            return Alert(AlertStatus.FAILED, "Alert store unavailable.", recipient=to)

        if isinstance(claim, Held):
            return _suppressed(claim, to)
        return self._deliver(claim, request, reading, to)

    def _deliver(
        self, claim: Claim, request: CheckRequest, reading: Reading, to: str
    ) -> Alert:
        try:
            if self.sms is None:
                raise SmsFailed("SMS is not configured: set SMS_BACKEND and Twilio.")
            sid = self.sms.send(to, alert_text(request, reading))
        except SmsFailed as exc:
            log.warning("sms to %s failed: %s", mask_phone(to), redact(str(exc)))
            self._settle(claim, self.clock(), sid=None, error=str(exc))
            return Alert(AlertStatus.FAILED, str(exc), recipient=to)

        sent_at = self.clock()
        self._settle(claim, sent_at, sid=sid, error=None)
        cooldown = timedelta(minutes=self.settings.alert_cooldown_minutes)
        return Alert(
            AlertStatus.SENT,
            f"SMS sent to {mask_phone(to)}.",
            message_sid=sid,
            next_alert_after=sent_at + cooldown,
            recipient=to,
        )

    def _settle(
        self, claim: Claim, now: datetime, *, sid: str | None, error: str | None
    ) -> None:
        try:
            self.store.settle_alert(claim, now, sid=sid, error=error)
        except StoreUnavailable:
            log.warning(
                "could not record the outcome of the SMS claim %s", claim.claim_id
            )


def alert_text(request: CheckRequest, reading: Reading) -> str:
    """Return the SMS body: instance, account, region, usage, threshold and time."""
    stamp = reading.latest.time.strftime("%H:%M UTC")
    return (
        f"cpubot: EC2 {request.instance_id} in {request.account_id} "
        f"({request.region}) CPU {reading.latest.value:.1f}% > "
        f"{request.threshold:g}% ({reading.statistic}, {stamp})"
    )


def build_checker(
    settings: Settings, clock: Clock = utc_now, *, with_sms: bool = True
) -> Checker:
    """Wire the real AWS, SMS and database modules into a Checker.

    ``with_sms=False`` builds one that reads CPU without needing SMS settings; it
    reports any alert it would have sent as failed.
    """
    return Checker(
        settings=settings,
        cpu=CloudWatchCpu(settings, clock),
        sms=build_sender(settings) if with_sms else None,
        store=Store(settings.database_url),
        clock=clock,
    )


def _suppressed(held: Held, to: str) -> Alert:
    if held.pending:
        detail = "Another check is sending this alert right now."
    else:
        detail = f"An SMS for this instance already went to {mask_phone(to)}"
        if held.next_alert_after:
            detail += f"; the next may go after {held.next_alert_after:%H:%M} UTC"
        detail += "."
    return Alert(
        AlertStatus.SUPPRESSED,
        detail,
        next_alert_after=held.next_alert_after,
        recipient=to,
    )
