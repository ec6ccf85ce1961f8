"""Alert safety through the web process: policy, caps, retries, crashes, the audit."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bot.store import Store, migrate
from tests.harness import (
    ACCOUNT,
    AUTH,
    COOL,
    HOT,
    PHONE,
    ROLE,
    SILENT,
    BotProcess,
    FakeClock,
    free_port,
    seed_cpu,
    steady,
)


def path(instance: str = HOT, phone: str = PHONE) -> str:
    """Return the check route for an instance and number."""
    return f"/check_cpu/{ACCOUNT}/{ROLE}/{instance}/{phone}"


@pytest.mark.parametrize(
    ("settings", "phone", "words"),
    [
        pytest.param(
            {"SMS_ALLOWED_COUNTRIES": "US,GB"},
            "+33612345678",
            "SMS_ALLOWED_COUNTRIES",
            id="other-country",
        ),
        pytest.param({}, "+19005551234", "premium-rate", id="premium-rate"),
        pytest.param({}, "+442071234567", "landline", id="landline"),
        pytest.param(
            {"SMS_ALLOWED_NUMBERS": "+12025550123"},
            PHONE,
            "SMS_ALLOWED_NUMBERS",
            id="not-an-allowed-number",
        ),
    ],
)
def test_refused_recipient_is_blocked_and_the_check_answered(
    make_web, aws, twilio, settings, phone, words
):
    """A recipient the policy refuses is ``blocked`` with the reason; usage is given."""
    web = make_web(**settings)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    answer = web.get(path(phone=phone), headers=AUTH)

    assert answer.status_code == 200
    body = answer.json()
    assert body["cpu_usage"] == 92.0
    assert body["alert_sent"] is False
    assert body["alert"]["status"] == "blocked"
    assert words in body["alert"]["detail"]
    assert phone not in body["alert"]["detail"]
    assert twilio.posts == []


def test_allowed_recipient_is_texted(make_web, aws, twilio):
    """A number in an allowed country, and in the allowed numbers, gets the SMS."""
    web = make_web(SMS_ALLOWED_COUNTRIES="US", SMS_ALLOWED_NUMBERS=f"{PHONE}")
    seed_cpu(aws.upstream, HOT, steady(92.0))

    body = web.get(path(), headers=AUTH).json()

    assert body["alert"]["status"] == "sent"
    assert len(twilio.posts) == 1


def test_invalid_number_is_refused_before_anything(web, aws, twilio):
    """An invalid number is a 400 naming the phone number, before AWS or Twilio."""
    answer = web.get(path(phone="+1555"), headers=AUTH)

    assert answer.status_code == 400
    assert "phone number" in answer.json()["detail"]
    assert aws.calls == {}
    assert twilio.posts == []


def test_per_number_cap_blocks_then_reopens_after_an_hour(
    make_web, aws, twilio, caplog
):
    """Past the per-number cap the SMS is blocked, with a warning, until it reopens."""
    clock = FakeClock()
    web = make_web(clock=clock, SMS_MAX_PER_NUMBER_PER_HOUR=2, ALERT_COOLDOWN_MINUTES=0)
    instances = [HOT, COOL, SILENT]
    for instance in instances:
        seed_cpu(aws.upstream, instance, steady(92.0))

    with caplog.at_level(logging.WARNING):
        answers = [web.get(path(i), headers=AUTH).json() for i in instances]
    clock.advance(minutes=61)
    seed_cpu(aws.upstream, SILENT, [(timedelta(minutes=-59), 93.0)])
    reopened = web.get(path(SILENT), headers=AUTH).json()

    assert [a["alert"]["status"] for a in answers] == ["sent", "sent", "blocked"]
    blocked = answers[2]["alert"]
    assert "SMS_MAX_PER_NUMBER_PER_HOUR" in blocked["detail"]
    assert "reopens at" in blocked["detail"]
    assert blocked["next_alert_after"] is not None
    assert any(
        "blocked" in r.getMessage() for r in caplog.records if r.levelname == "WARNING"
    )
    assert reopened["alert"]["status"] == "sent"
    assert len(twilio.accepted) == 3


def test_total_cap_blocks_every_recipient_then_reopens(make_web, aws, twilio):
    """Past SMS_MAX_PER_HOUR no number is texted until the hour has passed."""
    clock = FakeClock()
    web = make_web(clock=clock, SMS_MAX_PER_HOUR=1)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    first = web.get(path(phone=PHONE), headers=AUTH).json()
    second = web.get(path(phone="+12025550123"), headers=AUTH).json()
    clock.advance(minutes=61)
    seed_cpu(aws.upstream, HOT, [(timedelta(minutes=-59), 93.0)])
    reopened = web.get(path(phone="+12025550123"), headers=AUTH).json()

    assert first["alert"]["status"] == "sent"
    assert second["alert"]["status"] == "blocked"
    assert "SMS_MAX_PER_HOUR" in second["alert"]["detail"]
    assert reopened["alert"]["status"] == "sent"
    assert len(twilio.posts) == 2


def test_twilio_429_is_retried_and_one_sms_goes_out(make_web, aws, twilio, migrated):
    """A 429 then a 201 gives one SMS, one ledger row marked sent."""
    web = make_web(DATABASE_URL=migrated, TWILIO_RETRY_SECONDS=5)
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("429")

    body = web.get(path(), headers=AUTH).json()

    assert body["alert"]["status"] == "sent"
    assert len(twilio.posts) == 2
    assert len(twilio.accepted) == 1
    store = Store(migrated)
    [row] = store.sends()
    store.close()
    assert row["status"] == "sent"
    assert row["message_sid"] == twilio.accepted[0].sid


def test_every_send_is_in_the_ledger_with_its_outcome(make_web, aws, twilio, migrated):
    """A send Twilio failed is recorded failed with the reason, then one sent."""
    web = make_web(DATABASE_URL=migrated)
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("500")

    web.get(path(), headers=AUTH)
    web.get(path(), headers=AUTH)

    store = Store(migrated)
    rows = store.sends()
    store.close()
    assert [row["status"] for row in rows] == ["failed", "sent"]
    assert "20500" in rows[0]["error"]


def test_a_number_twilio_refuses_is_not_tried_on_every_check(
    make_web, aws, twilio, migrated
):
    """An invalid number refused by Twilio waits for the cooldown before a retry."""
    clock = FakeClock()
    web = make_web(clock=clock, DATABASE_URL=migrated, ALERT_COOLDOWN_MINUTES=10)
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("400")

    first = web.get(path(), headers=AUTH).json()
    second = web.get(path(), headers=AUTH).json()
    clock.advance(minutes=11)
    seed_cpu(aws.upstream, HOT, [(timedelta(minutes=-9), 93.0)])
    later = web.get(path(), headers=AUTH).json()

    assert first["alert"]["status"] == "failed"
    assert second["alert"]["status"] == "suppressed"
    assert "was refused" in second["alert"]["detail"]
    assert "21211" in second["alert"]["detail"]
    assert later["alert"]["status"] == "sent"
    assert len(twilio.posts) == 2
    store = Store(migrated)
    statuses = [row["status"] for row in store.sends()]
    store.close()
    assert statuses == ["refused", "sent"]


def ledger_statuses(url: str) -> list[str]:
    """Return the status of every ledger row, oldest first."""
    store = Store(url)
    statuses = [row["status"] for row in store.sends()]
    store.close()
    return statuses


class CrashedSend:
    """A web process killed while Twilio holds its SMS, and what came after."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = {
            **env,
            "SMS_PENDING_SECONDS": "3",
            "TWILIO_TIMEOUT": "1",
            "TWILIO_RETRY_SECONDS": "0",
        }
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, name: str) -> BotProcess:
        """Start ``python -m bot serve`` and wait until it answers."""
        process = BotProcess(
            ["serve"], {**self.env, "PORT": str(self.port)}, self.tmp_path / name
        )
        process.wait_for_http(self.url + "/healthz")
        return process

    def kill_during_send(self, twilio, kind: str) -> None:
        """Ask for a check, let Twilio hold the SMS, and kill the process then."""
        released = threading.Event()
        twilio.answer_with((kind, released))
        process = self.start("first.log")
        caller = threading.Thread(target=self._ask, daemon=True)
        caller.start()
        deadline = time.monotonic() + 20
        while not twilio.posts and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.process.pid, signal.SIGKILL)
        process.process.wait(timeout=10)
        process.stop()
        released.set()
        caller.join(timeout=10)
        time.sleep(3.5)  # the pending send is now older than SMS_PENDING_SECONDS

    def check(self) -> dict:
        """Check the hot instance once and return the answer."""
        return httpx.get(self.url + path(), headers=AUTH, timeout=30).json()

    def _ask(self) -> None:
        with contextlib.suppress(httpx.TransportError):  # killed under this request
            httpx.get(self.url + path(), headers=AUTH, timeout=30)


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_crash_after_twilio_accepted_does_not_send_twice(
    env, aws, twilio, tmp_path, request, database
):
    """A send Twilio accepted before the crash is found after restart: no second SMS."""
    url = request.getfixturevalue(
        "sqlite_url" if database == "sqlite" else "postgres_url"
    )
    migrate(url)
    crash = CrashedSend({**env, "DATABASE_URL": url}, tmp_path)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    crash.kill_during_send(twilio, "hold")
    restarted = crash.start("second.log")
    try:
        settled_at_start = ledger_statuses(url)
        after = crash.check()
    finally:
        restarted.stop()

    assert settled_at_start == ["sent"]

    assert len(twilio.accepted) == 1
    assert after["alert"]["status"] == "suppressed"
    store = Store(url)
    [row] = store.sends()
    store.close()
    assert row["status"] == "sent"
    assert row["message_sid"] == twilio.accepted[0].sid


