"""``/cpu`` over HTTP: signed requests to the web process, replies at a response_url."""

from __future__ import annotations

import threading
import time

import httpx
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
    seed_cpu,
    steady,
)
from tests.standins.slack import SlackStandIn, signed_headers, slash_command_body

SECRET = "slack-signing-secret-for-tests"
MASKED = "*******" + PHONE[-4:]


@pytest.fixture
def slack():
    """Stand in for the Slack Web API and for response URLs."""
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def slack_web(make_web, slack):
    """Start the web process with Slack configured against the stand-in."""

    def start(**overrides) -> httpx.Client:
        return make_web(
            SLACK_BOT_TOKEN="xoxb-test-token",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.api_url,
            **overrides,
        )

    return start


def command(
    web: httpx.Client, slack: SlackStandIn, text: str, **fields
) -> httpx.Response:
    """POST a signed ``/cpu`` command as Slack does."""
    headers = fields.pop("headers", {})
    body = slash_command_body(text, response_url=slack.response_url(), **fields)
    return web.post(
        "/slack/events",
        content=body,
        headers={**signed_headers(SECRET, body), **headers},
    )


def reply(slack: SlackStandIn) -> dict:
    """Wait for the one reply posted to a response_url and return its body."""
    [posted] = slack.wait_for_responses(1)
    return posted.body


def test_hot_instance_is_answered_in_the_channel_with_the_masked_number(
    slack_web, slack, aws, twilio
):
    """The reply is in the channel: usage headline, facts, sparkline, SMS and asker."""
    web = slack_web()
    seed_cpu(aws.upstream, HOT, steady(92.0))

    ack = command(web, slack, f"{ACCOUNT} {ROLE} {HOT} {PHONE}")
    message = reply(slack)

    assert ack.status_code == 200
    assert message["response_type"] == "in_channel"
    assert message["blocks"][0]["text"]["text"] == f"CPU 92.0 % on {HOT}"
    shown = str(message["blocks"])
    for fact in ("85 %", HOT, ACCOUNT, "us-east-1", "UTC", "old", "Average over 5 min"):
        assert fact in shown
    assert "▇" in shown or "█" in shown
    assert f"SMS sent to {MASKED}" in shown
    assert "<@U0ALICE>" in shown
    assert PHONE not in str(message)
    assert f"SMS sent to {MASKED}" in message["text"]
    assert len(twilio.posts) == 1


@pytest.mark.parametrize(
    ("text", "value", "words"),
    [
        pytest.param(f"{ACCOUNT} {ROLE} {COOL}", 40.0, "No SMS needed", id="cool"),
        pytest.param(
            f"{ACCOUNT} {ROLE} {HOT}", 92.0, "no phone number was given", id="no-phone"
        ),
        pytest.param(
            f"{ACCOUNT} {ROLE} {HOT} {PHONE} threshold=95",
            92.0,
            "not above the 95 %",
            id="own-threshold",
        ),
    ],
)
def test_no_sms_needed_is_said_in_words(
    slack_web, slack, aws, twilio, text, value, words
):
    """Without a reason to text, the reply says why and nothing is sent."""
    web = slack_web()
    instance = text.split()[2]
    seed_cpu(aws.upstream, instance, steady(value))

    command(web, slack, text)
    message = reply(slack)

    assert message["response_type"] == "in_channel"
    assert words in str(message["blocks"])
    assert twilio.posts == []


def test_second_ask_says_suppressed_until_a_time(slack_web, slack, aws, twilio):
    """Inside the cooldown the reply says the SMS was suppressed, and until when."""
    web = slack_web()
    seed_cpu(aws.upstream, HOT, steady(92.0))

    command(web, slack, f"{ACCOUNT} {ROLE} {HOT} {PHONE}")
    slack.wait_for_responses(1)
    command(web, slack, f"{ACCOUNT} {ROLE} {HOT} {PHONE}")
    second = slack.wait_for_responses(2)[1].body

    assert "SMS suppressed" in second["text"]
    assert MASKED in second["text"]
    assert "UTC" in second["text"]
    assert len(twilio.posts) == 1


def test_failed_sms_is_explained(slack_web, slack, aws, twilio):
    """A Twilio refusal is reported as failed, with Twilio's reason."""
    web = slack_web()
    seed_cpu(aws.upstream, HOT, steady(92.0))
    twilio.answer_with("400")

    command(web, slack, f"{ACCOUNT} {ROLE} {HOT} {PHONE}")
    message = reply(slack)

    assert "SMS failed" in message["text"]
    assert "21211" in message["text"]


