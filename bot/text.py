"""Plain-text renderings of a check for terminals: a summary and a sparkline."""

from __future__ import annotations

from collections.abc import Sequence

from bot.models import AlertStatus, CheckResult

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """Draw percentages from 0 to 100 as a row of block characters."""
    return "".join(
        BARS[min(int(value / 100 * len(BARS)), len(BARS) - 1)] for value in values
    )


def age(seconds: int) -> str:
    """Say how old something is in the largest whole unit that fits."""
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"


def summary(result: CheckResult) -> str:
    """Return a few readable lines describing a check and its alert."""
    request, reading = result.request, result.reading
    above = reading.above(request.threshold)
    lines = [
        f"{request.instance_id} in {request.account_id} ({request.region})",
        f"CPU {result.cpu_usage:.1f} %  {reading.statistic} over "
        f"{reading.period_seconds // 60} min, datapoint {reading.latest.time:%H:%M} "
        f"UTC, {age(result.datapoint_age_seconds)} old",
        f"Threshold {request.threshold:g} %: {'above' if above else 'not above'}",
        f"Alert: {result.alert.status.value.replace('_', ' ')}: {result.alert.detail}",
        f"Last hour: {sparkline([point.value for point in reading.recent])}",
    ]
    if result.alert.status is AlertStatus.SENT and result.alert.message_sid:
        lines.insert(4, f"Message id: {result.alert.message_sid}")
    return "\n".join(lines)
