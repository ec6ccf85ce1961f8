"""AWS faults through the web process: each gets its status and a safe sentence."""

from __future__ import annotations

from tests.harness import ACCOUNT, AUTH, HOT, PHONE, ROLE, seed_cpu, steady

PATH = f"/check_cpu/{ACCOUNT}/{ROLE}/{HOT}/{PHONE}"
OUR_ARN = "arn:aws:sts::999988887777:assumed-role/cpubot-runtime/i-0ffee"


def test_access_denied_on_assume_role_is_403(web, aws, twilio):
    """A role that refuses us gives 403 naming the role, without our own ARN."""
    aws.fail(
        "AssumeRole",
        403,
        "AccessDenied",
        f"User: {OUR_ARN} is not authorized to perform: sts:AssumeRole",
    )

    answer = web.get(PATH, headers=AUTH)

    assert answer.status_code == 403
    detail = answer.json()["detail"]
    assert ROLE in detail
    assert ACCOUNT in detail
    assert "arn:" not in detail
    assert twilio.posts == []


def test_access_denied_on_cloudwatch_is_403(web, aws):
    """A role without cloudwatch:GetMetricData gives 403 too."""
    aws.fail("GetMetricData", 400, "AccessDenied", f"{OUR_ARN} is not authorized")

    assert web.get(PATH, headers=AUTH).status_code == 403


def test_throttling_is_503_with_retry_after(web, aws, twilio):
    """CloudWatch throttling gives 503 and a Retry-After header."""
    aws.fail("GetMetricData", 400, "Throttling", "Rate exceeded")

    answer = web.get(PATH, headers=AUTH)

    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "throttling" in answer.json()["detail"]
    assert twilio.posts == []


def test_sts_throttling_is_503(web, aws):
    """STS throttling gives 503 as well."""
    aws.fail("AssumeRole", 400, "Throttling", "Rate exceeded")

    assert web.get(PATH, headers=AUTH).status_code == 503


def test_aws_timeout_is_503(make_web, aws):
    """An AWS endpoint slower than the read timeout gives 503 with Retry-After."""
    web = make_web(AWS_READ_TIMEOUT="0.5")
    aws.delay("GetMetricData", 2)

    answer = web.get(PATH, headers=AUTH)

    assert answer.status_code == 503
    assert "Retry-After" in answer.headers
    assert "in time" in answer.json()["detail"]


def test_other_aws_error_is_502_in_the_original_form(web, aws):
    """Any other AWS error keeps the original API's sentence, with ARNs hidden."""
    aws.fail(
        "GetMetricData", 400, "InvalidParameterValue", f"Bad dimension from {OUR_ARN}"
    )

    answer = web.get(PATH, headers=AUTH)

    assert answer.status_code == 502
    detail = answer.json()["detail"]
    assert detail.startswith("Error retrieving CPU usage: InvalidParameterValue")
    assert "999988887777" not in detail


def test_retry_after_a_fault_succeeds(web, aws):
    """A fault is not cached: the next check asks AWS again and answers."""
    seed_cpu(aws.upstream, HOT, steady(50.0))
    aws.fail("GetMetricData", 400, "Throttling", "Rate exceeded", times=1)

    first = web.get(PATH, headers=AUTH)
    second = web.get(PATH, headers=AUTH)

    assert first.status_code == 503
    assert second.status_code == 200
