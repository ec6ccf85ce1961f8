import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from tests.standins.aws import AwsProxy
from tests.standins.twilio import RecordedPost, TwilioStandIn

ACCOUNT_SID = "AC" + "0" * 32
TO = "+14155552671"
FROM = "+14155550100"
REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::111111111111:role/cpu-reader"
NO_RETRY = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=2,
    read_timeout=5,
)
CPU_QUERY = [
    {
        "Id": "cpu",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/EC2",
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": "i-0abc"}],
            },
            "Period": 60,
            "Stat": "Average",
        },
    }
]


def wait_until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Poll ``condition`` until it holds, failing the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def free_port() -> int:
    """Return a local port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- Twilio ----------------------------------------------------------------


@pytest.fixture
def twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep Twilio's edge and region settings from rewriting the base URL."""
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)


@pytest.fixture
def twilio(twilio_env: None) -> Iterator[TwilioStandIn]:
    """Run a Twilio stand-in for one test."""
    with TwilioStandIn() as standin:
        yield standin


def twilio_client(standin: TwilioStandIn) -> Client:
    """Build the real Twilio client, aimed at the stand-in."""
    client = Client(ACCOUNT_SID, "token", http_client=TwilioHttpClient(timeout=5))
    client.api.base_url = standin.url
    return client


def send(client: Client, to: str = TO) -> str:
    """Send one SMS through the real client and return its sid."""
    return str(client.messages.create(to=to, from_=FROM, body="CPU 97%").sid)


def test_send_is_accepted_and_recorded(twilio: TwilioStandIn) -> None:
    """A send gets a queued message with an SM sid, and the POST is recorded."""
    message = twilio_client(twilio).messages.create(to=TO, from_=FROM, body="hot")

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (TO, FROM, "hot")
    [post] = twilio.posts
    assert isinstance(post, RecordedPost)
    assert (post.account_sid, post.to, post.sender, post.body, post.auth_user) == (
        ACCOUNT_SID,
        TO,
        FROM,
        "hot",
        ACCOUNT_SID,
    )
    assert [m.sid for m in twilio.accepted] == [message.sid]


def test_messaging_service_sid_is_recorded_as_sender(twilio: TwilioStandIn) -> None:
    """A send through a Messaging Service records that service's sid as sender."""
    service = "MG" + "1" * 32
    message = twilio_client(twilio).messages.create(
        to=TO, messaging_service_sid=service, body="hot"
    )

    assert twilio.posts[0].sender == service
    assert message.messaging_service_sid == service
    assert message.from_ is None


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("400", 400, 21211), ("429", 429, 20429), ("500", 500, 20500)],
)
def test_error_answers_raise_twilio_rest_exception(
    twilio: TwilioStandIn, kind: str, status: int, code: int
) -> None:
    """Each error kind reaches the client as TwilioRestException with its codes."""
    twilio.answer_with(kind)

    with pytest.raises(TwilioRestException) as caught:
        send(twilio_client(twilio))

    assert (caught.value.status, caught.value.code) == (status, code)
    assert len(twilio.posts) == 1
    assert twilio.accepted == []


def test_invalid_number_error_names_the_number(twilio: TwilioStandIn) -> None:
    """The 400 answer carries Twilio's 21211 message naming the 'To' number."""
    twilio.answer_with("400")

    with pytest.raises(TwilioRestException) as caught:
        send(twilio_client(twilio), to="+1555")

    assert "The 'To' number +1555 is not a valid phone number." in caught.value.msg


def test_drop_surfaces_as_connection_error(twilio: TwilioStandIn) -> None:
    """A dropped answer reaches the client as requests' ConnectionError."""
    twilio.answer_with("drop")

    with pytest.raises(requests.exceptions.ConnectionError):
        send(twilio_client(twilio))

    assert len(twilio.posts) == 1
    assert twilio.accepted == []


