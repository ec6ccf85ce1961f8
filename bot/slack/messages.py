"""Every word cpubot says in Slack, built as Block Kit messages with a text fallback.

Each builder returns the keyword arguments of ``ack()`` or ``respond()``: ``text``
(what notifications show), ``blocks`` and ``response_type``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.logs import mask_phone
from bot.models import Alert, AlertStatus, CheckRequest, CheckResult, Requester
from bot.store import CheckRecord
from bot.text import age, sparkline

Message = dict[str, Any]

USAGE = (
    "Usage: `/cpu ACCOUNT ROLE INSTANCE [PHONE] [region=R] [threshold=T]`, "
    "`/cpu history INSTANCE` or `/cpu help`"
)
EXAMPLE = "`/cpu 123456789012 cpubot-reader i-0abcd1234ef567890 +14155550100`"


def help_message() -> Message:
    """Explain the command, only to the caller."""
    text = (
        f"{USAGE}\n"
        "Reads the instance's CloudWatch CPU through the role in that account and "
        "posts it here. With a phone number, it also texts that number once when "
        "usage is above the threshold. `history` lists the latest checks of an "
        f"instance.\nExample: {EXAMPLE}"
    )
    return _ephemeral(text)


def mistake(sentence: str) -> Message:
    """Say what is wrong with the command, only to the caller, with the usage line."""
    return _ephemeral(f":warning: {sentence}\n{USAGE}")


def refusal(sentence: str) -> Message:
    """Say why the caller may not ask this here, only to the caller, with the usage."""
    return _ephemeral(f":no_entry: {sentence}\n{USAGE}")


def failure(sentence: str) -> Message:
    """Say why the check could not be answered, only to the caller."""
    return _ephemeral(f":x: {sentence}\n{USAGE}")


def history(instance_id: str, records: list[CheckRecord]) -> Message:
    """List the latest checks of an instance, newest first, only to the caller."""
    if not records:
        return _ephemeral(f"No checks of {instance_id} are recorded yet.")

    lines = [f"*Latest checks of {instance_id}*, newest first:"]
    for record in records:
        asker = (
            f"<@{record.requester}>"
            if record.requester_kind == "slack"
            else f"{record.requester_kind}:{record.requester}"
        )
        if record.outcome == "ok" and record.cpu_usage is not None:
            what = f"{record.cpu_usage:.1f} %, SMS {_status_words(record.alert_status)}"
        else:
            what = record.outcome.replace("_", " ")
        lines.append(
            f"• {record.checked_at:%Y-%m-%d %H:%M} UTC {asker} "
            f"({record.account_id}, {record.region}): {what}"
        )
    return _ephemeral("\n".join(lines))


def _status_words(status: str | None) -> str:
    return (status or "unknown").replace("_", " ")


def checking(request: CheckRequest) -> Message:
    """Acknowledge the command at once while the check runs."""
    return _ephemeral(
        f":hourglass_flowing_sand: Checking {request.instance_id} in "
        f"{request.account_id} ({request.region})…"
    )


def not_allowed_user() -> str:
    """Return the sentence for a caller outside SLACK_ALLOWED_USERS."""
    return "You are not allowed to use /cpu here; ask an admin to add you."


def not_allowed_channel() -> str:
    """Return the sentence for a channel outside SLACK_ALLOWED_CHANNELS."""
    return "/cpu cannot be used in this channel; try one of the operations channels."


def result(outcome: CheckResult, requester: Requester) -> Message:
    """Post a check's answer in the channel, headline first."""
    request = outcome.request
    headline = f"CPU {outcome.cpu_usage:.1f} % on {request.instance_id}"
    when = _when(outcome)
    alert = alert_words(outcome.alert)
    asker = f"<@{requester.name}>"
    trend = sparkline([point.value for point in outcome.reading.recent])

    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": headline}},
        {"type": "section", "fields": _facts(outcome, when)},
        _mrkdwn(f"*Last hour* `{trend}`"),
        _mrkdwn(alert),
        {"type": "context", "elements": [_text(f"Asked by {asker}")]},
    ]
    text = (
        f"{headline} ({request.account_id}, {request.region}): datapoint {when}, "
        f"threshold {request.threshold:g} %. {alert} Asked by {asker}."
    )
    return {"response_type": "in_channel", "text": text, "blocks": blocks}


def _when(outcome: CheckResult) -> str:
    stamp = f"{outcome.reading.latest.time:%H:%M} UTC"
    return f"{stamp} ({age(outcome.datapoint_age_seconds)} old)"


def _facts(outcome: CheckResult, when: str) -> list[dict[str, str]]:
    request, reading = outcome.request, outcome.reading
    return [
        _field("Threshold", f"{request.threshold:g} %"),
        _field("Instance", request.instance_id),
        _field("Account", request.account_id),
        _field("Region", request.region),
        _field("Datapoint", when),
        _field(
            "Statistic", f"{reading.statistic} over {reading.period_seconds // 60} min"
        ),
    ]


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _text(text)}


def _text(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def alert_words(alert: Alert) -> str:
    """Say in words what happened to the SMS, with the number masked."""
    to = mask_phone(alert.recipient) if alert.recipient else None
    match alert.status:
        case AlertStatus.SENT:
            return f":rotating_light: SMS sent to {to}."
        case AlertStatus.SUPPRESSED:
            return f":zipper_mouth_face: SMS suppressed: {_until(alert)}"
        case AlertStatus.BLOCKED:
            return f":no_entry: SMS blocked: {alert.detail}"
        case AlertStatus.FAILED:
            return f":x: SMS failed: {alert.detail}"
        case _:
            return f":white_check_mark: No SMS needed: {alert.detail}"


def _until(alert: Alert) -> str:
    if alert.next_alert_after is None:
        return alert.detail
    to = mask_phone(alert.recipient) if alert.recipient else "this number"
    return (
        f"one already went to {to}; the next may go after "
        f"{_time(alert.next_alert_after)}."
    )


def _time(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC"


def _field(name: str, value: str) -> dict[str, str]:
    return _text(f"*{name}*\n{value}")


def _ephemeral(text: str) -> Message:
    return {
        "response_type": "ephemeral",
        "text": text,
        "blocks": [_mrkdwn(text)],
    }
