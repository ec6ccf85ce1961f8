"""AWS behind one small module: assume the role, then read CloudWatch CPU.

Credentials are cached per account, role and external id until five minutes
before they expire, CloudWatch clients are reused per credential set and region,
and one GetMetricData call per instance serves every check until a newer
datapoint could exist. botocore errors are translated here, once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from bot.cache import ExpiringCache
from bot.config import Settings
from bot.errors import AccessDenied, AwsError, AwsUnavailable, NoData
from bot.models import CheckRequest, Clock, Datapoint, Reading, Requester

log = logging.getLogger(__name__)

T = TypeVar("T")

REFRESH_BEFORE_EXPIRY = timedelta(minutes=5)
RECENT_WINDOW = timedelta(hours=1)
MIN_METRIC_REUSE = timedelta(seconds=10)
MAX_POOL_CONNECTIONS = 64  # botocore's default of 10 queues a burst of checks
SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]", re.ASCII)
ARN_PATTERN = re.compile(r"arn:aws[\w-]*:[^\s\"',]+")

DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
)
THROTTLED_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials for one assumed role."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime


class CloudWatchCpu:
    """Reads an instance's CPUUtilization through a role assumed in its account."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._config = Config(
            connect_timeout=settings.aws_connect_timeout,
            read_timeout=settings.aws_read_timeout,
            max_pool_connections=MAX_POOL_CONNECTIONS,
            retries={
                "mode": "standard",
                "total_max_attempts": settings.aws_max_attempts,
            },
        )
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()
        self._sts = self._session.client(
            "sts",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=self._config,
        )
        self._warm_up()
        self._credentials: ExpiringCache[tuple[str, str, str | None], Credentials]
        self._credentials = ExpiringCache(self._clock)
        self._clients: ExpiringCache[tuple[str, str], Any] = ExpiringCache(self._clock)
        self._readings: ExpiringCache[tuple[object, ...], Reading | None]
        self._readings = ExpiringCache(self._clock)

    def read(self, request: CheckRequest, requester: Requester) -> Reading:
        """Return the newest CPU datapoint and the last hour, or raise ``NoData``."""
        key = (
            request.account_id,
            request.role_name,
            request.region,
            request.instance_id,
            self._settings.cpu_statistic,
            self._settings.cpu_period_seconds,
        )
        reading = self._readings.get(key, lambda: self._fetch(request, requester))

        if reading is None:
            raise NoData(
                f"CloudWatch has no CPU data for instance {request.instance_id} in "
                f"account {request.account_id} ({request.region}) in the last "
                f"{self._settings.cpu_lookback_minutes} minutes: check the instance "
                "id and region, and that the instance is running."
            )
        return reading

    def _fetch(
        self, request: CheckRequest, requester: Requester
    ) -> tuple[Reading | None, datetime]:
        """Ask CloudWatch once; say until when the answer can be reused."""
        now = self._clock()
        points = self._with_fresh_credentials(
            request, requester, lambda client: self._query(client, request, now)
        )
        reading = self._reading_from(points, now)
        return reading, self._reuse_until(reading, now)

    def _with_fresh_credentials(
        self,
        request: CheckRequest,
        requester: Requester,
        call: Callable[[Any], T],
    ) -> T:
        """Run ``call`` with a CloudWatch client, once more if the session expired."""
        try:
            return call(self._cloudwatch(request, requester))
        except ClientError as exc:
            if _code(exc) not in EXPIRED_CODES:
                raise _translate(exc, request) from exc
            self._credentials.evict(self._credential_key(request))

        try:
            return call(self._cloudwatch(request, requester))
        except ClientError as exc:
            raise _translate(exc, request) from exc

    def _cloudwatch(self, request: CheckRequest, requester: Requester) -> Any:
        """Return a CloudWatch client for the role and region, reused while valid."""
        credentials = self._credentials.get(
            self._credential_key(request),
            lambda: self._assume(request, requester),
        )
        return self._clients.get(
            (credentials.access_key_id, request.region),
            lambda: (
                self._client_for(credentials, request.region),
                credentials.expiration,
            ),
        )

    def _credential_key(self, request: CheckRequest) -> tuple[str, str, str | None]:
        return (request.account_id, request.role_name, self._settings.aws_external_id)

    def _assume(
        self, request: CheckRequest, requester: Requester
    ) -> tuple[Credentials, datetime]:
        """Call AssumeRole; the credentials are reused until shortly before expiry."""
        arguments: dict[str, Any] = {
            "RoleArn": f"arn:aws:iam::{request.account_id}:role/{request.role_name}",
            "RoleSessionName": session_name(requester),
        }
        if self._settings.aws_external_id:
            arguments["ExternalId"] = self._settings.aws_external_id

        with _aws_call("sts.AssumeRole", request):
            answer = self._sts.assume_role(**arguments)["Credentials"]

        credentials = Credentials(
            access_key_id=answer["AccessKeyId"],
            secret_access_key=answer["SecretAccessKey"],
            session_token=answer["SessionToken"],
            expiration=answer["Expiration"].astimezone(UTC),
        )
        return credentials, credentials.expiration - REFRESH_BEFORE_EXPIRY

    def _client_for(self, credentials: Credentials, region: str) -> Any:
        """Build a CloudWatch client from the one session, whose models are loaded.

        A boto3 session is not thread-safe while it creates clients, hence the lock;
        the clients themselves are.
        """
        with self._session_lock:
            return self._session.client(
                "cloudwatch",
                region_name=region,
                endpoint_url=self._settings.aws_endpoint_url,
                config=self._config,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
            )

    def _warm_up(self) -> None:
        """Load CloudWatch's service model now rather than during the first check."""
        placeholder = Credentials("warm-up", "warm-up", "warm-up", self._clock())
        self._client_for(placeholder, self._settings.aws_region)

    def _query(
        self, client: Any, request: CheckRequest, now: datetime
    ) -> list[Datapoint]:
        """Fetch the CPU series from the start of the window to now, in one call."""
        period = self._settings.cpu_period_seconds
        window = max(
            RECENT_WINDOW, timedelta(minutes=self._settings.cpu_lookback_minutes)
        )
        start = _floor(now - window, period)
        query = {
            "Id": "cpu",
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/EC2",
                    "MetricName": "CPUUtilization",
                    "Dimensions": [
                        {"Name": "InstanceId", "Value": request.instance_id}
                    ],
                },
                "Period": period,
                "Stat": self._settings.cpu_statistic,
            },
            "ReturnData": True,
        }

        # At most 1,440 datapoints (a day at one a minute) fit in one page, whose
        # limit is 100,800; a paginator would cost more CPU than the call itself.
        with _aws_call("cloudwatch.GetMetricData", request):
            page = client.get_metric_data(
                MetricDataQueries=[query],
                StartTime=start,
                EndTime=now,
                ScanBy="TimestampDescending",
            )
            return list(_points(page))

    def _reading_from(self, points: list[Datapoint], now: datetime) -> Reading | None:
        """Pick the newest datapoint inside the look-back window, if there is one."""
        if not points:
            return None

        ordered = sorted(points, key=lambda point: point.time)
        latest = ordered[-1]
        if latest.time < now - timedelta(minutes=self._settings.cpu_lookback_minutes):
            return None

        recent = tuple(point for point in ordered if point.time >= now - RECENT_WINDOW)
        return Reading(
            latest=latest,
            recent=recent,
            statistic=self._settings.cpu_statistic,
            period_seconds=self._settings.cpu_period_seconds,
            fetched_at=now,
        )

    def _reuse_until(self, reading: Reading | None, now: datetime) -> datetime:
        """No newer datapoint can exist before the period after the newest one ends."""
        period = timedelta(seconds=self._settings.cpu_period_seconds)
        if reading is None:
            return now + MIN_METRIC_REUSE

        next_possible = reading.latest.time + 2 * period
        return min(max(next_possible, now + MIN_METRIC_REUSE), now + period)


