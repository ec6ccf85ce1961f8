"""Settings: defaults, malformed values named in one line, secrets kept out of sight."""

from __future__ import annotations

import subprocess
import time

import pytest

from bot.config import ApiToken, load_settings
from bot.errors import ConfigError
from tests.harness import child_environment, free_port, run_bot

SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-0123456789"
SENDER = "+14155550100"
SECRET = "s3cret-short"
LONG_SECRET = "0123456789abcdef-long-secret"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"CPU_THRESHOLD": "abc"}, "CPU_THRESHOLD", id="threshold-word"),
        pytest.param({"CPU_THRESHOLD": "101"}, "CPU_THRESHOLD", id="threshold-101"),
        pytest.param({"CPU_THRESHOLD": "-1"}, "CPU_THRESHOLD", id="threshold-negative"),
        pytest.param(
            {"ALERT_COOLDOWN_MINUTES": "-5"},
            "ALERT_COOLDOWN_MINUTES",
            id="cooldown-negative",
        ),
        pytest.param(
            {"ALERT_COOLDOWN_MINUTES": "1.5"},
            "ALERT_COOLDOWN_MINUTES",
            id="cooldown-fraction",
        ),
        pytest.param(
            {"ALERT_COOLDOWN_MINUTES": "an hour"},
            "ALERT_COOLDOWN_MINUTES",
            id="cooldown-words",
        ),
        pytest.param({"API_TOKENS": SECRET}, "API_TOKENS", id="token-too-short"),
        pytest.param(
            {"API_TOKENS": f"ops:{SECRET}"}, "API_TOKENS", id="named-token-too-short"
        ),
        pytest.param(
            {"API_TOKENS": f"ops team:{LONG_SECRET}"}, "API_TOKENS", id="token-name"
        ),
        pytest.param(
            {"ALLOWED_ACCOUNTS": "12345"}, "ALLOWED_ACCOUNTS", id="account-short"
        ),
        pytest.param(
            {"ALLOWED_ACCOUNTS": "123456789012,abc"},
            "ALLOWED_ACCOUNTS",
            id="account-word",
        ),
        pytest.param({"AWS_REGION": "mars"}, "AWS_REGION", id="region-word"),
        pytest.param({"AWS_REGION": "US-EAST-1"}, "AWS_REGION", id="region-upper"),
        pytest.param({"SMS_BACKEND": "email"}, "SMS_BACKEND", id="sms-backend"),
        pytest.param({"DATABASE_URL": "cpubot.db"}, "DATABASE_URL", id="database-path"),
        pytest.param({"LOG_FORMAT": "xml"}, "LOG_FORMAT", id="log-format"),
        pytest.param({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", id="log-level"),
        pytest.param({"PORT": "0"}, "PORT", id="port-zero"),
        pytest.param({"PORT": "70000"}, "PORT", id="port-too-high"),
        pytest.param({"PORT": "http"}, "PORT", id="port-word"),
        pytest.param(
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_PHONE_NUMBER": SENDER},
            "TWILIO_AUTH_TOKEN",
            id="twilio-without-auth-token",
        ),
        pytest.param(
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN},
            "TWILIO_PHONE_NUMBER",
            id="twilio-without-sender",
        ),
        pytest.param(
            {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": SENDER},
            "TWILIO_ACCOUNT_SID",
            id="twilio-without-account-sid",
        ),
        pytest.param(
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_PHONE_NUMBER": "4155550100",
            },
            "TWILIO_PHONE_NUMBER",
            id="twilio-sender-not-e164",
        ),
        pytest.param(
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_MESSAGING_SERVICE_SID": "MG123",
            },
            "TWILIO_MESSAGING_SERVICE_SID",
            id="twilio-messaging-service",
        ),
    ],
)
def test_malformed_setting_is_one_line_naming_the_variable(env, name):
    """Each missing or malformed value raises ConfigError naming it in one line."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env)

    message = str(caught.value)
    assert name in message
    assert "\n" not in message
    assert message.endswith(".")


@pytest.mark.parametrize(
    ("env", "secret"),
    [
        pytest.param({"API_TOKENS": SECRET}, SECRET, id="bare-token"),
        pytest.param({"API_TOKENS": f"ops:{SECRET}"}, SECRET, id="named-token"),
        pytest.param(
            {"API_TOKENS": f"ci:{LONG_SECRET},ops:{SECRET}"},
            LONG_SECRET,
            id="good-token-beside-a-bad-one",
        ),
        pytest.param(
            {"API_TOKENS": f"ops team:{LONG_SECRET}"}, LONG_SECRET, id="bad-name"
        ),
        pytest.param(
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN},
            AUTH_TOKEN,
            id="twilio-without-sender",
        ),
        pytest.param(
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_PHONE_NUMBER": "0",
            },
            AUTH_TOKEN,
            id="twilio-bad-sender",
        ),
        pytest.param(
            {"DATABASE_URL": "postgres:/cpubot:hunter2-password@db"},
            "hunter2-password",
            id="database-password",
        ),
    ],
)
def test_secrets_never_appear_in_the_message(env, secret):
    """A complaint about a secret-bearing setting never quotes the secret."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env)

    assert secret not in str(caught.value)


