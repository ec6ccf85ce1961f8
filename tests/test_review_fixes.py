"""Faults at the edges: lost answers, dropped connections, bursts, masking, rounding."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from bot.config import load_settings
from bot.errors import ConfigError, StoreUnavailable
from bot.logs import RedactingFilter
from bot.store import AlertKey, Caps, Store
from tests.harness import ACCOUNT, AUTH, HOT, PHONE, ROLE, FakeClock, seed_cpu, steady
from tests.standins.slack import SlackStandIn, signed_headers, slash_command_body

PATH = f"/check_cpu/{ACCOUNT}/{ROLE}/{HOT}/{PHONE}"
SECRET = "slack-signing-secret-for-tests"


def test_lost_answer_stays_pending_until_twilio_confirms_it(
    make_web, aws, twilio, migrated
):
    """A send whose answer was lost is not resent; once stale it is found as sent."""
    clock = FakeClock()
    web = make_web(
        clock=clock, DATABASE_URL=migrated, TWILIO_TIMEOUT="0.5", SMS_PENDING_SECONDS=5
    )
    seed_cpu(aws.upstream, HOT, steady(92.0))
    released = threading.Event()
    twilio.answer_with(("hold", released))

    first = web.get(PATH, headers=AUTH).json()
    released.set()
    second = web.get(PATH, headers=AUTH).json()
    clock.advance(seconds=6)
    third = web.get(PATH, headers=AUTH).json()

    assert first["alert"]["status"] == "failed"
    assert "asked whether it went out" in first["alert"]["detail"]
    assert second["alert"]["status"] == "suppressed"
    assert third["alert"]["status"] == "suppressed"
    assert len(twilio.accepted) == 1
    store = Store(migrated)
    [row] = store.sends()
    store.close()
    assert row["status"] == "sent"


def test_lost_answer_of_a_send_that_never_went_out_is_sent_later(
    make_web, aws, twilio, migrated
):
    """When Twilio has no such message, the next check after the wait sends it once."""
    clock = FakeClock()
    web = make_web(
        clock=clock, DATABASE_URL=migrated, TWILIO_TIMEOUT="0.5", SMS_PENDING_SECONDS=5
    )
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("drop")

    first = web.get(PATH, headers=AUTH).json()
    clock.advance(seconds=6)
    later = web.get(PATH, headers=AUTH).json()

    assert first["alert"]["status"] == "failed"
    assert later["alert"]["status"] == "sent"
    assert len(twilio.accepted) == 1


@pytest.fixture
def closing_endpoint() -> Iterator[str]:
    """Serve a port on 127.0.0.1 that accepts each connection and closes it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.recv(65536)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_aws_closing_the_connection_is_503_without_its_address(
    make_web, closing_endpoint
):
    """A connection AWS drops is 'unavailable', and the endpoint is not shown."""
    web = make_web(AWS_ENDPOINT_URL=closing_endpoint)

    answer = web.get(PATH, headers=AUTH)

    assert answer.status_code == 503
    assert "Retry-After" in answer.headers
    assert "127.0.0.1" not in answer.json()["detail"]


def test_twilio_refusal_text_never_carries_the_whole_number(web, aws, twilio):
    """Twilio names the number in its 21211 error; the answer masks it."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("400")

    detail = web.get(PATH, headers=AUTH).json()["alert"]["detail"]

    assert "21211" in detail
    assert PHONE not in detail
    assert PHONE[-4:] in detail


def test_tracebacks_in_logs_are_masked():
    """A logged exception naming a number is masked like the message."""
    logger = logging.getLogger("tests.masking")
    handler = logging.StreamHandler(stream := __import__("io").StringIO())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"cannot text {PHONE}")
        except ValueError:
            logger.exception("failed for %s", PHONE)
    finally:
        logger.removeHandler(handler)

    assert PHONE not in stream.getvalue()
    assert "*******" + PHONE[-4:] in stream.getvalue()


def test_usage_is_decided_on_the_value_shown(web, aws, twilio):
    """85.04 % is shown as 85.0 % and, like what is shown, is not above 85 %."""
    seed_cpu(aws.upstream, HOT, [(timedelta(minutes=2), 85.04)])

    body = web.get(PATH, headers=AUTH).json()

    assert body["cpu_usage"] == 85.0
    assert body["alert"]["status"] == "not_needed"
    assert twilio.posts == []


def test_missing_gate_row_refuses_to_claim(migrated):
    """Without its gate row the store will not decide a claim unguarded."""
    store = Store(migrated)
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM sms_gate"))

    with pytest.raises(StoreUnavailable):
        store.claim_alert(
            AlertKey(ACCOUNT, "us-east-1", HOT, PHONE),
            "body",
            FakeClock()(),
            cooldown=timedelta(minutes=60),
            stale_after=timedelta(minutes=2),
            caps=Caps(5, 100),
        )
    store.close()


def test_pending_timeout_shorter_than_a_send_stops_the_process():
    """SMS_PENDING_SECONDS must outlast TWILIO_RETRY_SECONDS and two timeouts."""
    with pytest.raises(ConfigError, match="SMS_PENDING_SECONDS must be more than 28"):
        load_settings(
            {
                "TWILIO_TIMEOUT": "10",
                "TWILIO_RETRY_SECONDS": "8",
                "SMS_PENDING_SECONDS": "20",
            }
        )


async def _commands(url: str, bodies: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/slack/events", content=body, headers=signed_headers(SECRET, body)
                )
                for body in bodies
            )
        )


def test_many_slack_commands_at_once_are_all_acknowledged(make_web, aws):
    """Eight commands waiting on AWS together are all acknowledged first."""
    with SlackStandIn() as slack:
        web = make_web(
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.api_url,
        )
        instances = [f"i-{n:08x}" for n in range(1, 9)]
        for instance in instances:
            seed_cpu(aws.upstream, instance, steady(40.0))
        release = threading.Barrier(len(instances) + 1)
        aws.hold("GetMetricData", release, timeout=15)
        bodies = [
            slash_command_body(
                f"{ACCOUNT} {ROLE} {i}", response_url=slack.response_url()
            )
            for i in instances
        ]

        acks = asyncio.run(_commands(str(web.base_url), bodies))
        release.wait(timeout=10)
        replies = slack.wait_for_responses(len(instances), timeout=20)

    assert [ack.status_code for ack in acks] == [200] * len(instances)
    assert all("Checking" in ack.json()["text"] for ack in acks)
    assert len(replies) == len(instances)


def test_slack_account_refusal_is_audited_and_shows_the_usage(make_web, aws, migrated):
    """An account refused in Slack is answered with the usage and kept in the audit."""
    with SlackStandIn() as slack:
        web = make_web(
            DATABASE_URL=migrated,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.api_url,
            ALLOWED_ACCOUNTS="210987654321",
        )
        body = slash_command_body(
            f"{ACCOUNT} {ROLE} {HOT}", response_url=slack.response_url()
        )

        ack = web.post(
            "/slack/events", content=body, headers=signed_headers(SECRET, body)
        )

    assert "Usage:" in ack.json()["text"]
    store = Store(migrated)
    [record] = store.recent_checks(HOT)
    store.close()
    assert record.outcome == "not_allowed"
    assert record.requester == "U0ALICE"
    assert aws.calls == {}
