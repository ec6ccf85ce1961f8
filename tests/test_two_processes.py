"""Two web processes sharing one database send exactly one SMS for a hot instance."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from bot.store import Store, migrate
from tests.harness import (
    ACCOUNT,
    AUTH,
    HOT,
    PHONE,
    ROLE,
    BotProcess,
    free_port,
    seed_cpu,
    steady,
)

CALLERS = 100
PATH = f"/check_cpu/{ACCOUNT}/{ROLE}/{HOT}/{PHONE}"


async def _burst(urls: list[str]) -> list[dict]:
    """Send CALLERS checks at once, spread over the processes."""
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.get(urls[n % len(urls)] + PATH, headers=AUTH)
                for n in range(CALLERS)
            )
        )
    assert [answer.status_code for answer in answers] == [200] * CALLERS
    return [answer.json() for answer in answers]


@pytest.fixture
def two_processes(env, database_url, tmp_path: Path):
    """Start two ``python -m bot serve`` processes on one database."""
    migrate(database_url)
    processes, urls = [], []
    for n in range(2):
        port = free_port()
        process = BotProcess(
            ["serve"],
            {**env, "DATABASE_URL": database_url, "PORT": str(port)},
            tmp_path / f"web{n}.log",
        )
        processes.append(process)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for process, url in zip(processes, urls, strict=True):
            process.wait_for_http(url + "/healthz")
        yield urls, processes
    finally:
        for process in processes:
            process.stop()


def test_burst_on_two_processes_sends_one_sms(two_processes, aws, twilio, database_url):
    """100 checks at once on two processes: one SMS, one ledger row, 100 audit rows."""
    urls, _processes = two_processes
    seed_cpu(aws.upstream, HOT, steady(92.0))

    answers = asyncio.run(_burst(urls))

    statuses = sorted(answer["alert"]["status"] for answer in answers)
    assert statuses == ["sent"] + ["suppressed"] * (CALLERS - 1)
    assert sum(answer["alert_sent"] for answer in answers) == 1
    assert len(twilio.posts) == 1
    store = Store(database_url)
    ledger, audit = store.sends(), store.recent_checks(HOT, limit=1000)
    store.close()
    assert [row["status"] for row in ledger] == ["sent"]
    assert len(audit) == CALLERS


def test_logs_never_hold_a_whole_phone_number(two_processes, aws, twilio):
    """Every log line, the access log included, masks the number to its last four."""
    urls, processes = two_processes
    seed_cpu(aws.upstream, HOT, steady(92.0))

    asyncio.run(_burst(urls))
    logs = "".join(process.output() for process in processes)

    assert PHONE not in logs
    assert PHONE[1:] not in logs
    assert "*******" + PHONE[-4:] in logs
    assert "twilio.Messages.create" in logs