def session_name(requester: Requester) -> str:
    """Return an STS RoleSessionName saying who asked, within STS's limits."""
    name = SESSION_NAME_UNSAFE.sub("-", f"cpubot-{requester.kind}-{requester.name}")
    return name[:64]


def _points(page: dict[str, Any]) -> Iterator[Datapoint]:
    for result in page.get("MetricDataResults", []):
        for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
            yield Datapoint(time=stamp.astimezone(UTC), value=float(value))


def _floor(moment: datetime, period_seconds: int) -> datetime:
    seconds = int(moment.timestamp()) // period_seconds * period_seconds
    return datetime.fromtimestamp(seconds, UTC)


@contextmanager
def _aws_call(operation: str, request: CheckRequest) -> Iterator[None]:
    """Log one INFO line per AWS call with its duration; translate transport faults."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except (BotoConnectionError, HTTPClientError) as exc:
        raise AwsUnavailable(
            "AWS could not be reached or did not answer in time; try again in a "
            "few seconds."
        ) from exc
    except NoCredentialsError as exc:
        raise AwsError(
            "Error retrieving CPU usage: cpubot has no AWS credentials of its own "
            "to assume the role with."
        ) from exc
    except ClientError:
        raise
    except BotoCoreError as exc:
        log.warning("unreadable AWS answer: %s", type(exc).__name__)
        raise AwsError(
            "Error retrieving CPU usage: AWS's answer could not be read."
        ) from exc
    finally:
        log.info(
            "%s account=%s region=%s instance=%s outcome=%s duration_ms=%.0f",
            operation,
            request.account_id,
            request.region,
            request.instance_id,
            outcome,
            (time.perf_counter() - started) * 1000,
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _translate(exc: ClientError, request: CheckRequest) -> AwsError:
    """Turn a botocore ClientError into one of our errors, without leaking ARNs."""
    code = _code(exc)
    if code in DENIED_CODES:
        return AccessDenied(
            f"AWS refused access to role {request.role_name} in account "
            f"{request.account_id}: check the role's trust policy (and external id) "
            "and that it may read CloudWatch metrics."
        )
    if code in THROTTLED_CODES or code.endswith("Throttling"):
        return AwsUnavailable("AWS is throttling requests; try again in a few seconds.")

    message = exc.response.get("Error", {}).get("Message", "")
    reason = f"{code}: {_scrub(message)}" if message else code
    return AwsError(f"Error retrieving CPU usage: {reason}")


def _scrub(text: str) -> str:
    """Hide ARNs, which can name our own account and roles."""
    return ARN_PATTERN.sub("<arn>", text).strip()
