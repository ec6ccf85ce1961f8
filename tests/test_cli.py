"""``python -m bot check`` in a terminal: readable or JSON answers, SMS, exit codes."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.harness import (
    ACCOUNT,
    AUTH,
    COOL,
    HOT,
    OTHER_ACCOUNT,
    PHONE,
    ROLE,
    SILENT,
    child_environment,
    run_bot,
    seed_cpu,
    steady,
)

TWILIO_SETTINGS = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_PHONE_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL",
)
SPARKLINE = re.compile(r"^Last hour: [▁▂▃▄▅▆▇█]+$", re.MULTILINE)
AGE = re.compile(r"datapoint \d\d:\d\d UTC, \d+ (s|min|h) old")


def check(
    env: dict[str, str], *args: str, without: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot check ARGS`` as a child process and return its outcome."""
    child_env = {
        name: value
        for name, value in child_environment(env).items()
        if name not in without
    }
    return run_bot(["check", *args], child_env)


def complaint(result: subprocess.CompletedProcess[str]) -> str:
    """Return the one line cpubot printed on stderr about what went wrong."""
    [line] = [
        line for line in result.stderr.splitlines() if line.startswith("cpubot: ")
    ]
    return line


def test_hot_instance_is_summarised_readably(env, aws, twilio):
    """The summary names usage, threshold, datapoint age, the alert and a sparkline."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    result = check(env, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{HOT} in {ACCOUNT} (us-east-1)" in out
    assert "CPU 92.0 %" in out
    assert "Threshold 85 %: above" in out
    assert AGE.search(out)
    assert "Alert: sent: SMS sent to *******2671." in out
    assert f"Message id: {twilio.accepted[0].sid}" in out
    assert SPARKLINE.search(out)


def test_cool_instance_is_not_above_and_needs_no_alert(env, aws, twilio):
    """Below the threshold the summary says so and no SMS goes out."""
    seed_cpu(aws.upstream, COOL, steady(40.0))

    result = check(env, ACCOUNT, ROLE, COOL, PHONE)

    assert result.returncode == 0, result.stderr
    assert "CPU 40.0 %" in result.stdout
    assert "Threshold 85 %: not above" in result.stdout
    assert "Alert: not needed" in result.stdout
    assert "Last hour: ▄▄▄" in result.stdout
    assert twilio.posts == []


def test_hot_instance_texts_the_phone_exactly_once(env, aws, twilio):
    """One check of a hot instance reaches Twilio once, with the instance named."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    result = check(env, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == 0, result.stderr
    [post] = twilio.posts
    assert post.to == PHONE
    assert post.sender == "+14155550100"
    for fact in (HOT, ACCOUNT, "92.0%", "85%"):
        assert fact in post.body


def test_whole_phone_number_is_never_printed(env, aws, twilio):
    """Neither the summary nor the log lines show more than the last four digits."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    result = check(env, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == 0, result.stderr
    assert PHONE not in result.stdout + result.stderr
    assert PHONE.removeprefix("+") not in result.stdout + result.stderr


def test_second_check_within_the_cooldown_is_suppressed(env, aws, twilio):
    """A second terminal check shares the cooldown: suppressed, exit 0, one SMS."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    first = check(env, ACCOUNT, ROLE, HOT, PHONE)
    second = check(env, ACCOUNT, ROLE, HOT, PHONE)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "Alert: suppressed" in second.stdout
    assert len(twilio.posts) == 1


