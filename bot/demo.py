"""The demo: the whole product on one machine, against an embedded AWS emulator.

It starts moto's server, seeds a hot, a cool and a silent instance through the same
assumed role the checks use, prints SMS to the console, and serves the API with a
fresh token, printing requests ready to paste. Ctrl-C stops everything.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import secrets
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from bot.config import ApiToken, Settings
from bot.web import serve

log = logging.getLogger(__name__)

ACCOUNT = "123456789012"
ROLE = "cpubot-demo"
PHONE = "+14155552671"
HOT = "i-0a1b2c3d4e5f60001"
COOL = "i-0a1b2c3d4e5f60002"
SILENT = "i-0a1b2c3d4e5f60003"
LEVELS = {HOT: 92.0, COOL: 40.0}
RESEED_SECONDS = 60


def run_demo(settings: Settings, port: int | None = None) -> None:
    """Run the demo until Ctrl-C."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    stop = threading.Event()
    try:
        host, moto_port = moto.get_host_and_port()
        endpoint = f"http://{host}:{moto_port}"
        with tempfile.TemporaryDirectory(prefix="cpubot-demo-") as folder:
            demo_settings = _demo_settings(settings, endpoint, Path(folder))
            _seed(endpoint, datetime.now(UTC), backfill=True)
            threading.Thread(
                target=_keep_fresh, args=(endpoint, stop), daemon=True
            ).start()

            web_port = port or settings.port
            print(_instructions(demo_settings, web_port), flush=True)
            serve(demo_settings, port=web_port)
    finally:
        stop.set()
        moto.stop()
        print("cpubot demo stopped.", flush=True)


def _demo_settings(settings: Settings, endpoint: str, folder: Path) -> Settings:
    """Point the product at the emulator, a fresh database and the console."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "demo"),
        ("AWS_SECRET_ACCESS_KEY", "demo"),
        ("AWS_SESSION_TOKEN", ""),
    ):
        os.environ[name] = value

    return dataclasses.replace(
        settings,
        aws_endpoint_url=endpoint,
        aws_region="us-east-1",
        sms_backend="console",
        api_tokens=(ApiToken("demo", secrets.token_urlsafe(24)),),
        allowed_accounts=frozenset(),
        database_url=f"sqlite:///{folder / 'demo.db'}",
    )


def _seed(endpoint: str, now: datetime, *, backfill: bool) -> None:
    """Write CPU datapoints as the target account sees them, through the role."""
    cloudwatch = _cloudwatch_in_account(endpoint)
    minutes = range(2, 62, 5) if backfill else range(0, 1)
    for instance, level in LEVELS.items():
        data = [
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance}],
                "Timestamp": now - timedelta(minutes=minute),
                "Value": round(level + random.uniform(-3, 3), 1),
                "Unit": "Percent",
            }
            for minute in minutes
        ]
        cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=data)


def _cloudwatch_in_account(endpoint: str) -> Any:
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
        RoleSessionName="cpubot-demo-seed",
    )["Credentials"]
    return boto3.client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def _keep_fresh(endpoint: str, stop: threading.Event) -> None:
    """Add a datapoint a minute so the demo's data never goes stale."""
    while not stop.wait(RESEED_SECONDS):
        try:
            _seed(endpoint, datetime.now(UTC), backfill=False)
        except Exception:  # the demo keeps serving what it has
            log.warning("could not add demo datapoints", exc_info=True)


def _instructions(settings: Settings, port: int) -> str:
    token = settings.api_tokens[0].secret
    base = f"http://{settings.host}:{port}/check_cpu/{ACCOUNT}/{ROLE}"
    auth = f'-H "Authorization: Bearer {token}"'
    return f"""
cpubot demo: AWS is emulated in this process and SMS are printed here.

  Hot instance, alert sent (a second call within the cooldown says suppressed):
    curl -s {auth} {base}/{HOT}/{PHONE}

  Cool instance, alert not needed:
    curl -s {auth} {base}/{COOL}/{PHONE}

  Instance without data (404, never 0 %):
    curl -s {auth} {base}/{SILENT}/{PHONE}

  API docs: http://{settings.host}:{port}/docs     Stop: Ctrl-C
"""
