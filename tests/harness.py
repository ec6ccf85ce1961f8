"""Shared test machinery: seeding moto, a web server in a thread, processes, a clock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import uvicorn
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
ROLE = "cpubot-reader"
HOT = "i-0a1b2c3d4e5f60001"
COOL = "i-0a1b2c3d4e5f60002"
SILENT = "i-0a1b2c3d4e5f60003"
PHONE = "+14155552671"
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class FakeClock:
    """A clock that tests move by hand; starts at the real time."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        """Return the current fake time."""
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward by a ``timedelta``'s keyword arguments."""
        self.now += timedelta(**delta)


def seed_cpu(
    moto_url: str,
    instance: str,
    points: Iterable[tuple[timedelta, float]],
    *,
    account: str = ACCOUNT,
    role: str = ROLE,
    region: str = "us-east-1",
) -> None:
    """Write CPU datapoints (age, value) as the role in ``account`` will see them."""
    sts = boto3.client("sts", endpoint_url=moto_url, region_name=region)
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="test-seed"
    )["Credentials"]
    cloudwatch = boto3.client(
        "cloudwatch",
        endpoint_url=moto_url,
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    now = datetime.now(UTC)
    cloudwatch.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance}],
                "Timestamp": now - age,
                "Value": value,
                "Unit": "Percent",
            }
            for age, value in points
        ],
    )


def steady(
    value: float, minutes: int = 60, every: int = 5
) -> list[tuple[timedelta, float]]:
    """Return points of one value, the newest two minutes old, over the last hour."""
    return [(timedelta(minutes=age), value) for age in range(2, minutes, every)]


class WebServer:
    """Runs an ASGI app on uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def start(self) -> WebServer:
        """Start serving and wait until the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for it."""
        self._server.should_exit = True
        self._thread.join(timeout=10)


def child_environment(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` over this process's, importable from a folder with no ``.env``."""
    return {**os.environ, **env, "PYTHONPATH": str(ROOT)}


def run_bot(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot ARGS`` to completion, away from any developer's ``.env``."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BotProcess:
    """``python -m bot ...`` in a child process, with its output kept in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=log_path.parent,
            env=child_environment(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_for_http(self, url: str, timeout: float = 20) -> None:
        """Wait until ``url`` answers, or fail with the process's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                httpx.get(url, timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer:\n{self.output()}")

    def output(self) -> str:
        """Return what the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """Interrupt the process as Ctrl-C would and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
        return int(self.process.returncode)


def env_for(settings_env: dict[str, str], **extra: Any) -> dict[str, str]:
    """Return an environment for a child process from settings and extras."""
    return {**settings_env, **{key: str(value) for key, value in extra.items()}}
