"""Health and readiness probes, the OpenAPI documentation, and unexpected errors."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from datetime import datetime

import httpx
import pytest

from bot.api import create_app
from bot.config import load_settings
from bot.core import build_checker
from tests.harness import (
    ACCOUNT,
    AUTH,
    HOT,
    PHONE,
    ROLE,
    BotProcess,
    WebServer,
    free_port,
    seed_cpu,
    steady,
)

PATH = f"/check_cpu/{ACCOUNT}/{ROLE}/{HOT}/{PHONE}"


class ExplodingSms:
    """An SMS sender with a bug in it, to show what an unexpected error looks like."""

    def send(self, to: str, body: str) -> str:
        """Fail the way only a bug would."""
        raise RuntimeError("secret internal detail")

    def find(self, to: str, body: str, since: datetime) -> str | None:
        """Find nothing."""
        return None


@pytest.fixture
def serve_app():
    """Start apps built by the test itself, stopping them afterwards."""
    servers: list[WebServer] = []
    clients: list[httpx.Client] = []

    def start(settings, checker=None) -> httpx.Client:
        server = WebServer(create_app(settings, checker)).start()
        servers.append(server)
        clients.append(httpx.Client(base_url=server.url, timeout=30))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


def test_healthz_answers(web):
    """/healthz says the process is alive."""
    assert web.get("/healthz").json() == {"status": "ok"}


def test_readyz_answers_when_the_database_does(web):
    """/readyz is 200 when the migrated database answers."""
    answer = web.get("/readyz")

    assert answer.status_code == 200
    assert answer.json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_is_down(env, serve_app):
    """/readyz is 503 with a sentence when the database cannot be reached."""
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    web = serve_app(load_settings({**env, "DATABASE_URL": down}))

    answer = web.get("/readyz")

    assert answer.status_code == 503
    assert "database" in answer.json()["detail"]


def test_readyz_is_503_before_migrations(env, serve_app, sqlite_url):
    """A database without the schema is not ready, and says how to migrate."""
    web = serve_app(load_settings({**env, "DATABASE_URL": sqlite_url}))

    answer = web.get("/readyz")

    assert answer.status_code == 503
    assert "python -m bot migrate" in answer.json()["detail"]


def test_database_down_still_answers_usage_but_sends_no_sms(
    env, serve_app, aws, twilio
):
    """Without the database the usage is answered and the alert fails unsent."""
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    web = serve_app(load_settings({**env, "DATABASE_URL": down}))
    seed_cpu(aws.upstream, HOT, steady(92.0))

    body = web.get(PATH, headers=AUTH).json()

    assert body["cpu_usage"] == 92.0
    assert body["alert"]["status"] == "failed"
    assert body["alert"]["detail"] == "Alert store unavailable."
    assert twilio.posts == []


def test_unexpected_error_is_500_with_a_reference_only(env, serve_app, aws, migrated):
    """A bug gives 500 with a reference for the logs and nothing internal."""
    settings = load_settings({**env, "DATABASE_URL": migrated})
    checker = build_checker(settings)
    checker.alerts = dataclasses.replace(checker.alerts, sms=ExplodingSms())
    web = serve_app(settings, checker)
    seed_cpu(aws.upstream, HOT, steady(92.0))

    answer = web.get(PATH, headers=AUTH)

    assert answer.status_code == 500
    detail = answer.json()["detail"]
    assert detail.startswith("Error retrieving CPU usage: internal error (ref ")
    assert "secret" not in detail


def test_docs_show_the_response_and_error_schemas(web):
    """/docs is served and the OpenAPI document describes answers and errors."""
    assert web.get("/docs").status_code == 200
    spec = web.get("/openapi.json").json()

    route = spec["paths"][
        "/check_cpu/{account_id}/{role_name}/{instance_id}/{phone_number}"
    ]["get"]
    statuses = set(route["responses"])
    assert {"200", "400", "401", "403", "404", "500", "502", "503"} <= statuses
    check_out = spec["components"]["schemas"]["CheckOut"]["properties"]
    assert {"cpu_usage", "alert_sent", "datapoint_time", "alert", "recent"} <= set(
        check_out
    )
    assert "ErrorOut" in spec["components"]["schemas"]


def test_sigterm_drains_the_web_process_and_exits_0(env, aws, tmp_path):
    """Heroku's SIGTERM lets a check in flight finish, then the process exits 0."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = BotProcess(["serve"], {**env, "PORT": str(port)}, tmp_path / "web.log")
    process.wait_for_http(url + "/healthz")
    seed_cpu(aws.upstream, HOT, steady(40.0))
    aws.delay("GetMetricData", 1.5)
    answers: list[int] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            httpx.get(url + PATH, headers=AUTH, timeout=30).status_code
        )
    )

    caller.start()
    time.sleep(0.5)
    process.process.send_signal(signal.SIGTERM)
    code = process.process.wait(timeout=30)
    caller.join(timeout=10)
    process.stop()

    assert answers == [200]
    assert code == 0
    assert "Traceback" not in process.output()