def test_help_is_answered_only_to_the_caller(slack_web, slack, aws):
    """``/cpu help`` is answered in the acknowledgement, ephemeral, with the usage."""
    web = slack_web()

    ack = command(web, slack, "help")

    assert ack.json()["response_type"] == "ephemeral"
    assert "Usage: `/cpu ACCOUNT ROLE INSTANCE" in ack.json()["text"]
    assert aws.calls == {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param(f"{ACCOUNT} {ROLE}", "Missing words", id="missing-words"),
        pytest.param(f"{ACCOUNT} {ROLE} {HOT} {PHONE} extra", "Too many", id="extra"),
        pytest.param(f"{ACCOUNT} {ROLE} {HOT} colour=red", "Unknown option", id="opt"),
        pytest.param(
            f"{ACCOUNT} {ROLE} {HOT} region=us-east-1 region=eu-west-1",
            "twice",
            id="twice",
        ),
        pytest.param(f"12345 {ROLE} {HOT}", "account id", id="account"),
        pytest.param(f"{ACCOUNT} bad*role {HOT}", "role name", id="role"),
        pytest.param(f"{ACCOUNT} {ROLE} i-xyz", "instance id", id="instance"),
        pytest.param(f"{ACCOUNT} {ROLE} {HOT} 555-1234", "phone number", id="phone"),
        pytest.param(f"{ACCOUNT} {ROLE} {HOT} region=moon", "region", id="region"),
        pytest.param(
            f"{ACCOUNT} {ROLE} {HOT} threshold=x", "threshold", id="threshold"
        ),
    ],
)
def test_mistakes_are_answered_only_to_the_caller(slack_web, slack, aws, text, words):
    """Each malformed command gets an ephemeral sentence and the usage, no check."""
    web = slack_web()

    ack = command(web, slack, text)

    assert ack.status_code == 200
    assert ack.json()["response_type"] == "ephemeral"
    assert words in ack.json()["text"]
    assert "Usage:" in ack.json()["text"]
    time.sleep(0.2)
    assert aws.calls == {}
    assert slack.responses == []


def test_slack_phone_links_are_understood(slack_web, slack, aws, twilio):
    """A number Slack formatted as a tel: link is read as the number."""
    web = slack_web()
    seed_cpu(aws.upstream, HOT, steady(92.0))

    command(web, slack, f"{ACCOUNT} {ROLE} {HOT} <tel:{PHONE}|{PHONE}>")
    reply(slack)

    assert [post.to for post in twilio.posts] == [PHONE]


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        pytest.param(
            ("AssumeRole", 403, "AccessDenied", "no"), "refused access", id="denied"
        ),
        pytest.param(
            ("GetMetricData", 400, "Throttling", "slow"), "throttling", id="throttled"
        ),
    ],
)
def test_aws_refusals_are_answered_only_to_the_caller(
    slack_web, slack, aws, failure, words
):
    """Access denied and throttling reach only the caller, with the usage line."""
    web = slack_web()
    aws.fail(*failure)

    command(web, slack, f"{ACCOUNT} {ROLE} {HOT}")
    message = reply(slack)

    assert message["response_type"] == "ephemeral"
    assert words in message["text"]


def test_no_data_is_answered_only_to_the_caller(slack_web, slack, aws):
    """An instance without data gets an ephemeral sentence, never 0 %."""
    web = slack_web()

    command(web, slack, f"{ACCOUNT} {ROLE} {SILENT}")
    message = reply(slack)

    assert message["response_type"] == "ephemeral"
    assert "no CPU data" in message["text"]
    assert "0 %" not in message["text"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Slack-Signature": "v0=" + "0" * 64}, id="forged"),
        pytest.param(
            {"X-Slack-Request-Timestamp": str(int(time.time()) - 600)}, id="stale"
        ),
        pytest.param({"X-Slack-Signature": ""}, id="unsigned"),
    ],
)
def test_requests_not_signed_by_slack_are_401_and_do_nothing(
    slack_web, slack, aws, headers
):
    """Forged, stale and unsigned requests are refused before anything runs."""
    web = slack_web()
    body = slash_command_body(
        f"{ACCOUNT} {ROLE} {HOT}", response_url=slack.response_url()
    )
    signed = {**signed_headers(SECRET, body), **headers}

    answer = web.post("/slack/events", content=body, headers=signed)

    assert answer.status_code == 401
    time.sleep(0.2)
    assert aws.calls == {}
    assert slack.responses == []


def test_user_outside_allowed_users_is_refused(slack_web, slack, aws):
    """SLACK_ALLOWED_USERS refuses other users with an ephemeral sentence."""
    web = slack_web(SLACK_ALLOWED_USERS="U0BOB")

    ack = command(web, slack, f"{ACCOUNT} {ROLE} {HOT}", user_id="U0ALICE")

    assert ack.json()["response_type"] == "ephemeral"
    assert "not allowed" in ack.json()["text"]
    assert aws.calls == {}


def test_channel_outside_allowed_channels_is_refused(slack_web, slack, aws):
    """SLACK_ALLOWED_CHANNELS refuses other channels."""
    web = slack_web(SLACK_ALLOWED_CHANNELS="C0OTHER")

    ack = command(web, slack, f"{ACCOUNT} {ROLE} {HOT}", channel_id="C0OPS")

    assert ack.json()["response_type"] == "ephemeral"
    assert "cannot be used in this channel" in ack.json()["text"]
    assert aws.calls == {}