def test_json_prints_the_answer_with_alert_and_recent(env, aws, twilio):
    """``--json`` prints the API's answer: usage, alert outcome and the last hour."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    result = check(env, ACCOUNT, ROLE, HOT, PHONE, "--json")

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["cpu_usage"] == 92.0
    assert body["alert_sent"] is True
    assert body["alert"]["status"] == "sent"
    assert body["alert"]["message_sid"] == twilio.accepted[0].sid
    assert body["threshold"] == 85.0
    assert body["instance_id"] == HOT
    times = [point["time"] for point in body["recent"]]
    assert times == sorted(times)
    assert {point["value"] for point in body["recent"]} == {92.0}


def test_json_has_the_same_fields_and_values_as_the_http_answer(web, env, aws):
    """The terminal's JSON is the HTTP route's JSON, field for field."""
    seed_cpu(aws.upstream, COOL, steady(40.0))
    over_http = web.get(
        f"/check_cpu/{ACCOUNT}/{ROLE}/{COOL}/{PHONE}", headers=AUTH
    ).json()

    result = check(env, ACCOUNT, ROLE, COOL, PHONE, "--json")

    assert result.returncode == 0, result.stderr
    in_terminal = json.loads(result.stdout)
    assert in_terminal.keys() == over_http.keys()
    for name in ("cpu_usage", "alert_sent", "region", "threshold", "recent"):
        assert in_terminal[name] == over_http[name]
    assert in_terminal["alert"] == over_http["alert"]


def test_region_and_threshold_options_are_used(env, aws):
    """``--region`` picks where data is read and ``--threshold`` what counts as hot."""
    seed_cpu(aws.upstream, COOL, steady(40.0), region="eu-west-1")

    result = check(
        env, ACCOUNT, ROLE, COOL, "--region", "eu-west-1", "--threshold", "30", "--json"
    )

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["region"] == "eu-west-1"
    assert body["threshold"] == 30.0
    assert body["cpu_usage"] == 40.0
    assert body["alert"]["status"] == "not_needed"
    assert "no phone number" in body["alert"]["detail"]


def test_without_phone_no_sms_and_no_twilio_settings_needed(env, aws, twilio):
    """A hot instance checked without a phone exits 0 with no Twilio settings at all."""
    seed_cpu(aws.upstream, HOT, steady(92.0))

    result = check(env, ACCOUNT, ROLE, HOT, without=TWILIO_SETTINGS)

    assert result.returncode == 0, result.stderr
    assert "CPU 92.0 %" in result.stdout
    assert "Alert: not needed" in result.stdout
    assert "no phone number was given" in result.stdout
    assert twilio.posts == []


def test_console_backend_prints_the_sms_with_the_number_masked(env, aws, twilio):
    """With SMS_BACKEND=console the text is printed, not sent, and the number masked."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    console = {**env, "SMS_BACKEND": "console"}

    result = check(console, ACCOUNT, ROLE, HOT, PHONE, without=TWILIO_SETTINGS)

    assert result.returncode == 0, result.stderr
    assert f"[SMS to *******2671] cpubot: EC2 {HOT}" in result.stdout
    assert "Alert: sent" in result.stdout
    assert PHONE not in result.stdout + result.stderr
    assert twilio.posts == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(("12345", ROLE, HOT), "account id", id="short-account"),
        pytest.param((ACCOUNT, "bad role!", HOT), "role name", id="bad-role"),
        pytest.param((ACCOUNT, ROLE, "i-xyz"), "instance id", id="bad-instance"),
        pytest.param((ACCOUNT, ROLE, HOT, "4155552671"), "phone number", id="no-plus"),
        pytest.param(
            (ACCOUNT, ROLE, HOT, "--region", "Mars"), "region", id="bad-region"
        ),
        pytest.param(
            (ACCOUNT, ROLE, HOT, "--threshold", "150"), "threshold", id="threshold-150"
        ),
        pytest.param(
            (ACCOUNT, ROLE, HOT, "--threshold", "hot"), "threshold", id="threshold-word"
        ),
    ],
)
def test_bad_input_exits_2_naming_the_field_without_calling_aws(
    env, aws, twilio, args, words
):
    """A malformed field exits 2 with a sentence naming it, before any AWS call."""
    result = check(env, *args)

    assert result.returncode == 2
    assert words in complaint(result)
    assert complaint(result).endswith(".")
    assert result.stdout == ""
    assert aws.calls == {}
    assert twilio.posts == []


def test_missing_argument_exits_2_with_the_usage(env, aws):
    """Leaving out the instance id is a usage error, exit 2, with no AWS call."""
    result = check(env, ACCOUNT, ROLE)

    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "instance" in result.stderr
    assert aws.calls == {}


