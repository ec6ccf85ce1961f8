"""Fixtures: moto, the AWS fault proxy, the Twilio stand-in, databases, the web."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from bot.api import create_app
from bot.config import load_settings
from bot.core import build_checker
from bot.store import migrate
from tests.harness import TOKEN, FakeClock, WebServer
from tests.standins.aws import AwsProxy
from tests.standins.twilio import TwilioStandIn

POSTGRES_URL = os.environ.get(
    "CPUBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TWILIO_SID = "AC" + "0" * 32


@pytest.fixture(scope="session", autouse=True)
def _aws_identity() -> Iterator[None]:
    """Give boto3 fake credentials, keep real profiles and any proxy out of reach."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in (
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
        ):
            patch.delenv(name, raising=False)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """Run moto's HTTP server on 127.0.0.1 for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str) -> Iterator[AwsProxy]:
    """Give each test an empty moto behind a proxy that counts calls and faults."""
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    with AwsProxy(moto_url) as proxy:
        yield proxy


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    """Give each test a fresh Twilio stand-in that records every POST."""
    with TwilioStandIn() as standin:
        yield standin


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Return the URL of an empty SQLite file."""
    return f"sqlite:///{tmp_path / 'cpubot.db'}"


@pytest.fixture
def migrated(sqlite_url: str) -> str:
    """Return the URL of a SQLite file with the schema in place."""
    migrate(sqlite_url)
    return sqlite_url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Return a URL whose connections use a fresh schema of the test database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(
        POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://")
    )
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on Postgres."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def env(aws: AwsProxy, twilio: TwilioStandIn, sqlite_url: str) -> dict[str, str]:
    """Return the environment a cpubot process needs to use the stand-ins."""
    return {
        "AWS_ENDPOINT_URL": aws.url,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_READ_TIMEOUT": "2",
        "AWS_CONNECT_TIMEOUT": "2",
        "API_TOKENS": f"tests:{TOKEN}",
        "DATABASE_URL": sqlite_url,
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": "twilio-test-auth-token",
        "TWILIO_PHONE_NUMBER": "+14155550100",
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_TIMEOUT": "3",
        "TWILIO_RETRY_SECONDS": "1",
    }


WebFactory = Callable[..., httpx.Client]


@pytest.fixture
def make_web(env: dict[str, str]) -> Iterator[WebFactory]:
    """Start the web app in a thread with the stand-ins, plus any overrides."""
    servers: list[WebServer] = []
    clients: list[httpx.Client] = []

    def start(clock: FakeClock | None = None, **overrides: Any) -> httpx.Client:
        settings = load_settings({**env, **{k: str(v) for k, v in overrides.items()}})
        migrate(settings.database_url)
        checker = build_checker(settings, clock) if clock else build_checker(settings)
        server = WebServer(create_app(settings, checker)).start()
        servers.append(server)
        client = httpx.Client(base_url=server.url, timeout=30)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


@pytest.fixture
def web(make_web: WebFactory) -> httpx.Client:
    """Return a client of the web app configured with the stand-ins."""
    return make_web()
