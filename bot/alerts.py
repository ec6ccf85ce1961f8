"""The alert: decide, apply the recipient policy and caps, then send once and record it.

Every SMS is claimed in the database (cooldown, caps, a pending ledger row) before
Twilio is called, and settled (sent with its SID, or failed) after. A send left
pending by a crash or a lost answer is settled by asking Twilio whether the message
went out: found means sent, absent means it may go again. So an alert is neither
lost nor sent twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Settings
from bot.errors import SmsFailed, StoreUnavailable
from bot.logs import mask_phone, redact
from bot.models import Alert, AlertStatus, CheckRequest, Clock, Reading
from bot.policy import recipient_problem
from bot.sms import SmsSender
from bot.store import AlertKey, Caps, Claim, Held, OverCap, PendingSend, Store

log = logging.getLogger(__name__)


@dataclass
class Alerter:
    """Sends at most one SMS per cooldown, instance and recipient, within the caps."""

    settings: Settings
    sms: SmsSender | None
    store: Store
    clock: Clock

    def alert(self, request: CheckRequest, reading: Reading) -> Alert:
        """Decide whether this check alerts, and do it."""
        usage, threshold = reading.usage, request.threshold
        if not reading.above(threshold):
            return Alert(
                AlertStatus.NOT_NEEDED,
                f"CPU {usage:.1f} % is not above the {threshold:g} % threshold.",
            )

        to = request.phone_number
        if to is None:
            return Alert(
                AlertStatus.NOT_NEEDED,
                f"CPU {usage:.1f} % is above the {threshold:g} % threshold, "
                "but no phone number was given.",
            )

        problem = recipient_problem(to, self.settings)
        if problem is not None:
            log.warning("sms to %s blocked by policy", mask_phone(to))
            return Alert(AlertStatus.BLOCKED, problem, recipient=to)
        return self._send_once(request, alert_text(request, reading), to)

    def settle_pending(self) -> int:
        """Settle every send left pending for too long; return how many were."""
        if self.sms is None:
            return 0
        cutoff = self.clock() - self._pending_timeout
        settled = 0
        for pending in self.store.pending_sends(older_than=cutoff):
            self._settle_by_asking(pending)
            settled += 1
        return settled

    @property
    def _pending_timeout(self) -> timedelta:
        return timedelta(seconds=self.settings.sms_pending_seconds)

    def _send_once(self, request: CheckRequest, body: str, to: str) -> Alert:
        key = AlertKey(request.account_id, request.region, request.instance_id, to)
        try:
            claim = self._claim(key, body)
            if isinstance(claim, PendingSend):
                self._settle_by_asking(claim)
                claim = self._claim(key, body)
        except StoreUnavailable:
            log.warning("alert store unavailable; no SMS to %s", mask_phone(to))
            return Alert(
                AlertStatus.FAILED,
                "Alert store unavailable.",
                recipient=to,
                provider_unavailable=True,
            )
        except SmsFailed as exc:
            return Alert(
                AlertStatus.FAILED,
                f"{exc} An earlier SMS may have gone out, so none is sent now.",
                recipient=to,
                provider_unavailable=True,
            )

        if isinstance(claim, Held | PendingSend):
            return _suppressed(claim, to)
        if isinstance(claim, OverCap):
            return _over_cap(claim, to)
        return self._deliver(claim, to)

    def _claim(self, key: AlertKey, body: str) -> Claim | Held | OverCap | PendingSend:
        return self.store.claim_alert(
            key,
            body,
            self.clock(),
            cooldown=timedelta(minutes=self.settings.alert_cooldown_minutes),
            stale_after=self._pending_timeout,
            caps=Caps(
                per_number=self.settings.sms_max_per_number_per_hour,
                total=self.settings.sms_max_per_hour,
            ),
        )

    def _deliver(self, claim: Claim, to: str) -> Alert:
        """Call the provider for a claimed send and record what it said."""
        try:
            if self.sms is None:
                raise SmsFailed(
                    "SMS is not configured: set SMS_BACKEND and Twilio.",
                    unavailable=True,
                )
            sid = self.sms.send(to, claim.body)
        except SmsFailed as exc:
            log.warning("sms to %s failed: %s", mask_phone(to), redact(str(exc)))
            if exc.uncertain:
                return self._resolve_lost_answer(claim, to, exc)
            self._record(
                claim.send_id,
                self.clock(),
                sid=None,
                error=str(exc),
                refused=exc.refused,
            )
            return Alert(
                AlertStatus.FAILED,
                str(exc),
                recipient=to,
                provider_unavailable=exc.unavailable,
            )

        return self._sent(claim, to, sid)

    def _resolve_lost_answer(self, claim: Claim, to: str, exc: SmsFailed) -> Alert:
        """Ask the provider whether a send whose answer was lost went out.

        Found means sent. Otherwise the ledger row stays pending: Twilio may still be
        creating the message, so it is asked again once SMS_PENDING_SECONDS have
        passed, before any other SMS for this instance and number.
        """
        try:
            sid = self.sms.find(to, claim.body, claim.created_at) if self.sms else None
        except SmsFailed:
            sid = None

        if sid is not None:
            return self._sent(claim, to, sid)
        return Alert(
            AlertStatus.FAILED,
            f"{exc} Twilio will be asked whether it went out before another SMS is "
            "sent.",
            recipient=to,
            provider_unavailable=True,
        )

    def _sent(self, claim: Claim, to: str, sid: str) -> Alert:
        """Record an accepted send and say so."""
        sent_at = self.clock()
        self._record(claim.send_id, sent_at, sid=sid, error=None)
        cooldown = timedelta(minutes=self.settings.alert_cooldown_minutes)
        return Alert(
            AlertStatus.SENT,
            f"SMS sent to {mask_phone(to)}.",
            message_sid=sid,
            next_alert_after=sent_at + cooldown,
            recipient=to,
        )

    def _settle_by_asking(self, pending: PendingSend) -> None:
        """Ask the provider whether a pending send went out, and record the answer."""
        if self.sms is None:
            return
        sid = self.sms.find(pending.recipient, pending.body, pending.created_at)
        log.info(
            "settled pending sms %s to %s: %s",
            pending.send_id,
            mask_phone(pending.recipient),
            "sent" if sid else "not sent",
        )
        self.store.settle_send(
            pending.send_id,
            self.clock(),
            sid=sid,
            error=None if sid else "Not found at the provider after a crash.",
            sent_at=pending.created_at if sid else None,
        )

    def _record(
        self,
        send_id: str,
        now: datetime,
        *,
        sid: str | None,
        error: str | None,
        refused: bool = False,
    ) -> None:
        """Settle the ledger; if the database is gone, the next check asks Twilio."""
        try:
            self.store.settle_send(send_id, now, sid=sid, error=error, refused=refused)
        except StoreUnavailable:
            log.warning("could not record the outcome of SMS %s", send_id)


def alert_text(request: CheckRequest, reading: Reading) -> str:
    """Return the SMS body: instance, account, region, usage, threshold and time."""
    stamp = reading.latest.time.strftime("%H:%M UTC")
    return (
        f"cpubot: EC2 {request.instance_id} in {request.account_id} "
        f"({request.region}) CPU {reading.usage:.1f}% > "
        f"{request.threshold:g}% ({reading.statistic}, {stamp})"
    )


def _suppressed(held: Held | PendingSend, to: str) -> Alert:
    if isinstance(held, PendingSend) or held.pending:
        return Alert(
            AlertStatus.SUPPRESSED,
            f"An SMS for this instance to {mask_phone(to)} is pending; no other is "
            "sent until Twilio confirms whether it went out.",
            recipient=to,
        )

    masked = mask_phone(to)
    when = f" after {held.next_alert_after:%H:%M} UTC" if held.next_alert_after else ""
    if held.refused:
        detail = (
            f"The last SMS to {masked} was refused ({held.refused.rstrip('.')}); "
            f"it is tried again{when}"
        )
    else:
        detail = (
            f"An SMS for this instance already went to {masked}; the next may go{when}"
        )
    return Alert(
        AlertStatus.SUPPRESSED,
        detail + ".",
        next_alert_after=held.next_alert_after,
        recipient=to,
    )


def _over_cap(over: OverCap, to: str) -> Alert:
    log.warning("sms to %s blocked: %s", mask_phone(to), over.reason)
    return Alert(
        AlertStatus.BLOCKED,
        f"SMS cap reached: {over.reason}; it reopens at {over.reopens_at:%H:%M} UTC.",
        next_alert_after=over.reopens_at,
        recipient=to,
    )
