"""A local stand-in for everything Slack on the wire, reached by the real SDKs.

One server on 127.0.0.1 answers three things:

* the Web API, ``POST /api/<method>``: give ``standin.api_url`` to
  ``slack_sdk.WebClient(base_url=...)``, which joins it with the method name;
* ``response_url`` endpoints, ``POST /response/<id>``: ``standin.response_url()``
  hands out a fresh one, and every post there is recorded;
* Socket Mode: ``apps.connections.open`` (app token ``xapp-...``) answers a
  ``ws://`` URL on the same port, where a minimal RFC 6455 server greets the
  client with Slack's ``hello`` and pushes envelopes such as slash commands.

Use it as a context manager, or call :meth:`SlackStandIn.start` and
:meth:`SlackStandIn.stop`. Close Socket Mode clients before stopping the
stand-in: a client still connected when the server goes away tries to reconnect.
The module also builds signed slash command requests for tests that POST to an
app's ``/slack/events``: :func:`signed_headers` and :func:`slash_command_body`.
"""

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import secrets
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from ._server import BackgroundServer, HandlerFactory, QuietHandler

TEAM_ID = "T0001"
TEAM_NAME = "T"
TEAM_DOMAIN = "cpubot-test"
BOT_USER_ID = "U0BOT"
BOT_USER_NAME = "cpubot"
BOT_ID = "B0001"
APP_ID = "A0CPUBOT"
# Slack's deprecated verification token, still sent in every slash command.
VERIFICATION_TOKEN = "standin-verification-token"
# A response_url takes up to five replies; later ones are refused.
RESPONSE_URL_USES = 5
HOLD_LIMIT_SECONDS = 10.0
DEFAULT_WAIT_SECONDS = 10.0

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_FRAME_BYTES = 1 << 20
_OP_CONTINUATION = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
_CLOSE_NORMAL = 1000
_CLOSE_GOING_AWAY = 1001
_CLOSE_PROTOCOL_ERROR = 1002
_CLOSE_TOO_BIG = 1009

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ApiCall:
    """One Web API call: the method, the token it carried and its parameters."""

    method: str
    token: str | None
    params: dict[str, Any]
    time: datetime


@dataclass(frozen=True)
class RecordedResponse:
    """One POST to a ``response_url``, whatever it was answered."""

    path: str
    body: dict[str, Any]
    raw: str
    time: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


def signed_headers(
    secret: str, body: str, timestamp: int | None = None
) -> dict[str, str]:
    """Return the headers Slack signs a request with, for ``body`` and ``secret``.

    The signature is ``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}``
    keyed with the signing secret; ``timestamp`` defaults to now (Unix seconds).
    """
    moment = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{moment}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(moment),
        "X-Slack-Signature": f"v0={digest}",
    }


def _name_of(slack_id: str) -> str:
    """Turn a fake id such as ``U0ALICE`` into the name ``alice``."""
    return slack_id[2:].lower() if slack_id[1:2] == "0" else slack_id.lower()


def _trigger_id() -> str:
    """Make a trigger id shaped like Slack's (digits, digits, hex)."""
    first = 10_000_000_000 + secrets.randbelow(90_000_000_000)
    second = 100_000_000 + secrets.randbelow(900_000_000)
    return f"{first}.{second}.{secrets.token_hex(16)}"


def slash_command_payload(
    text: str,
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0OPS",
    response_url: str,
    command: str = "/cpu",
    trigger_id: str | None = None,
    user_name: str | None = None,
    channel_name: str | None = None,
) -> dict[str, str]:
    """Return the fields Slack sends for a slash command, in Slack's order.

    The same fields arrive as a form over HTTP and as the ``payload`` of a
    Socket Mode envelope; every value is a string. Names default to the id
    without its prefix (``U0ALICE`` is ``alice``).
    """
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name or _name_of(channel_id),
        "user_id": user_id,
        "user_name": user_name or _name_of(user_id),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }


def slash_command_body(
    text: str,
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0OPS",
    response_url: str,
    command: str = "/cpu",
    trigger_id: str | None = None,
    user_name: str | None = None,
    channel_name: str | None = None,
) -> str:
    """Return the urlencoded form body Slack POSTs for a slash command."""
    return urlencode(
        slash_command_payload(
            text,
            user_id=user_id,
            channel_id=channel_id,
            response_url=response_url,
            command=command,
            trigger_id=trigger_id,
            user_name=user_name,
            channel_name=channel_name,
        )
    )


