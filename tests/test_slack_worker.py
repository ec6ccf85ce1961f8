"""Socket Mode in the worker, Slack settings at start, the manifest and Procfile."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.api import SLACK_EVENTS_PATH
from bot.slack.app import BOT_SCOPES, COMMAND
from bot.slack.messages import USAGE
from tests.harness import (
    ACCOUNT,
    HOT,
    PHONE,
    ROLE,
    ROOT,
    BotProcess,
    child_environment,
    run_bot,
    seed_cpu,
    steady,
)
from tests.standins.slack import SlackStandIn, slash_command_payload

SLACK = {
    "SLACK_BOT_TOKEN": "xoxb-test-token",
    "SLACK_SIGNING_SECRET": "slack-signing-secret-for-tests",
    "SLACK_APP_TOKEN": "xapp-test-token",
}


@pytest.fixture
def slack():
    """Stand in for the Slack Web API and the Socket Mode WebSocket."""
    with SlackStandIn() as standin:
        yield standin


def test_worker_answers_cpu_over_socket_mode(env, slack, aws, twilio, tmp_path):
    """The worker acknowledges the envelope and replies in the channel."""
    seed_cpu(aws.upstream, HOT, steady(92.0))
    worker = BotProcess(
        ["worker"], {**env, **SLACK, "SLACK_API_URL": slack.api_url}, tmp_path / "w.log"
    )
    try:
        slack.wait_for_connection(timeout=30)
        envelope = slack.send_slash_command(
            slash_command_payload(
                f"{ACCOUNT} {ROLE} {HOT} {PHONE}", response_url=slack.response_url()
            )
        )
        ack = slack.wait_for_ack(envelope, timeout=20)
        [message] = slack.wait_for_responses(1, timeout=20)
    finally:
        code = worker.stop()

    assert "Checking" in ack["payload"]["text"]
    assert message.body["response_type"] == "in_channel"
    assert "SMS sent to *******2671" in message.body["text"]
    assert len(twilio.posts) == 1
    assert code == 0


def test_worker_without_an_app_token_says_there_is_nothing_to_run(env):
    """Without SLACK_APP_TOKEN the worker explains and exits cleanly."""
    result = run_bot(["worker"], child_environment(env))

    assert result.returncode == 0
    assert "SLACK_APP_TOKEN" in result.stdout


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        pytest.param("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", id="token-only"),
        pytest.param("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", id="secret-only"),
    ],
)
def test_half_of_slack_settings_stops_the_web_process(env, given, missing):
    """With only one of the two Slack settings the process stops naming the other."""
    result = run_bot(["serve"], child_environment({**env, given: SLACK[given]}))

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert missing in lines[0]


def test_manifest_matches_the_code():
    """The manifest's command, route, usage and scopes are those the code has."""
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())

    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert command["url"].endswith(SLACK_EVENTS_PATH)
    assert manifest["settings"]["interactivity"]["request_url"] == command["url"]
    for form in command["usage_hint"].split(" | "):
        assert form in USAGE
    assert command["should_escape"] is False  # numbers arrive as typed
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert manifest["features"]["bot_user"]["display_name"]


def test_manifest_route_is_served(web):
    """The route the manifest names exists in the web process."""
    spec = web.get("/openapi.json").json()

    assert "post" in spec["paths"][SLACK_EVENTS_PATH]


def test_procfile_runs_web_worker_and_release():
    """Heroku runs the web process on 0.0.0.0:$PORT, the worker, and migrations."""
    lines = dict(
        line.split(": ", 1)
        for line in Path(ROOT / "Procfile").read_text().splitlines()
        if line.strip()
    )

    assert set(lines) == {"web", "worker", "release"}
    assert "HOST=0.0.0.0" in lines["web"]
    assert lines["web"].endswith("python -m bot serve")
    assert lines["worker"] == "python -m bot worker"
    assert lines["release"] == "python -m bot migrate"
