"""The original route through the web process: usage, threshold, datapoints, SMS."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.harness import (
    ACCOUNT,
    AUTH,
    COOL,
    HOT,
    PHONE,
    ROLE,
    SILENT,
    seed_cpu,
    steady,
)


def path(instance: str, phone: str = PHONE, account: str = ACCOUNT) -> str:
    """Return the check route for an instance."""
    return f"/check_cpu/{account}/{ROLE}/{instance}/{phone}"


def test_cool_instance_keeps_original_shape_and_sends_nothing(web, aws, twilio):
    """Below the threshold the answer has the original fields and no SMS goes out."""
    seed_cpu(aws.upstream, COOL, steady(40.0))

    answer = web.get(path(COOL), headers=AUTH)

    assert answer.status_code == 200
    body = answer.json()
    assert body["cpu_usage"] == 40.0
    assert body["alert_sent"] is False
    assert body["alert"]["status"] == "not_needed"
    assert twilio.posts == []


def test_hot_instance_sends_one_sms_naming_the_instance(web, aws, twilio):
    """Above the threshold Twilio accepts one SMS and the answer gives its SID."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    body = web.get(path(HOT), headers=AUTH).json()

    assert body["cpu_usage"] == 92.0
    assert body["alert_sent"] is True
    assert body["alert"]["status"] == "sent"
    assert body["alert"]["message_sid"] == twilio.accepted[0].sid
    [post] = twilio.posts
    assert post.to == PHONE
    assert post.sender == "+14155550100"
    for fact in (HOT, ACCOUNT, "us-east-1", "92.0%", "85%"):
        assert fact in post.body


def test_usage_exactly_at_threshold_does_not_alert(web, aws, twilio):
    """An alert needs usage strictly above the threshold."""
    seed_cpu(aws.upstream, HOT, steady(85.0))

    body = web.get(path(HOT), headers=AUTH).json()

    assert body["cpu_usage"] == 85.0
    assert body["alert"]["status"] == "not_needed"
    assert twilio.posts == []


def test_threshold_from_the_query_overrides_the_default(web, aws, twilio):
    """A request's own threshold decides the alert."""
    seed_cpu(aws.upstream, COOL, steady(40.0))

    body = web.get(path(COOL), params={"threshold": "30"}, headers=AUTH).json()

    assert body["threshold"] == 30.0
    assert body["alert_sent"] is True


def test_newest_datapoint_is_used_and_reported_with_its_age(web, aws):
    """The answer uses the newest datapoint and says when it was and how old it is."""
    seed_cpu(
        aws.upstream,
        HOT,
        [(timedelta(minutes=3), 55.0), (timedelta(minutes=13), 99.0)],
    )

    body = web.get(path(HOT), headers=AUTH).json()

    assert body["cpu_usage"] == 55.0
    stamp = datetime.fromisoformat(body["datapoint_time"])
    checked = datetime.fromisoformat(body["checked_at"])
    assert body["datapoint_age_seconds"] == int((checked - stamp).total_seconds())
    assert 0 < body["datapoint_age_seconds"] < 15 * 60
    assert body["statistic"] == "Average"
    assert body["period_seconds"] == 300


def test_recent_holds_the_last_hour_oldest_first(web, aws):
    """``recent`` is the last hour of datapoints in time order, for a sparkline."""
    seed_cpu(
        aws.upstream, COOL, [(timedelta(minutes=m), float(m)) for m in (2, 22, 42)]
    )

    body = web.get(path(COOL), headers=AUTH).json()

    times = [point["time"] for point in body["recent"]]
    assert times == sorted(times)
    assert [point["value"] for point in body["recent"]] == [42.0, 22.0, 2.0]


def test_no_datapoint_is_404_and_never_zero(web, aws, twilio):
    """An instance without data gets 404 with a sentence, and no SMS."""
    answer = web.get(path(SILENT), headers=AUTH)

    assert answer.status_code == 404
    assert "no CPU data" in answer.json()["detail"]
    assert SILENT in answer.json()["detail"]
    assert twilio.posts == []


