import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from slack_bolt import Ack, App, BoltRequest, Respond
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.standins.slack import (
    BOT_USER_ID,
    RESPONSE_URL_USES,
    TEAM_ID,
    SlackStandIn,
    signed_headers,
    slash_command_body,
    slash_command_payload,
)

SECRET = "signing-secret"
BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep proxy variables away: slack_sdk would send even 127.0.0.1 through them."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """Give each test a fresh Slack stand-in, stopped afterwards."""
    with SlackStandIn() as server:
        yield server


def _cpu_app(standin: SlackStandIn) -> App:
    """Build a Bolt app whose /cpu listener acks, then responds in the channel."""
    app = App(
        token=BOT_TOKEN,
        signing_secret=SECRET,
        client=WebClient(token=BOT_TOKEN, base_url=standin.api_url),
    )

    @app.command("/cpu")
    def cpu(ack: Ack, respond: Respond) -> None:
        ack()
        respond(text="hi", response_type="in_channel")

    return app


def test_web_client_auth_test_is_answered_and_recorded(standin: SlackStandIn) -> None:
    """The real WebClient gets Slack's auth.test answer, and the call is recorded."""
    client = WebClient(token=BOT_TOKEN, base_url=standin.api_url)

    answer = client.auth_test()

    assert answer["ok"] is True
    assert answer["team_id"] == TEAM_ID
    assert answer["user_id"] == BOT_USER_ID
    assert answer["bot_id"] == "B0001"
    [call] = standin.api_calls
    assert (call.method, call.token) == ("auth.test", BOT_TOKEN)