def test_queued_answers_are_used_in_order_then_default(twilio: TwilioStandIn) -> None:
    """Queued answers are used one per POST, then the default answer applies."""
    client = twilio_client(twilio)
    twilio.answer_with("429", "201")

    with pytest.raises(TwilioRestException):
        send(client)
    first = send(client)
    second = send(client)
    twilio.set_default("500")
    with pytest.raises(TwilioRestException) as caught:
        send(client)

    assert caught.value.status == 500
    assert [m.sid for m in twilio.accepted] == [first, second]
    assert len(twilio.posts) == 4


def test_unknown_answer_kind_is_refused(twilio: TwilioStandIn) -> None:
    """An answer kind the stand-in does not know is refused at once."""
    with pytest.raises(ValueError, match="unknown Twilio answer kind"):
        twilio.answer_with("418")
    with pytest.raises(ValueError, match="unknown Twilio answer kind"):
        twilio.set_default(("hold", "not an event"))  # type: ignore[arg-type]


def test_hold_keeps_the_send_in_flight_until_released(twilio: TwilioStandIn) -> None:
    """A held send is recorded at once but answered only when its event is set."""
    release = threading.Event()
    twilio.answer_with(("hold", release))
    client = twilio_client(twilio)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(send, client)
        wait_until(lambda: len(twilio.posts) == 1)
        time.sleep(0.05)

        assert not pending.done()
        assert twilio.accepted == []
        release.set()
        sid = pending.result(timeout=5)

    assert [m.sid for m in twilio.accepted] == [sid]


def test_list_filters_kept_messages_by_to_and_date_sent(twilio_env: None) -> None:
    """Listing returns accepted messages only, filtered by To and DateSent>=."""
    now = [datetime(2026, 1, 1, 23, 0, tzinfo=UTC)]
    with TwilioStandIn(clock=lambda: now[0]) as standin:
        client = twilio_client(standin)
        send(client)
        now[0] = datetime(2026, 1, 3, 0, 30, tzinfo=UTC)
        recent = send(client)
        send(client, to="+14155559999")
        standin.answer_with("400")
        with pytest.raises(TwilioRestException):
            send(client)

        listed = client.messages.list(to=TO, date_sent_after=datetime(2026, 1, 2))

        assert [m.sid for m in listed] == [recent]
        assert listed[0].date_sent == now[0].replace(microsecond=0)
        assert len(standin.posts) == 4


def list_since(standin: TwilioStandIn, day: date) -> dict[str, Any]:
    """GET the Messages list to TO with the date-only filter DateSent>=day."""
    answer = requests.get(
        f"{standin.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        params={"To": TO, "DateSent>": day.isoformat()},
        timeout=5,
    )
    assert "DateSent%3E=" in str(answer.url)
    answer.raise_for_status()
    return dict(answer.json())


def test_list_accepts_date_only_filter_and_is_not_recorded(
    twilio: TwilioStandIn,
) -> None:
    """A raw GET with DateSent>=YYYY-MM-DD lists messages and is not a post."""
    sid = send(twilio_client(twilio))
    today = datetime.now(UTC).date()

    page = list_since(twilio, today)
    empty = list_since(twilio, today + timedelta(days=1))

    assert [m["sid"] for m in page["messages"]] == [sid]
    assert (page["next_page_uri"], page["page"], page["page_size"]) == (None, 0, 50)
    assert empty["messages"] == []
    assert len(twilio.posts) == 1


def test_stopped_stand_in_refuses_connections(twilio_env: None) -> None:
    """After the context manager exits, the port is closed and url is unknown."""
    with TwilioStandIn() as standin:
        client = twilio_client(standin)
        send(client)

    with pytest.raises(requests.exceptions.ConnectionError):
        send(client)
    with pytest.raises(RuntimeError):
        _ = standin.url


