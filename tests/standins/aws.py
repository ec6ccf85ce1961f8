"""An HTTP proxy in front of a moto server that counts AWS actions and adds faults.

Point boto3 at the proxy with ``endpoint_url=proxy.url``. Each request is
forwarded unchanged (method, path and query, headers with the signature, body)
and moto's answer is relayed back. The proxy names the AWS action of each
request and, per action, can answer with an AWS error in the request's own
protocol, hold requests on a barrier, or delay them.

Protocols recognised:

* query (STS): form body or query string with ``Action=AssumeRole``;
* JSON (``X-Amz-Target: Service.Action``), which botocore 1.44 uses for
  CloudWatch although the model names ``smithy-rpc-v2-cbor`` first;
* Smithy RPC v2 CBOR: ``POST /service/{Service}/operation/{Action}`` with the
  header ``smithy-protocol: rpc-v2-cbor``.
"""

import dataclasses
import functools
import http.client
import io
import json
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import cbor2

from ._server import BackgroundServer, HandlerFactory, QuietHandler

QUERY = "query"
JSON = "json"
RPC_V2_CBOR = "rpc-v2-cbor"
UNKNOWN_ACTION = "(unknown)"
HOLD_TIMEOUT_SECONDS = 10.0

_RPC_V2_PATH = re.compile(r"^/service/[^/]+/operation/(?P<operation>[^/]+)$")
_FORM_TYPE = "application/x-www-form-urlencoded"
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class AwsCall:
    """What the proxy learnt about one request: action, protocol, query mode."""

    action: str
    protocol: str
    query_mode: bool = False
    content_type: str = ""


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class _Failure:
    status: int
    code: str
    message: str
    remaining: int | None


def _form_action(raw: str) -> str | None:
    values = parse_qs(raw, keep_blank_values=True).get("Action")
    return values[0] if values else None


def _query_action(target: str, headers: Message, body: bytes) -> str | None:
    """Find ``Action=`` of the query protocol in the form body or query string."""
    content_type = headers.get("Content-Type", "")
    if content_type.startswith(_FORM_TYPE):
        action = _form_action(body.decode("utf-8", errors="replace"))
        if action:
            return action
    return _form_action(urlsplit(target).query)


def identify(target: str, headers: Message, body: bytes) -> AwsCall:
    """Name the AWS action and protocol of a request (path, headers, body)."""
    query_mode = headers.get("x-amzn-query-mode", "").lower() == "true"
    content_type = headers.get("Content-Type", "")
    rpc = _RPC_V2_PATH.match(urlsplit(target).path)
    if rpc or headers.get("smithy-protocol") == RPC_V2_CBOR:
        action = rpc["operation"] if rpc else UNKNOWN_ACTION
        return AwsCall(action, RPC_V2_CBOR, query_mode, content_type)
    amz_target = headers.get("X-Amz-Target")
    if amz_target:
        action = amz_target.rpartition(".")[2]
        return AwsCall(action, JSON, query_mode, content_type)
    action = _query_action(target, headers, body) or UNKNOWN_ACTION
    return AwsCall(action, QUERY, query_mode, content_type)