def test_crash_before_twilio_accepted_sends_after_restart(
    env, aws, twilio, tmp_path, sqlite_url
):
    """A send that never reached Twilio is absent after restart, then goes out once."""
    migrate(sqlite_url)
    crash = CrashedSend({**env, "DATABASE_URL": sqlite_url}, tmp_path)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    crash.kill_during_send(twilio, "hold-drop")
    restarted = crash.start("second.log")
    try:
        settled_at_start = ledger_statuses(sqlite_url)
        after = crash.check()
        again = crash.check()
    finally:
        restarted.stop()

    assert settled_at_start == ["failed"]

    assert after["alert"]["status"] == "sent"
    assert again["alert"]["status"] == "suppressed"
    assert len(twilio.accepted) == 1
    store = Store(sqlite_url)
    statuses = [row["status"] for row in store.sends()]
    store.close()
    assert statuses == ["failed", "sent"]


def test_checks_are_listed_newest_first_with_who_asked(web, aws):
    """GET /checks lists an instance's checks, newest first, errors included."""
    seed_cpu(aws.upstream, COOL, steady(40.0))
    web.get(path(COOL), headers=AUTH)
    web.get(path(COOL), params={"threshold": "30"}, headers=AUTH)
    web.get(path(SILENT), headers=AUTH)

    cool = web.get("/checks", params={"instance_id": COOL}, headers=AUTH).json()
    every = web.get("/checks", params={"limit": "2"}, headers=AUTH).json()

    assert [c["alert_status"] for c in cool] == ["sent", "not_needed"]
    assert cool[0]["requester"] == "tests"
    assert cool[0]["requester_kind"] == "api"
    assert cool[0]["cpu_usage"] == 40.0
    assert cool[0]["outcome"] == "ok"
    assert [c["instance_id"] for c in every] == [SILENT, COOL]
    assert every[0]["outcome"] == "no_data"
    assert every[0]["cpu_usage"] is None


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param({"limit": "0"}, 400, id="limit-zero"),
        pytest.param({"limit": "201"}, 400, id="limit-high"),
        pytest.param({"instance_id": "i-xyz"}, 400, id="bad-instance"),
    ],
)
def test_checks_listing_refuses_malformed_queries(web, params, status):
    """A bad limit or instance id is a 400 naming it."""
    answer = web.get("/checks", params=params, headers=AUTH)

    assert answer.status_code == status
    assert next(iter(params)).split("_")[0] in answer.json()["detail"]


def test_checks_listing_needs_a_token(web):
    """The audit trail is not public."""
    assert web.get("/checks").status_code == 401