# --- AWS -------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Give boto3 fake credentials and no local AWS configuration."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-creds"))
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_CLOUDWATCH",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy(moto_url: str, aws_env: None) -> Iterator[AwsProxy]:
    """Run a proxy in front of a freshly reset moto server."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=5).raise_for_status()
    with AwsProxy(moto_url) as running:
        yield running


def aws_client(service: str, url: str, config: Config = NO_RETRY, **creds: str) -> Any:
    """Build a boto3 client from a fresh session, aimed at ``url``."""
    session = boto3.session.Session(region_name=REGION)
    return session.client(service, endpoint_url=url, config=config, **creds)


def assume(url: str, role_arn: str = ROLE_ARN) -> dict[str, str]:
    """Assume a role through ``url`` and return client credential arguments."""
    answer = aws_client("sts", url).assume_role(
        RoleArn=role_arn, RoleSessionName="cpubot-test"
    )
    creds = answer["Credentials"]
    return {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


def cpu_values(client: Any) -> list[float]:
    """Read the last ten minutes of the test instance's CPU via GetMetricData."""
    end = datetime.now(UTC) + timedelta(minutes=1)
    answer = client.get_metric_data(
        MetricDataQueries=CPU_QUERY, StartTime=end - timedelta(minutes=10), EndTime=end
    )
    return list(answer["MetricDataResults"][0]["Values"])


@pytest.fixture(scope="module")
def cbor_data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a CloudWatch model whose only protocol is smithy-rpc-v2-cbor."""
    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    root = tmp_path_factory.mktemp("botocore-data")
    target = root / "cloudwatch" / model["metadata"]["apiVersion"] / "service-2.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(model))
    return root


def cbor_cloudwatch(url: str, data_path: Path) -> Any:
    """Build a CloudWatch client that speaks RPC v2 CBOR instead of JSON."""
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(data_path))
    client = session.create_client(
        "cloudwatch", region_name=REGION, endpoint_url=url, config=NO_RETRY
    )
    assert client.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    return client


def test_assume_role_is_forwarded_and_counted(proxy: AwsProxy) -> None:
    """AssumeRole through the proxy reaches moto and is counted by action."""
    creds = assume(proxy.url)

    assert creds["aws_access_key_id"].startswith("ASIA")
    assert proxy.calls == Counter({"AssumeRole": 1})


def test_fail_answers_access_denied_in_query_xml(proxy: AwsProxy) -> None:
    """A 403 AccessDenied rule reaches botocore as that ClientError."""
    proxy.fail("AssumeRole", 403, "AccessDenied", "User is not authorized")

    with pytest.raises(ClientError) as caught:
        assume(proxy.url)

    error = caught.value.response["Error"]
    assert (error["Code"], error["Message"], error["Type"]) == (
        "AccessDenied",
        "User is not authorized",
        "Sender",
    )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert proxy.calls["AssumeRole"] == 1


def test_fail_times_limits_failures_then_forwards(proxy: AwsProxy) -> None:
    """With times=1 only the first request fails; the next one is forwarded."""
    proxy.fail("AssumeRole", 403, "AccessDenied", "User is not authorized", times=1)

    with pytest.raises(ClientError):
        assume(proxy.url)
    creds = assume(proxy.url)

    assert creds["aws_access_key_id"].startswith("ASIA")
    assert proxy.calls["AssumeRole"] == 2


def test_fail_throttles_get_metric_data_over_json(proxy: AwsProxy) -> None:
    """Throttling on GetMetricData reaches the default (JSON) client as Throttling."""
    proxy.fail("GetMetricData", 400, "Throttling", "Rate exceeded")

    with pytest.raises(ClientError) as caught:
        cpu_values(aws_client("cloudwatch", proxy.url))

    response = caught.value.response
    assert response["Error"]["Code"] == "Throttling"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-query-error"] == "Throttling;Sender"
    assert proxy.calls == Counter({"GetMetricData": 1})


def test_fail_throttles_get_metric_data_over_rpc_v2_cbor(
    proxy: AwsProxy, cbor_data_path: Path
) -> None:
    """A CBOR client sees the same Throttling error, encoded in CBOR."""
    proxy.fail("GetMetricData", 400, "Throttling", "Rate exceeded")

    with pytest.raises(ClientError) as caught:
        cpu_values(cbor_cloudwatch(proxy.url, cbor_data_path))

    response = caught.value.response
    assert (response["Error"]["Code"], response["Error"]["Message"]) == (
        "Throttling",
        "Rate exceeded",
    )
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["smithy-protocol"] == "rpc-v2-cbor"
    assert headers["content-type"] == "application/cbor"
    assert proxy.calls == Counter({"GetMetricData": 1})


def test_metrics_round_trip_with_assumed_role_credentials(proxy: AwsProxy) -> None:
    """Metrics written with assumed-role credentials are read back by that account."""
    cloudwatch = aws_client("cloudwatch", proxy.url, **assume(proxy.url))
    cloudwatch.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": "i-0abc"}],
                "Value": 73.5,
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
            }
        ],
    )

    assert cpu_values(cloudwatch) == [73.5]
    assert cpu_values(aws_client("cloudwatch", proxy.url)) == []
    assert proxy.calls == Counter(
        {"AssumeRole": 1, "PutMetricData": 1, "GetMetricData": 2}
    )


def test_hold_proves_requests_are_in_flight_together(proxy: AwsProxy) -> None:
    """Two held AssumeRole calls pass a two-party barrier only when concurrent."""
    proxy.hold("AssumeRole", threading.Barrier(2), timeout=2)
    sts = aws_client("sts", proxy.url)

    def call() -> str:
        answer = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="cpubot-test")
        return str(answer["Credentials"]["AccessKeyId"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        keys = [f.result(timeout=5) for f in [pool.submit(call) for _ in range(2)]]

    assert all(key.startswith("ASIA") for key in keys)
    assert proxy.calls["AssumeRole"] == 2


def test_hold_answers_500_when_the_barrier_breaks(proxy: AwsProxy) -> None:
    """A lone held request breaks the barrier at its timeout and gets a 500."""
    proxy.hold("AssumeRole", threading.Barrier(2), timeout=0.2)

    with pytest.raises(ClientError) as caught:
        assume(proxy.url)

    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_delay_beyond_read_timeout_gives_read_timeout_error(proxy: AwsProxy) -> None:
    """A delay longer than the client's read timeout raises ReadTimeoutError."""
    proxy.delay("GetMetricData", 1.5)
    impatient = NO_RETRY.merge(Config(read_timeout=0.3))

    with pytest.raises(ReadTimeoutError):
        cpu_values(aws_client("cloudwatch", proxy.url, config=impatient))

    assert proxy.calls["GetMetricData"] == 1