def _query_error_body(fault: str, code: str, message: str, request_id: str) -> bytes:
    return (
        "<ErrorResponse><Error>"
        f"<Type>{fault}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def _error_reply(call: AwsCall, status: int, code: str, message: str) -> _Reply:
    """Build AWS's error answer in the protocol the request used.

    Query: ``ErrorResponse`` XML. JSON and RPC v2 CBOR: a map with ``__type``
    and ``message``; when the request carried ``x-amzn-query-mode: true`` (the
    client's service is awsQueryCompatible) the answer also carries
    ``x-amzn-query-error: Code;Sender`` (``Receiver`` for 5xx), from which
    botocore takes the error code.
    """
    fault = "Sender" if status < 500 else "Receiver"
    request_id = str(uuid.uuid4())
    headers: Headers = [("x-amzn-RequestId", request_id)]
    if call.protocol == QUERY:
        headers.append(("Content-Type", "text/xml"))
        return _Reply(
            status, headers, _query_error_body(fault, code, message, request_id)
        )
    if call.query_mode:
        headers.append(("x-amzn-query-error", f"{code};{fault}"))
    document = {"__type": code, "message": message}
    if call.protocol == RPC_V2_CBOR:
        headers += [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", RPC_V2_CBOR),
        ]
        return _Reply(status, headers, cbor2.dumps(document))
    headers.append(("Content-Type", call.content_type or "application/x-amz-json-1.0"))
    return _Reply(status, headers, json.dumps(document).encode())


def _read_chunked(stream: io.BufferedIOBase) -> bytes:
    """Read a body sent with ``Transfer-Encoding: chunked``."""
    parts: list[bytes] = []
    while size := int(stream.readline().split(b";")[0].strip() or b"0", 16):
        parts.append(stream.read(size))
        stream.readline()
    while stream.readline().strip():
        pass
    return b"".join(parts)


def _forwarded_headers(request: _Request) -> Headers:
    """Copy the end-to-end headers (Host and Authorization unchanged)."""
    kept = [(k, v) for k, v in request.headers if k.lower() not in _NOT_FORWARDED]
    if request.body or request.method in {"POST", "PUT", "PATCH"}:
        kept.append(("Content-Length", str(len(request.body))))
    return kept


class AwsProxy(BackgroundServer):
    """A fault-injecting, action-counting HTTP proxy in front of a moto server."""

    def __init__(self, upstream: str, *, timeout: float = 30.0) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream = upstream
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._bodies: list[tuple[str, str]] = []
        self._fails: dict[str, _Failure] = {}
        self._holds: dict[str, tuple[threading.Barrier, float]] = {}
        self._delays: dict[str, float] = {}

    def _handler_factory(self) -> HandlerFactory:
        return functools.partial(_ProxyHandler, self)

    @property
    def calls(self) -> Counter[str]:
        """Return a copy of the number of requests seen per action name."""
        with self._lock:
            return Counter(self._calls)

    def requests(self, action: str) -> list[str]:
        """Return the bodies (decoded) of every request seen for ``action``."""
        with self._lock:
            return [body for name, body in self._bodies if name == action]

    def reset(self) -> None:
        """Forget the counts and every fail, hold and delay rule."""
        with self._lock:
            self._calls.clear()
            self._bodies.clear()
            self._fails.clear()
            self._holds.clear()
            self._delays.clear()

    def fail(
        self,
        action: str,
        status: int,
        code: str,
        message: str,
        times: int | None = None,
    ) -> None:
        """Answer requests for ``action`` with an AWS error instead of forwarding.

        With ``times`` only that many requests fail; later ones are forwarded.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for always)")
        with self._lock:
            self._fails[action] = _Failure(status, code, message, times)

    def hold(
        self,
        action: str,
        barrier: threading.Barrier,
        timeout: float = HOLD_TIMEOUT_SECONDS,
    ) -> None:
        """Make each request for ``action`` wait on ``barrier`` before forwarding.

        A broken barrier (or one not passed within ``timeout``) gets a 500
        ``InternalFailure`` answer instead.
        """
        with self._lock:
            self._holds[action] = (barrier, timeout)

    def delay(self, action: str, seconds: float) -> None:
        """Sleep ``seconds`` before forwarding each request for ``action``."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._delays[action] = seconds

    def _on_stop(self) -> None:
        with self._lock:
            barriers = [barrier for barrier, _ in self._holds.values()]
        for barrier in barriers:
            barrier.abort()

    def _count(self, action: str) -> None:
        with self._lock:
            self._calls[action] += 1

    def _take_failure(self, action: str) -> _Failure | None:
        """Return the failure due for ``action``, using up one of its times."""
        with self._lock:
            failure = self._fails.get(action)
            if failure is None or failure.remaining is None:
                return failure
            if failure.remaining <= 1:
                del self._fails[action]
            else:
                remaining = failure.remaining - 1
                self._fails[action] = dataclasses.replace(failure, remaining=remaining)
            return failure

    def _passes_hold(self, action: str) -> bool:
        """Wait on the action's barrier, if any; False when it broke."""
        with self._lock:
            hold = self._holds.get(action)
        if hold is None:
            return True
        barrier, timeout = hold
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            return False
        return True

    def _wait_delay(self, action: str) -> None:
        with self._lock:
            seconds = self._delays.get(action, 0.0)
        if seconds:
            self._pause(seconds)

    def _respond(self, call: AwsCall, request: _Request) -> _Reply:
        """Apply the action's rules (hold, delay, fail), else forward."""
        self._count(call.action)
        with self._lock:
            self._bodies.append((call.action, request.body.decode(errors="replace")))
        if not self._passes_hold(call.action):
            return _error_reply(call, 500, "InternalFailure", "hold barrier broken")
        self._wait_delay(call.action)
        failure = self._take_failure(call.action)
        if failure is not None:
            return _error_reply(call, failure.status, failure.code, failure.message)
        return self._forward(call, request)

    def _forward(self, call: AwsCall, request: _Request) -> _Reply:
        """Send the request to the upstream and return its answer."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.putrequest(
                request.method,
                self._prefix + request.target,
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in _forwarded_headers(request):
                conn.putheader(name, value)
            conn.endheaders(request.body or None)
            answer = conn.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            return _error_reply(call, 502, "BadGateway", f"upstream failed: {exc}")
        finally:
            conn.close()
        headers = [
            (k, v) for k, v in answer.getheaders() if k.lower() not in _NOT_FORWARDED
        ]
        return _Reply(answer.status, headers, body)


class _ProxyHandler(QuietHandler):
    def __init__(self, proxy: AwsProxy, *args: Any) -> None:
        self.proxy = proxy
        super().__init__(*args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _relay(self) -> None:
        body = self._read_body()
        call = identify(self.path, self.headers, body)
        request = _Request(self.command, self.path, list(self.headers.items()), body)
        reply = self.proxy._respond(call, request)
        self.write_reply(reply.status, reply.headers, reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _relay