def test_web_api_answers_messages_and_errors_like_slack(standin: SlackStandIn) -> None:
    """Messages get ts values, while bad methods, tokens and failures raise."""
    client = WebClient(token=BOT_TOKEN, base_url=standin.api_url)

    posted = client.chat_postMessage(channel="C0OPS", text="hot")
    ephemeral = client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="x")
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("cpu.melt")
    with pytest.raises(SlackApiError) as wrong_token:
        client.apps_connections_open(app_token=BOT_TOKEN)
    standin.fail_method("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError) as failed:
        client.chat_postMessage(channel="C0GONE", text="hot")

    assert posted["channel"] == "C0OPS"
    assert float(ephemeral["message_ts"]) > float(posted["ts"])
    assert unknown.value.response["error"] == "unknown_method"
    assert wrong_token.value.response["error"] == "not_allowed_token_type"
    assert failed.value.response["error"] == "channel_not_found"
    first = standin.calls("chat.postMessage")[0]
    assert first.params == {"channel": "C0OPS", "text": "hot"}


def test_signed_headers_pass_slack_sdk_signature_check() -> None:
    """Headers from signed_headers are accepted by slack_sdk's own verifier."""
    body = slash_command_body("status", response_url="http://127.0.0.1:9/response/x")

    headers = signed_headers(SECRET, body)

    verifier = SignatureVerifier(SECRET)
    timestamp = headers["X-Slack-Request-Timestamp"]
    assert verifier.is_valid(body, timestamp, headers["X-Slack-Signature"])
    assert not verifier.is_valid(body + "x", timestamp, headers["X-Slack-Signature"])
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_slash_command_body_carries_the_fields_slack_sends() -> None:
    """The form holds Slack's slash command fields, text decoded intact."""
    body = slash_command_body(
        "i-0abc 80%", response_url="http://127.0.0.1:9/response/x", trigger_id="1.2.3"
    )

    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    assert list(fields) == list(
        slash_command_payload("", response_url="u", trigger_id="t")
    )
    assert fields["text"] == "i-0abc 80%"
    assert fields["command"] == "/cpu"
    assert (fields["user_id"], fields["user_name"]) == ("U0ALICE", "alice")
    assert (fields["channel_id"], fields["channel_name"]) == ("C0OPS", "ops")
    assert fields["trigger_id"] == "1.2.3"
    assert fields["is_enterprise_install"] == "false"


def test_bolt_http_slash_command_response_reaches_standin(
    standin: SlackStandIn,
) -> None:
    """A signed slash command is acked with 200 and respond() posts to the stand-in."""
    app = _cpu_app(standin)
    url = standin.response_url(name="cpu")
    body = slash_command_body("status", response_url=url)

    answer = app.dispatch(BoltRequest(body=body, headers=signed_headers(SECRET, body)))

    assert answer.status == 200
    [response] = standin.wait_for_responses(1, timeout=3)
    assert response.path == url.removeprefix(standin.url)
    assert response.body["response_type"] == "in_channel"
    assert response.body["text"] == "hi"
    assert [c.method for c in standin.api_calls] == ["auth.test"]


def test_bolt_rejects_a_forged_signature_with_401(standin: SlackStandIn) -> None:
    """A body signed with the wrong secret gets 401 and no response is posted."""
    app = _cpu_app(standin)
    body = slash_command_body("status", response_url=standin.response_url())

    answer = app.dispatch(BoltRequest(body=body, headers=signed_headers("x", body)))
    stale = signed_headers(SECRET, body, timestamp=int(time.time()) - 600)
    late = app.dispatch(BoltRequest(body=body, headers=stale))

    assert (answer.status, late.status) == (401, 401)
    assert standin.responses == []


def test_socket_mode_handler_acks_and_responds_then_stops(
    standin: SlackStandIn,
) -> None:
    """The real SocketModeHandler acks a slash command, responds, and shuts fast."""
    handler = SocketModeHandler(_cpu_app(standin), APP_TOKEN)
    try:
        handler.connect()
        standin.wait_for_connection(timeout=3)
        url = standin.response_url(name="socket")
        envelope_id = standin.send_slash_command(
            slash_command_payload("status", response_url=url)
        )

        ack = standin.wait_for_ack(envelope_id, timeout=3)
        [response] = standin.wait_for_responses(1, timeout=3)
    finally:
        started = time.monotonic()
        handler.close()
        standin.stop()
        stopping = time.monotonic() - started

    assert ack == {"envelope_id": envelope_id}
    assert response.body["response_type"] == "in_channel"
    [opened] = standin.calls("apps.connections.open")
    assert opened.token == APP_TOKEN
    assert standin.socket_messages == [ack]
    assert stopping < 3


def test_socket_mode_client_reconnects_when_told_to(standin: SlackStandIn) -> None:
    """After a disconnect message the client opens a new connection that works."""
    handler = SocketModeHandler(_cpu_app(standin), APP_TOKEN)
    try:
        handler.connect()
        standin.wait_for_connection(timeout=3)
        standin.send_disconnect()
        standin.wait_for_connection(count=2, timeout=3)
        envelope_id = standin.send_slash_command(
            slash_command_payload("status", response_url=standin.response_url())
        )
        standin.wait_for_ack(envelope_id, timeout=3)
    finally:
        handler.close()

    assert len(standin.calls("apps.connections.open")) == 2


def test_response_url_holds_and_refuses_a_sixth_reply(standin: SlackStandIn) -> None:
    """A held post is recorded before it is answered; the sixth reply gets 404."""
    url = standin.response_url()
    release = threading.Event()
    standin.hold_responses(release)
    statuses: list[int] = []
    poster = threading.Thread(
        target=lambda: statuses.append(WebhookClient(url).send(text="1").status_code)
    )
    poster.start()

    standin.wait_for_responses(1, timeout=3)
    answered_while_held = bool(statuses)
    release.set()
    poster.join(timeout=3)
    standin.hold_responses(None)
    later = [WebhookClient(url).send(text="n").status_code for _ in range(5)]

    assert not answered_while_held
    assert statuses + later == [200] * RESPONSE_URL_USES + [404]
    assert standin.responses[0].body == {"text": "1"}