def test_reset_clears_counts_and_rules(proxy: AwsProxy) -> None:
    """After reset() the counts are empty and requests are forwarded again."""
    proxy.fail("AssumeRole", 403, "AccessDenied", "User is not authorized")
    with pytest.raises(ClientError):
        assume(proxy.url)

    proxy.reset()

    assert proxy.calls == Counter()
    assert assume(proxy.url)["aws_access_key_id"].startswith("ASIA")
    assert proxy.calls == Counter({"AssumeRole": 1})


def test_unreachable_upstream_answers_502(aws_env: None) -> None:
    """When the upstream refuses connections the proxy answers a 502 error."""
    with (
        AwsProxy(f"http://127.0.0.1:{free_port()}") as lonely,
        pytest.raises(ClientError) as caught,
    ):
        assume(lonely.url)

    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert caught.value.response["Error"]["Code"] == "BadGateway"


def test_chunked_request_body_is_read_whole(proxy: AwsProxy) -> None:
    """A chunked form body is reassembled, so its query action is still named."""
    chunks = iter([b"Action=Assume", b"Role&Version=2011-06-15"])

    answer = requests.post(
        proxy.url,
        data=chunks,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )

    assert answer.request.headers["Transfer-Encoding"] == "chunked"
    assert proxy.calls == Counter({"AssumeRole": 1})