def test_secrets_never_appear_in_the_settings_repr():
    """Printing the settings shows no API token, Twilio or Slack secret."""
    settings = load_settings(
        {
            "API_TOKENS": f"ops:{LONG_SECRET}",
            "TWILIO_ACCOUNT_SID": SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": SENDER,
            "SLACK_SIGNING_SECRET": "slack-signing-secret-value",
            "SLACK_BOT_TOKEN": "xoxb-slack-bot-token-value",
            "SLACK_APP_TOKEN": "xapp-slack-app-token-value",
        }
    )

    shown = repr(settings)

    assert "ops" in shown
    for secret in (
        LONG_SECRET,
        AUTH_TOKEN,
        "slack-signing-secret-value",
        "xoxb-slack-bot-token-value",
        "xapp-slack-app-token-value",
    ):
        assert secret not in shown


def test_defaults_are_those_the_interface_promises():
    """An empty environment gives the documented defaults."""
    settings = load_settings({})

    assert settings.aws_region == "us-east-1"
    assert settings.cpu_threshold == 85.0
    assert settings.alert_cooldown_minutes == 60
    assert settings.api_tokens == ()
    assert settings.allowed_accounts == frozenset()
    assert settings.sms_backend == "twilio"
    assert settings.database_url == "sqlite:///cpubot.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.log_level, settings.log_format) == ("INFO", "text")


@pytest.mark.parametrize(
    ("given", "used"),
    [
        pytest.param(
            "postgres://u:p@db:5432/cpubot",
            "postgresql+psycopg://u:p@db:5432/cpubot",
            id="heroku",
        ),
        pytest.param(
            "postgresql://u:p@db/cpubot",
            "postgresql+psycopg://u:p@db/cpubot",
            id="postgresql",
        ),
        pytest.param(
            "postgresql+psycopg://u:p@db/cpubot",
            "postgresql+psycopg://u:p@db/cpubot",
            id="driver-named",
        ),
        pytest.param("sqlite:///cpubot.db", "sqlite:///cpubot.db", id="sqlite"),
    ],
)
def test_database_url_uses_the_psycopg_driver(given, used):
    """Heroku's ``postgres://`` and plain ``postgresql://`` get the psycopg 3 driver."""
    settings = load_settings({"DATABASE_URL": given})

    assert settings.database_url == used


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        pytest.param(f"ops:{LONG_SECRET}", (ApiToken("ops", LONG_SECRET),), id="named"),
        pytest.param(LONG_SECRET, (ApiToken("token1", LONG_SECRET),), id="bare"),
        pytest.param(
            f"ops:{LONG_SECRET}, {LONG_SECRET}-2 ,",
            (ApiToken("ops", LONG_SECRET), ApiToken("token2", f"{LONG_SECRET}-2")),
            id="mixed-with-spaces",
        ),
    ],
)
def test_api_tokens_get_names(raw, tokens):
    """``name:secret`` pairs keep their name; bare secrets are named by position."""
    settings = load_settings({"API_TOKENS": raw})

    assert settings.api_tokens == tokens


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        pytest.param({}, "twilio", id="twilio-not-configured-yet"),
        pytest.param(
            {"SMS_BACKEND": "console", "TWILIO_ACCOUNT_SID": SID},
            "console",
            id="console-ignores-twilio",
        ),
        pytest.param(
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_MESSAGING_SERVICE_SID": "MG" + "a" * 32,
            },
            "twilio",
            id="messaging-service-as-sender",
        ),
    ],
)
def test_complete_or_unused_twilio_settings_load(env, backend):
    """Twilio settings are checked only when they are meant to be used."""
    settings = load_settings(env)

    assert settings.sms_backend == backend


def serve(tmp_path, **settings: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Start ``python -m bot serve`` and return its outcome and how long it ran."""
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cpubot.db'}",
        "PORT": str(free_port()),
        "SMS_BACKEND": "console",
        **settings,
    }
    started = time.monotonic()
    result = run_bot(["serve"], child_environment(env), timeout=30)
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("CPU_THRESHOLD", "abc", id="threshold"),
        pytest.param("PORT", "http", id="port"),
        pytest.param("DATABASE_URL", "cpubot.db", id="database"),
        pytest.param("LOG_FORMAT", "xml", id="log-format"),
        pytest.param("API_TOKENS", f"ops:{SECRET}", id="api-tokens"),
    ],
)
def test_serve_stops_at_start_with_one_line_naming_the_variable(tmp_path, name, value):
    """The web process refuses to start on a malformed setting, in one short line."""
    result, seconds = serve(tmp_path, **{name: value})

    assert result.returncode == 2
    assert seconds < 10
    [line] = result.stderr.splitlines()
    assert name in line
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "cpubot.db").exists()


def test_serve_without_twilio_account_sid_stops_naming_it(tmp_path):
    """With SMS_BACKEND=twilio and no account SID the web process says what to set."""
    result, seconds = serve(
        tmp_path,
        SMS_BACKEND="twilio",
        TWILIO_ACCOUNT_SID="",
        TWILIO_AUTH_TOKEN="",
        TWILIO_PHONE_NUMBER="",
    )

    assert result.returncode == 2
    assert seconds < 10
    [line] = [line for line in result.stderr.splitlines() if "TWILIO" in line]
    assert "TWILIO_ACCOUNT_SID" in line
    assert line == result.stderr.splitlines()[-1]