def _single_values(raw: str) -> dict[str, str]:
    """Decode a form or query string, keeping the first value of each field."""
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """Read a JSON or form body into a dict; anything else gives an empty dict."""
    text = raw.decode("utf-8", errors="replace")
    if not text:
        return {}
    if content_type.startswith("application/json"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    if content_type.startswith("application/x-www-form-urlencoded"):
        return _single_values(text)
    return {}


def _bearer(header: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer ...`` header."""
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


class _Peer:
    """The server side of one WebSocket connection (RFC 6455, no extensions)."""

    def __init__(self, sock: socket.socket, reader: BinaryIO, ticket: str) -> None:
        self.sock = sock
        self.reader = reader
        self.ticket = ticket
        self.thread = threading.current_thread()
        self.pinger: threading.Thread | None = None
        self.closing = threading.Event()
        self._send_lock = threading.Lock()

    def send_raw(self, data: bytes) -> bool:
        """Write bytes unless the connection is closing; report success."""
        with self._send_lock:
            if self.closing.is_set():
                return False
            try:
                self.sock.sendall(data)
            except OSError:
                self.closing.set()
                return False
        return True

    @staticmethod
    def frame(opcode: int, payload: bytes) -> bytes:
        """Build one unmasked, final frame, as a server sends them."""
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        return header + payload

    def send_json(self, message: dict[str, Any]) -> bool:
        """Send a JSON text message; report whether it was written."""
        return self.send_raw(self.frame(_OP_TEXT, json.dumps(message).encode()))

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame (once) and shut the socket so the reader stops."""
        payload = struct.pack("!H", code) + reason.encode()
        with self._send_lock:
            if not self.closing.is_set():
                self.closing.set()
                with contextlib.suppress(OSError):
                    self.sock.sendall(self.frame(_OP_CLOSE, payload))
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def _read_exactly(self, size: int) -> bytes | None:
        try:
            data = self.reader.read(size) if size else b""
        except (OSError, ValueError):
            return None
        return data if data is not None and len(data) == size else None

    def read_frame(self) -> tuple[int, bool, bytes] | None:
        """Read one client frame as (opcode, fin, payload); None once it ends."""
        head = self._read_exactly(2)
        if head is None:
            return None
        fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        masked, size = bool(head[1] & 0x80), head[1] & 0x7F
        if size in (126, 127):
            extra = self._read_exactly(2 if size == 126 else 8)
            if extra is None:
                return None
            size = struct.unpack("!H" if len(extra) == 2 else "!Q", extra)[0]
        if not masked:
            self.close(_CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            return None
        if size > _MAX_FRAME_BYTES:
            self.close(_CLOSE_TOO_BIG, "frame too large")
            return None
        mask = self._read_exactly(4)
        data = self._read_exactly(size)
        if mask is None or data is None:
            return None
        return opcode, fin, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class SlackStandIn(BackgroundServer):
    """A local Slack: Web API, ``response_url`` capture and Socket Mode.

    Web API calls are recorded in :attr:`api_calls` and answered like Slack
    (``auth.test``, ``chat.postMessage``, ``chat.postEphemeral``,
    ``apps.connections.open``; anything else is ``unknown_method``).
    :meth:`fail_method` makes a method answer ``{"ok": false, "error": ...}``.
    Posts to response URLs land in :attr:`responses`. Socket Mode clients get
    ``hello`` on connect; :meth:`send_slash_command` pushes an envelope and
    :meth:`wait_for_ack` returns the client's acknowledgement. The server pings
    each connection every ``ping_interval`` seconds (None: never), as Slack
    does; it also wakes the SDK's reader so that its ``close()`` is quick.
    """

    def __init__(self, clock: Clock = _utc_now, ping_interval: float | None = 0.5):
        super().__init__()
        self._clock = clock
        self._ping_interval = ping_interval
        self._changed = threading.Condition()
        self._api_calls: list[ApiCall] = []
        self._failures: dict[str, str] = {}
        self._responses: list[RecordedResponse] = []
        self._uses: dict[str, int] = {}
        self._hold: threading.Event | None = None
        self._last_ts = 0.0
        self._tickets: set[str] = set()
        self._peers: list[_Peer] = []
        self._connections = 0
        self._socket_messages: list[dict[str, Any]] = []
        self._acks: dict[str, dict[str, Any]] = {}

    def _handler_factory(self) -> HandlerFactory:
        return functools.partial(_SlackHandler, self)

    # ----------------------------------------------------------------- URLs

    @property
    def api_url(self) -> str:
        """Return the Web API base URL, ``http://127.0.0.1:PORT/api/``."""
        return f"{self.url}/api/"

    @property
    def websocket_url(self) -> str:
        """Return the Socket Mode endpoint, without a ticket, as a ``ws://`` URL."""
        return "ws" + self.url.removeprefix("http") + "/link/"

    def response_url(self, name: str = "response") -> str:
        """Return a fresh ``http://127.0.0.1:PORT/response/<id>`` URL to reply to."""
        return f"{self.url}/response/{quote(name, safe='')}-{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------ recordings

    @property
    def api_calls(self) -> list[ApiCall]:
        """Return a copy of every Web API call so far, oldest first."""
        with self._changed:
            return list(self._api_calls)

    def calls(self, method: str) -> list[ApiCall]:
        """Return the Web API calls of one method, oldest first."""
        return [call for call in self.api_calls if call.method == method]

    @property
    def responses(self) -> list[RecordedResponse]:
        """Return a copy of every post to a response URL so far, oldest first."""
        with self._changed:
            return list(self._responses)

    @property
    def socket_messages(self) -> list[dict[str, Any]]:
        """Return every JSON message Socket Mode clients have sent, oldest first."""
        with self._changed:
            return list(self._socket_messages)

    @property
    def open_connections(self) -> int:
        """Return how many Socket Mode connections are open now."""
        with self._changed:
            return sum(not peer.closing.is_set() for peer in self._peers)

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Block until ``ready()`` holds (checked under the lock) or time runs out."""
        with self._changed:
            if not self._changed.wait_for(ready, timeout=timeout):
                raise TimeoutError(f"Slack stand-in: no {what} within {timeout} s")

    def wait_for_responses(
        self, count: int, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> list[RecordedResponse]:
        """Block until ``count`` posts to response URLs have arrived; return all."""
        self._wait(lambda: len(self._responses) >= count, timeout, f"{count} responses")
        return self.responses

    def wait_for_connection(
        self, count: int = 1, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> int:
        """Block until ``count`` Socket Mode connections have been greeted in all.

        Return the number of connections opened so far.
        """
        self._wait(lambda: self._connections >= count, timeout, f"{count} connections")
        with self._changed:
            return self._connections

    def wait_for_ack(
        self, envelope_id: str, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> dict[str, Any]:
        """Block until the client acknowledges an envelope; return its message."""
        self._wait(lambda: envelope_id in self._acks, timeout, f"ack of {envelope_id}")
        with self._changed:
            return self._acks[envelope_id]

    # --------------------------------------------------------------- control

    def fail_method(self, method: str, error: str | None) -> None:
        """Make a Web API method answer ``ok: false`` with ``error``; None undoes it."""
        with self._changed:
            if error is None:
                self._failures.pop(method, None)
            else:
                self._failures[method] = error

    def hold_responses(self, event: threading.Event | None) -> None:
        """Hold answers to response URL posts until ``event`` is set (None: don't).

        A held post is recorded at once and answered when the event is set, after
        10 s at most, or when the stand-in stops.
        """
        with self._changed:
            self._hold = event

    def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
    ) -> str:
        """Push a Socket Mode envelope of type ``kind``; return its ``envelope_id``.

        Like Slack, one envelope goes to one connection: the newest open one.
        """
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        self._push(envelope)
        return envelope_id

    def send_slash_command(self, payload: dict[str, Any]) -> str:
        """Push a ``slash_commands`` envelope; return its ``envelope_id``."""
        return self.send_envelope(
            "slash_commands", payload, accepts_response_payload=True
        )

    def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does before it drops a connection."""
        self._push(
            {
                "type": "disconnect",
                "reason": reason,
                "debug_info": {"host": "applink-standin"},
            }
        )

    def _push(self, message: dict[str, Any]) -> None:
        with self._changed:
            open_peers = [p for p in self._peers if not p.closing.is_set()]
        for peer in reversed(open_peers):
            if peer.send_json(message):
                return
        raise RuntimeError("Slack stand-in: no Socket Mode client is connected")

    # ------------------------------------------------------------- internals

    def _next_ts(self) -> str:
        """Return a message timestamp like Slack's, unique and increasing."""
        with self._changed:
            self._last_ts = max(self._clock().timestamp(), self._last_ts + 0.000001)
            return f"{self._last_ts:.6f}"

    def _api_answer(
        self, method: str, token: str | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a Web API call and build Slack's answer to it."""
        with self._changed:
            self._api_calls.append(ApiCall(method, token, params, self._clock()))
            failure = self._failures.get(method)
            self._changed.notify_all()
        answers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": self._post_ephemeral,
            "apps.connections.open": self._connections_open,
        }
        answer = answers.get(method)
        if answer is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        if token is None:
            return {"ok": False, "error": "not_authed"}
        app_level = token.startswith("xapp-")
        if app_level != (method == "apps.connections.open"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if not app_level and not token.startswith("xox"):
            return {"ok": False, "error": "invalid_auth"}
        if failure is not None:
            return {"ok": False, "error": failure}
        return answer(params)

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    @staticmethod
    def _message_problem(params: dict[str, Any]) -> str | None:
        if not params.get("channel"):
            return "channel_not_found"
        if not any(params.get(k) for k in ("text", "blocks", "attachments")):
            return "no_text"
        return None

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        problem = self._message_problem(params)
        if problem:
            return {"ok": False, "error": problem}
        ts = self._next_ts()
        message = {
            "type": "message",
            "subtype": "bot_message",
            "text": params.get("text", ""),
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
        }
        return {"ok": True, "channel": params["channel"], "ts": ts, "message": message}

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        problem = self._message_problem(params)
        if problem:
            return {"ok": False, "error": problem}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        with self._changed:
            self._tickets.add(ticket)
        return {
            "ok": True,
            "url": f"{self.websocket_url}?ticket={ticket}&app_id={APP_ID}",
        }

    def _record_response(
        self, response: RecordedResponse
    ) -> tuple[int, threading.Event | None]:
        """Keep a response post; return its use count and the hold in force."""
        with self._changed:
            self._responses.append(response)
            uses = self._uses.get(response.path, 0) + 1
            self._uses[response.path] = uses
            self._changed.notify_all()
            return uses, self._hold

    def _wait_for_release(self, event: threading.Event) -> None:
        """Wait for a hold to be released, the time limit, or :meth:`stop`."""
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while not event.wait(0.02):
            if self._stopping.is_set() or time.monotonic() >= deadline:
                return

    def _ticket_known(self, ticket: str | None) -> bool:
        with self._changed:
            return ticket in self._tickets

    def _serve_peer(self, peer: _Peer, handshake: bytes) -> None:
        """Greet a new Socket Mode connection and serve it until it ends."""
        with self._changed:
            if self._stopping.is_set():
                return
            self._peers.append(peer)
            greeted = sum(not p.closing.is_set() for p in self._peers)
        hello = {
            "type": "hello",
            "num_connections": greeted,
            "debug_info": {
                "host": "applink-standin",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": APP_ID},
        }
        # The SDK reads the handshake up to its last "\r" and skips the "\n"
        # left over as the first byte of its next read: send both at once.
        frame = peer.frame(_OP_TEXT, json.dumps(hello).encode())
        if peer.send_raw(handshake + frame):
            with self._changed:
                self._connections += 1
                self._changed.notify_all()
            if self._ping_interval is not None:
                peer.pinger = threading.Thread(
                    target=self._ping, args=(peer, self._ping_interval), daemon=True
                )
                peer.pinger.start()
            self._read_loop(peer)
        peer.close(_CLOSE_NORMAL)
        with self._changed:
            self._peers.remove(peer)
            self._changed.notify_all()

    @staticmethod
    def _ping(peer: _Peer, interval: float) -> None:
        while not peer.closing.wait(interval):
            if not peer.send_raw(peer.frame(_OP_PING, b"standin")):
                return

    def _read_loop(self, peer: _Peer) -> None:
        """Answer pings and close frames, and record the client's text messages."""
        parts: list[bytes] = []
        while (frame := peer.read_frame()) is not None:
            opcode, fin, payload = frame
            if opcode == _OP_PING:
                peer.send_raw(peer.frame(_OP_PONG, payload))
            elif opcode == _OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
                peer.close(code or _CLOSE_NORMAL)
                return
            elif opcode in (_OP_TEXT, _OP_CONTINUATION):
                parts.append(payload)
                if fin:
                    self._on_text(b"".join(parts))
                    parts = []
            elif opcode not in (_OP_PONG, _OP_BINARY):
                peer.close(_CLOSE_PROTOCOL_ERROR, "unknown opcode")
                return

    def _on_text(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = {"text": data.decode("utf-8", errors="replace")}
        if not isinstance(message, dict):
            message = {"value": message}
        with self._changed:
            self._socket_messages.append(message)
            envelope_id = message.get("envelope_id")
            if isinstance(envelope_id, str):
                self._acks.setdefault(envelope_id, message)
            self._changed.notify_all()

    def _on_stop(self) -> None:
        """Close every Socket Mode connection and wait (briefly) for its threads."""
        with self._changed:
            peers = list(self._peers)
        for peer in peers:
            peer.close(_CLOSE_GOING_AWAY, "server stopping")
        deadline = time.monotonic() + 5
        for peer in peers:
            for thread in (peer.thread, peer.pinger):
                if thread is not None and thread is not threading.current_thread():
                    thread.join(timeout=max(0.0, deadline - time.monotonic()))


class _SlackHandler(QuietHandler):
    def __init__(self, standin: SlackStandIn, *args: Any) -> None:
        self.standin = standin
        super().__init__(*args)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        headers = [("Content-Type", "application/json; charset=utf-8")]
        self.write_reply(status, headers, body)

    def _not_found(self) -> None:
        self.write_reply(404, [("Content-Type", "text/plain")], b"not found")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _api(self, path: str, query: str, raw: bytes) -> None:
        method = path.removeprefix("/api/")
        params: dict[str, Any] = _single_values(query)
        params.update(_parse_body(raw, self.headers.get("Content-Type") or ""))
        form_token = params.pop("token", None)
        token = _bearer(self.headers.get("Authorization")) or form_token
        self._send_json(200, self.standin._api_answer(method, token, params))

    def _response(self, path: str, raw: bytes) -> None:
        content_type = self.headers.get("Content-Type") or ""
        body = _parse_body(raw, content_type)
        if "payload" in body and not content_type.startswith("application/json"):
            body = _parse_body(str(body["payload"]).encode(), "application/json")
        text = raw.decode("utf-8", errors="replace")
        recorded = RecordedResponse(path, body, text, self.standin._clock())
        uses, hold = self.standin._record_response(recorded)
        if hold is not None:
            self.standin._wait_for_release(hold)
        if uses > RESPONSE_URL_USES:
            self._send_json(404, {"ok": False, "error": "used_url"})
        else:
            self._send_json(200, {"ok": True})

    def _upgrade(self, query: str) -> None:
        """Switch a ``GET /link/`` to the WebSocket protocol and serve it."""
        key = self.headers.get("Sec-WebSocket-Key")
        if (
            (self.headers.get("Upgrade") or "").lower() != "websocket"
            or "upgrade" not in (self.headers.get("Connection") or "").lower()
            or self.headers.get("Sec-WebSocket-Version") != "13"
            or not key
        ):
            self.write_reply(400, [("Content-Type", "text/plain")], b"not websocket")
            return
        ticket = _single_values(query).get("ticket")
        if self.standin._stopping.is_set():
            self.write_reply(503, [("Content-Type", "text/plain")], b"stopping")
            return
        if ticket is None or not self.standin._ticket_known(ticket):
            self.write_reply(401, [("Content-Type", "text/plain")], b"invalid ticket")
            return
        digest = hashlib.sha1((key + _WS_GUID).encode(), usedforsecurity=False)
        accept = base64.b64encode(digest.digest()).decode()
        handshake = (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
        self.close_connection = True
        self.standin._serve_peer(_Peer(self.connection, self.rfile, ticket), handshake)

    def do_GET(self) -> None:
        """Serve the Socket Mode endpoint, or a Web API call made with GET."""
        parts = urlsplit(self.path)
        if parts.path in ("/link", "/link/"):
            self._upgrade(parts.query)
        elif parts.path.startswith("/api/"):
            self._api(parts.path, parts.query, b"")
        else:
            self._not_found()

    def do_POST(self) -> None:
        """Answer a Web API call or record a post to a response URL."""
        parts = urlsplit(self.path)
        raw = self._read_body()
        if parts.path.startswith("/api/"):
            self._api(parts.path, parts.query, raw)
        elif parts.path.startswith("/response/"):
            self._response(parts.path, raw)
        else:
            self._not_found()