def test_only_stale_data_is_404(web, aws, twilio):
    """A datapoint older than the look-back window is not reported as current."""
    seed_cpu(aws.upstream, HOT, [(timedelta(minutes=50), 97.0)])

    answer = web.get(path(HOT), headers=AUTH)

    assert answer.status_code == 404
    assert twilio.posts == []


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        pytest.param("400", "21211", id="invalid-number"),
        pytest.param("429", "20429", id="too-many-requests"),
        pytest.param("500", "20500", id="twilio-error"),
        pytest.param("drop", "could not be reached", id="connection-dropped"),
    ],
)
def test_twilio_failure_is_reported_as_failed_not_sent(web, aws, twilio, kind, words):
    """A refused or unreachable Twilio gives ``failed`` with the reason, still a 200."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.set_default(kind)

    answer = web.get(path(HOT), headers=AUTH)

    assert answer.status_code == 200
    body = answer.json()
    assert body["alert_sent"] is False
    assert body["alert"]["status"] == "failed"
    assert words in body["alert"]["detail"]
    assert body["cpu_usage"] == 92.0


def test_failed_send_may_be_retried_by_the_next_check(web, aws, twilio):
    """A failed SMS does not start the cooldown: the next check sends it."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("500")

    first = web.get(path(HOT), headers=AUTH).json()
    second = web.get(path(HOT), headers=AUTH).json()

    assert first["alert"]["status"] == "failed"
    assert second["alert"]["status"] == "sent"
    assert len(twilio.accepted) == 1


def test_cooldown_sends_one_sms_and_then_suppresses(web, aws, twilio):
    """Checks inside the cooldown answer ``suppressed`` and when the next may go."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    answers = [web.get(path(HOT), headers=AUTH).json() for _ in range(3)]

    assert [a["alert"]["status"] for a in answers] == [
        "sent",
        "suppressed",
        "suppressed",
    ]
    assert [a["alert_sent"] for a in answers] == [True, False, False]
    assert (
        answers[1]["alert"]["next_alert_after"]
        == answers[0]["alert"]["next_alert_after"]
    )
    assert len(twilio.posts) == 1


def test_cooldown_is_per_recipient(web, aws, twilio):
    """Another recipient of the same hot instance gets an SMS of their own."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    web.get(path(HOT), headers=AUTH)
    other = web.get(path(HOT, phone="+12025550123"), headers=AUTH).json()

    assert other["alert"]["status"] == "sent"
    assert sorted(post.to for post in twilio.posts) == ["+12025550123", PHONE]


def test_cooldown_ends_after_its_minutes(make_web, aws, twilio):
    """Once the cooldown has passed, a still-hot instance alerts again."""
    from tests.harness import FakeClock

    clock = FakeClock()
    web = make_web(clock=clock, ALERT_COOLDOWN_MINUTES=10)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    first = web.get(path(HOT), headers=AUTH).json()
    clock.advance(minutes=11)
    seed_cpu(aws.upstream, HOT, [(timedelta(minutes=-9), 93.0)])
    later = web.get(path(HOT), headers=AUTH).json()

    assert first["alert"]["status"] == "sent"
    assert later["alert"]["status"] == "sent"
    assert len(twilio.accepted) == 2


def test_region_from_the_query_is_used(web, aws):
    """Data is read in the region the request names."""
    seed_cpu(aws.upstream, COOL, steady(33.0), region="eu-west-1")

    body = web.get(path(COOL), params={"region": "eu-west-1"}, headers=AUTH).json()

    assert body["region"] == "eu-west-1"
    assert body["cpu_usage"] == 33.0


def test_messaging_service_is_used_as_sender_when_configured(make_web, aws, twilio):
    """With TWILIO_MESSAGING_SERVICE_SID the SMS goes from the Messaging Service."""
    service = "MG" + "1" * 32
    web = make_web(TWILIO_PHONE_NUMBER="", TWILIO_MESSAGING_SERVICE_SID=service)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    web.get(path(HOT), headers=AUTH)

    [post] = twilio.posts
    assert post.sender == service


def test_cooldown_survives_a_restart(make_web, aws, twilio):
    """A new process on the same database still knows the SMS went out."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    before = make_web().get(path(HOT), headers=AUTH).json()
    after = make_web().get(path(HOT), headers=AUTH).json()

    assert before["alert"]["status"] == "sent"
    assert after["alert"]["status"] == "suppressed"
    assert after["alert"]["next_alert_after"] == before["alert"]["next_alert_after"]
    assert len(twilio.posts) == 1
