"""STS credentials and CloudWatch calls: cached, shared and renewed before expiry."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from tests.harness import (
    ACCOUNT,
    AUTH,
    COOL,
    HOT,
    PHONE,
    ROLE,
    FakeClock,
    seed_cpu,
    steady,
)


def path(instance: str) -> str:
    """Return the check route for an instance."""
    return f"/check_cpu/{ACCOUNT}/{ROLE}/{instance}/{PHONE}"


def test_many_checks_share_one_assume_role(web, aws):
    """Checks of several instances under one role assume it once."""
    for instance in (HOT, COOL):
        seed_cpu(aws.upstream, instance, steady(40.0))

    for _ in range(3):
        for instance in (HOT, COOL):
            assert web.get(path(instance), headers=AUTH).status_code == 200

    assert aws.calls["AssumeRole"] == 1


def test_concurrent_first_checks_make_one_assume_role(make_web, aws):
    """Callers that need the same role at the same moment share one AssumeRole call."""
    web = make_web()
    instances = [f"i-{n:08x}" for n in range(1, 9)]
    for instance in instances:
        seed_cpu(aws.upstream, instance, steady(40.0))
    aws.reset()
    gate = threading.Barrier(len(instances))

    def check(instance: str) -> int:
        gate.wait(timeout=10)
        return web.get(path(instance), headers=AUTH).status_code

    with ThreadPoolExecutor(len(instances)) as pool:
        statuses = list(pool.map(check, instances))

    assert statuses == [200] * len(instances)
    assert aws.calls["AssumeRole"] == 1
    assert aws.calls["GetMetricData"] == len(instances)


def test_credentials_are_renewed_five_minutes_before_expiry(make_web, aws):
    """After 55 minutes of a one-hour session a new AssumeRole is made."""
    clock = FakeClock()
    web = make_web(clock=clock)
    seed_cpu(aws.upstream, HOT, steady(40.0))

    web.get(path(HOT), headers=AUTH)
    clock.advance(minutes=50)
    seed_cpu(aws.upstream, HOT, [(timedelta(minutes=-48), 41.0)])
    web.get(path(HOT), headers=AUTH)
    calls_before_expiry = aws.calls["AssumeRole"]
    clock.advance(minutes=6)
    seed_cpu(aws.upstream, HOT, [(timedelta(minutes=-54), 42.0)])
    renewed = web.get(path(HOT), headers=AUTH).json()

    assert calls_before_expiry == 1
    assert aws.calls["GetMetricData"] == 3
    assert aws.calls["AssumeRole"] == 2
    assert renewed["cpu_usage"] == 42.0


def test_each_role_and_account_has_its_own_credentials(web, aws):
    """Different roles or accounts are never served each other's credentials."""
    seed_cpu(aws.upstream, HOT, steady(40.0))
    seed_cpu(aws.upstream, HOT, steady(20.0), account="210987654321")

    first = web.get(path(HOT), headers=AUTH).json()
    other_role = web.get(
        f"/check_cpu/{ACCOUNT}/other-role/{HOT}/{PHONE}", headers=AUTH
    ).json()
    other_account = web.get(
        f"/check_cpu/210987654321/{ROLE}/{HOT}/{PHONE}", headers=AUTH
    ).json()

    assert aws.calls["AssumeRole"] == 3
    assert first["cpu_usage"] == 40.0
    assert other_account["cpu_usage"] == 20.0
    assert other_role["cpu_usage"] == 40.0


def test_repeated_checks_of_one_instance_ask_cloudwatch_once(web, aws):
    """Until a newer datapoint can exist, one GetMetricData serves every check."""
    seed_cpu(aws.upstream, COOL, steady(40.0))

    for _ in range(5):
        web.get(path(COOL), headers=AUTH)

    assert aws.calls["GetMetricData"] == 1


def test_a_newer_datapoint_is_fetched_once_it_can_exist(make_web, aws):
    """When the next period has ended, CloudWatch is asked again."""
    clock = FakeClock()
    web = make_web(clock=clock)
    seed_cpu(aws.upstream, COOL, steady(40.0))

    web.get(path(COOL), headers=AUTH)
    clock.advance(minutes=6)
    seed_cpu(aws.upstream, COOL, [(timedelta(minutes=-5), 45.0)])
    later = web.get(path(COOL), headers=AUTH).json()

    assert aws.calls["GetMetricData"] == 2
    assert later["cpu_usage"] == 45.0


def test_external_id_and_session_name_are_sent(make_web, aws):
    """AssumeRole carries AWS_EXTERNAL_ID and a session name naming the token."""
    web = make_web(AWS_EXTERNAL_ID="cpubot-external-42")
    seed_cpu(aws.upstream, COOL, steady(40.0))

    web.get(path(COOL), headers=AUTH)

    [request] = aws.requests("AssumeRole")
    assert "ExternalId=cpubot-external-42" in request
    assert "RoleSessionName=cpubot-api-tests" in request