def test_no_data_exits_3_and_never_reports_zero(env, aws, twilio):
    """An instance without datapoints exits 3 with a sentence, not a 0 % reading."""
    result = check(env, ACCOUNT, ROLE, SILENT, PHONE)

    assert result.returncode == 3
    assert "no CPU data" in complaint(result)
    assert SILENT in complaint(result)
    assert result.stdout == ""
    assert twilio.posts == []


def test_access_denied_exits_4(env, aws, twilio):
    """AWS refusing the role exits 4 with a sentence naming the role and account."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    aws.fail("AssumeRole", 403, "AccessDenied", "User is not authorized")

    result = check(env, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == 4
    assert "refused access" in complaint(result)
    assert ROLE in complaint(result)
    assert ACCOUNT in complaint(result)
    assert result.stdout == ""
    assert twilio.posts == []


def test_account_outside_allowed_accounts_exits_4_without_calling_aws(env, aws):
    """An account missing from ALLOWED_ACCOUNTS is refused before AWS is asked."""
    limited = {**env, "ALLOWED_ACCOUNTS": OTHER_ACCOUNT}

    result = check(limited, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == 4
    assert "ALLOWED_ACCOUNTS" in complaint(result)
    assert aws.calls == {}


def test_throttled_aws_exits_5(env, aws, twilio):
    """AWS throttling the metric read exits 5 with a sentence asking to retry."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    aws.fail("GetMetricData", 400, "Throttling", "Rate exceeded")

    result = check(env, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == 5
    assert "throttling" in complaint(result)
    assert result.stdout == ""
    assert twilio.posts == []


@pytest.mark.parametrize(
    ("kind", "words", "code"),
    [
        pytest.param("400", "21211", 0, id="refused-invalid-number"),
        pytest.param("500", "20500", 5, id="twilio-unavailable"),
        pytest.param("drop", "could not be reached", 5, id="connection-dropped"),
    ],
)
def test_twilio_failure_prints_the_answer_and_exits_by_cause(
    env, aws, twilio, kind, words, code
):
    """A failed SMS still prints the reading; only an unavailable Twilio exits 5."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with(kind)

    result = check(env, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == code
    assert "CPU 92.0 %" in result.stdout
    assert "Alert: failed" in result.stdout
    assert words in result.stdout
    assert twilio.accepted == []


def test_twilio_failure_in_json_says_failed_and_exits_5(env, aws, twilio):
    """With ``--json`` a failed SMS shows as status failed and ``alert_sent`` false."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("500")

    result = check(env, ACCOUNT, ROLE, HOT, PHONE, "--json")

    assert result.returncode == 5
    body = json.loads(result.stdout)
    assert body["cpu_usage"] == 92.0
    assert body["alert_sent"] is False
    assert body["alert"]["status"] == "failed"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("CPU_THRESHOLD", "abc", id="threshold-word"),
        pytest.param("ALERT_COOLDOWN_MINUTES", "soon", id="cooldown-word"),
        pytest.param("AWS_REGION", "mars", id="region"),
        pytest.param("LOG_FORMAT", "xml", id="log-format"),
    ],
)
def test_malformed_setting_exits_with_one_line_naming_it(env, aws, name, value):
    """A malformed setting stops the check with one stderr line naming the variable."""
    broken = {**env, name: value}

    result = check(broken, ACCOUNT, ROLE, HOT, PHONE)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert name in line
    assert result.stdout == ""
    assert aws.calls == {}


def test_phone_without_twilio_settings_names_the_missing_variable(env, aws, twilio):
    """Asking for an SMS with SMS_BACKEND=twilio but no account SID says what to set."""
    result = check(env, ACCOUNT, ROLE, HOT, PHONE, without=TWILIO_SETTINGS)

    assert result.returncode == 2
    assert "TWILIO_ACCOUNT_SID" in complaint(result)
    assert aws.calls == {}
    assert twilio.posts == []