def test_account_outside_allowed_accounts_is_refused(slack_web, slack, aws):
    """ALLOWED_ACCOUNTS applies to Slack too, before any AWS call."""
    web = slack_web(ALLOWED_ACCOUNTS=OTHER_ACCOUNT)

    ack = command(web, slack, f"{ACCOUNT} {ROLE} {HOT}")

    assert ack.json()["response_type"] == "ephemeral"
    assert "ALLOWED_ACCOUNTS" in ack.json()["text"]
    assert aws.calls == {}


def test_acknowledgement_arrives_while_aws_is_still_held(slack_web, slack, aws):
    """Slack gets its answer before CloudWatch has, so within 3 s whatever AWS does."""
    web = slack_web()
    seed_cpu(aws.upstream, HOT, steady(40.0))
    release = threading.Barrier(2)
    aws.hold("GetMetricData", release, timeout=10)

    ack = command(web, slack, f"{ACCOUNT} {ROLE} {HOT}")
    health = web.get("/healthz")
    held_replies = list(slack.responses)
    release.wait(timeout=10)
    message = reply(slack)

    assert ack.status_code == 200
    assert "Checking" in ack.json()["text"]
    assert health.status_code == 200
    assert held_replies == []
    assert message["response_type"] == "in_channel"


def test_a_retried_delivery_runs_no_second_check(slack_web, slack, aws, twilio):
    """Slack's redelivery of a command being handled is acknowledged and ignored."""
    web = slack_web()
    seed_cpu(aws.upstream, HOT, steady(92.0))
    body = slash_command_body(
        f"{ACCOUNT} {ROLE} {HOT} {PHONE}",
        response_url=slack.response_url(),
        trigger_id="1234.5678.abcdef",
    )

    first = web.post(
        "/slack/events", content=body, headers=signed_headers(SECRET, body)
    )
    retry = web.post(
        "/slack/events",
        content=body,
        headers={**signed_headers(SECRET, body), "X-Slack-Retry-Num": "1"},
    )
    slack.wait_for_responses(1)
    time.sleep(0.3)

    assert first.status_code == retry.status_code == 200
    assert "Checking" in first.json()["text"]
    assert retry.content == b""
    assert len(slack.responses) == 1
    assert len(web.get("/checks", headers=AUTH).json()) == 1
    assert len(twilio.posts) == 1


def test_without_slack_settings_the_route_says_slack_is_not_configured(web):
    """With neither Slack setting, /slack/events is 404 with a sentence."""
    answer = web.post("/slack/events", content="x=1")

    assert answer.status_code == 404
    assert "Slack is not configured" in answer.json()["detail"]


def test_the_web_process_starts_without_reaching_slack(slack_web, slack):
    """Building the Slack app makes no Web API call."""
    web = slack_web()

    assert web.get("/healthz").status_code == 200
    assert slack.api_calls == []


def test_history_lists_the_latest_checks_only_to_the_caller(slack_web, slack, aws):
    """``/cpu history INSTANCE`` lists recorded checks, newest first, ephemeral."""
    web = slack_web()
    seed_cpu(aws.upstream, HOT, steady(92.0))
    command(web, slack, f"{ACCOUNT} {ROLE} {HOT}")
    slack.wait_for_responses(1)

    ack = command(web, slack, f"history {HOT}")

    assert ack.json()["response_type"] == "ephemeral"
    text = ack.json()["text"]
    assert f"Latest checks of {HOT}" in text
    assert "<@U0ALICE>" in text
    assert "92.0 %" in text


def test_history_needs_exactly_one_instance(slack_web, slack, aws):
    """``/cpu history`` without an instance, or with two, is a mistake."""
    web = slack_web()

    for text in ("history", f"history {HOT} {COOL}"):
        ack = command(web, slack, text)
        assert ack.json()["response_type"] == "ephemeral"
        assert "History needs one instance id" in ack.json()["text"]


def test_history_of_an_unknown_instance_says_so(slack_web, slack, aws):
    """An instance never checked has no history, and says so."""
    web = slack_web()

    ack = command(web, slack, f"history {COOL}")

    assert "No checks of" in ack.json()["text"]


def test_sms_cap_is_noted_in_the_reply(slack_web, slack, aws, twilio):
    """When a cap blocks the SMS, the channel reply says so and when it reopens."""
    web = slack_web(SMS_MAX_PER_HOUR=0)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    command(web, slack, f"{ACCOUNT} {ROLE} {HOT} {PHONE}")
    message = reply(slack)

    assert "SMS blocked: SMS cap reached" in message["text"]
    assert "reopens at" in message["text"]
    assert twilio.posts == []
