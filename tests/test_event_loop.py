"""Checks never block the event loop: AWS holds them until several are in flight."""

from __future__ import annotations

import asyncio
import threading

import httpx

from tests.harness import ACCOUNT, AUTH, PHONE, ROLE, seed_cpu, steady

IN_FLIGHT = 8


async def _check_all(base_url: str, instances: list[str]) -> tuple[list[int], int]:
    """Send every check at once and probe /healthz while AWS holds them."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        checks = [
            asyncio.create_task(
                client.get(f"/check_cpu/{ACCOUNT}/{ROLE}/{i}/{PHONE}", headers=AUTH)
            )
            for i in instances
        ]
        await asyncio.sleep(0.3)
        health = await client.get("/healthz", timeout=2)
        answers = await asyncio.gather(*checks)
    return [answer.status_code for answer in answers], health.status_code


def test_checks_wait_on_aws_together_and_health_still_answers(web, aws):
    """CloudWatch answers only once all checks are waiting, so a serial server fails."""
    instances = [f"i-{n:08x}" for n in range(1, IN_FLIGHT + 1)]
    for instance in instances:
        seed_cpu(aws.upstream, instance, steady(40.0))
    barrier = threading.Barrier(IN_FLIGHT)
    aws.hold("GetMetricData", barrier, timeout=10)

    statuses, health = asyncio.run(_check_all(web.base_url.__str__(), instances))

    assert health == 200
    assert statuses == [200] * IN_FLIGHT
    assert not barrier.broken
