"""``python -m bot demo``: the whole product on one machine, with no accounts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.harness import BotProcess, free_port

CURL = re.compile(r'^\s*curl -s -H "Authorization: Bearer (\S+)" (\S+)$', re.MULTILINE)
SMS_LINE = re.compile(r"^\[SMS to (\S+)\] (.*)$", re.MULTILINE)
DEMO_PHONE = "+14155552671"
NO_ACCOUNTS = {
    name: ""
    for name in (
        "API_TOKENS",
        "ALLOWED_ACCOUNTS",
        "SMS_BACKEND",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_PHONE_NUMBER",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )
}


@dataclass
class Demo:
    """A running demo and the requests it printed, ready to perform."""

    process: BotProcess
    base_url: str
    headers: dict[str, str]
    hot: str
    cool: str
    silent: str

    def get(self, url: str) -> httpx.Response:
        """Perform one printed request as ``curl`` would."""
        return httpx.get(url, headers=self.headers, timeout=30)


def wait_for_text(process: BotProcess, pattern: re.Pattern[str]) -> re.Match[str]:
    """Wait up to ten seconds for ``pattern`` to show up in the process's output."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = pattern.search(process.output())
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{pattern.pattern!r} not printed:\n{process.output()}")


@pytest.fixture
def demo(tmp_path) -> Iterator[Demo]:
    """Start the demo on a free port and parse the requests it prints."""
    port = free_port()
    process = BotProcess(
        ["demo", "--port", str(port)], NO_ACCOUNTS, tmp_path / "demo.log"
    )
    try:
        process.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        printed = CURL.findall(process.output())
        tokens = {token for token, _ in printed}
        [token] = tokens
        hot, cool, silent = (url for _, url in printed)
        yield Demo(
            process,
            f"http://127.0.0.1:{port}",
            {"Authorization": f"Bearer {token}"},
            hot,
            cool,
            silent,
        )
    finally:
        process.stop()


def test_demo_prints_three_requests_to_its_own_port(demo):
    """The demo prints a hot, a cool and a silent request to the port it was given."""
    urls = [demo.hot, demo.cool, demo.silent]

    prefixes = {url.rsplit("/", 2)[0] for url in urls}

    assert prefixes == {f"{demo.base_url}/check_cpu/123456789012/cpubot-demo"}
    assert len(set(urls)) == 3
    assert all(url.endswith(f"/{DEMO_PHONE}") for url in urls)


def test_printed_token_is_fresh_and_required(demo):
    """The printed requests carry a long fresh token; without it the API refuses."""
    token = demo.headers["Authorization"].removeprefix("Bearer ")

    answer = httpx.get(demo.hot, timeout=30)

    assert len(token) >= 16
    assert answer.status_code == 401


def test_hot_instance_answers_sent_and_prints_the_sms_masked(demo):
    """The hot request sends its alert, printed with only the last four digits."""
    answer = demo.get(demo.hot)

    assert answer.status_code == 200
    body = answer.json()
    assert body["alert_sent"] is True
    assert body["alert"]["status"] == "sent"
    assert body["cpu_usage"] > body["threshold"]
    recipient, text = wait_for_text(demo.process, SMS_LINE).groups()
    assert recipient == "*******2671"
    assert body["instance_id"] in text
    shown = [line for line in demo.process.output().splitlines() if DEMO_PHONE in line]
    assert all(line.strip().startswith("curl ") for line in shown)


def test_second_hot_call_answers_suppressed(demo):
    """Calling the hot request again within the cooldown sends nothing more."""
    first = demo.get(demo.hot).json()

    second = demo.get(demo.hot).json()

    assert first["alert"]["status"] == "sent"
    assert second["alert"]["status"] == "suppressed"
    assert second["alert_sent"] is False
    assert len(SMS_LINE.findall(demo.process.output())) == 1


def test_cool_instance_answers_not_needed(demo):
    """The cool request reads a usage below the threshold and sends nothing."""
    answer = demo.get(demo.cool)

    assert answer.status_code == 200
    body = answer.json()
    assert body["cpu_usage"] <= body["threshold"]
    assert body["alert"]["status"] == "not_needed"
    assert body["recent"]
    assert SMS_LINE.search(demo.process.output()) is None


def test_silent_instance_answers_404(demo):
    """The instance without data is a 404 with a sentence, never a 0 % reading."""
    answer = demo.get(demo.silent)

    assert answer.status_code == 404
    assert "no CPU data" in answer.json()["detail"]


def test_ctrl_c_stops_the_demo_cleanly(demo):
    """Ctrl-C ends the demo with exit code 0 within 15 s and says it stopped."""
    started = time.monotonic()

    code = demo.process.stop()

    assert code == 0
    assert time.monotonic() - started < 15
    assert "cpubot demo stopped." in demo.process.log_path.read_text()
    assert "Traceback" not in demo.process.log_path.read_text()
