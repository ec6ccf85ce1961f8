"""Benchmark: many callers at once against one web process, AWS slowed to real speeds.

Run with ``python -m bench``. It starts moto's server behind the test proxy (which
adds ``--aws-ms`` of latency to every AWS call, as a real region would), a Twilio
stand-in and ``python -m bot serve`` in a child process, then sends bursts of
``--callers`` simultaneous checks and prints their latencies and the AWS calls made.
Everything runs on 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bot.store import migrate
from tests.harness import (
    ACCOUNT,
    AUTH,
    PHONE,
    ROLE,
    TOKEN,
    BotProcess,
    free_port,
    seed_cpu,
    steady,
)
from tests.standins.aws import AwsProxy
from tests.standins.twilio import TwilioStandIn


async def burst(url: str, paths: list[str]) -> tuple[list[float], float, list[int]]:
    """Send every path at once; return each latency, the wall time and the statuses."""

    async def one(client: httpx.AsyncClient, path: str) -> tuple[float, int]:
        started = time.perf_counter()
        answer = await client.get(path, headers=AUTH)
        return time.perf_counter() - started, answer.status_code

    limits = httpx.Limits(max_connections=len(paths))
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await client.get("/healthz")
        started = time.perf_counter()
        results = await asyncio.gather(*(one(client, path) for path in paths))
        wall = time.perf_counter() - started
    return [latency for latency, _ in results], wall, [status for _, status in results]


def wait_for(url: str, timeout: float = 20) -> None:
    """Wait until ``url`` answers at all."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def report(name: str, latencies: list[float], wall: float, statuses: list[int]) -> None:
    """Print one line of latency figures in milliseconds."""
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(
        f"{name:<34} n={len(ordered):<3} ok={statuses.count(200):<3} "
        f"p50={statistics.median(ordered) * 1000:6.0f} ms  "
        f"p95={p95 * 1000:6.0f} ms  max={ordered[-1] * 1000:6.0f} ms  "
        f"wall={wall * 1000:6.0f} ms"
    )


def main() -> int:
    """Run the scenarios and print a table."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--aws-ms", type=int, default=150)
    arguments = parser.parse_args()
    callers = max(1, min(arguments.callers, 200))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")

    moto_port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    upstream = f"http://127.0.0.1:{moto_port}"
    wait_for(upstream + "/moto-api/")
    instances = [f"i-{n:08x}" for n in range(1, callers + 1)]
    for instance in instances:
        seed_cpu(upstream, instance, steady(40.0))
    seed_cpu(upstream, "i-0000ffff", steady(95.0))

    with (
        AwsProxy(upstream) as aws,
        TwilioStandIn() as twilio,
        tempfile.TemporaryDirectory() as folder,
    ):
        aws.delay("AssumeRole", arguments.aws_ms / 1000)
        aws.delay("GetMetricData", arguments.aws_ms / 1000)
        database = f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(database)
        web_port = free_port()
        env = {
            "AWS_ENDPOINT_URL": aws.url,
            "API_TOKENS": f"bench:{TOKEN}",
            "DATABASE_URL": database,
            "PORT": str(web_port),
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "bench",
            "TWILIO_PHONE_NUMBER": "+14155550100",
            "TWILIO_API_BASE_URL": twilio.url,
        }
        web = BotProcess(["serve"], env, Path(folder) / "web.log")
        try:
            url = f"http://127.0.0.1:{web_port}"
            web.wait_for_http(url + "/healthz")
            print(
                f"{callers} simultaneous callers, {arguments.aws_ms} ms added to every "
                "AWS call, one web process (python -m bot serve), SQLite store"
            )
            paths = [f"/check_cpu/{ACCOUNT}/{ROLE}/{i}/{PHONE}" for i in instances]
            report("distinct instances, cold", *asyncio.run(burst(url, paths)))
            calls = aws.calls
            report("distinct instances, cached", *asyncio.run(burst(url, paths)))
            hot = [f"/check_cpu/{ACCOUNT}/{ROLE}/i-0000ffff/{PHONE}"] * callers
            report("one hot instance, one recipient", *asyncio.run(burst(url, hot)))
            print(
                f"AWS calls: first burst AssumeRole={calls['AssumeRole']} "
                f"GetMetricData={calls['GetMetricData']}; all bursts "
                f"AssumeRole={aws.calls['AssumeRole']} "
                f"GetMetricData={aws.calls['GetMetricData']}; "
                f"SMS sent to the stand-in: {len(twilio.posts)}"
            )
            print(
                f"A server that serialised checks would need at least "
                f"{callers * arguments.aws_ms} ms of AWS time for the first burst."
            )
        finally:
            web.stop()
            if os.environ.get("BENCH_LOG_LEVEL"):
                print(web.log_path.read_text(errors="replace"))
            moto.terminate()
            moto.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
