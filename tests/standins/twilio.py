"""A local stand-in for Twilio's Messages REST API, reached by the real client.

Point ``twilio.rest.Client`` at it with ``client.api.base_url = standin.url``.
Every send is recorded; what each send gets back is programmable.
"""

import base64
import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._server import BackgroundServer, HandlerFactory, QuietHandler

API_VERSION = "2010-04-01"
HOLD_LIMIT_SECONDS = 10.0
DEFAULT_PAGE_SIZE = 50
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_ERROR_KINDS = {
    "400": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "429": (429, 20429, "Too Many Requests"),
    "500": (500, 20500, "Internal Server Error"),
}
_SIMPLE_KINDS = frozenset({"201", "drop", *_ERROR_KINDS})

Kind = str | tuple[str, threading.Event]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RecordedPost:
    """One POST to the Messages resource, whatever it was answered."""

    account_sid: str
    to: str
    sender: str
    body: str
    auth_user: str | None
    time: datetime


@dataclass(frozen=True)
class AcceptedMessage:
    """A message the stand-in answered 201 to, and now lists."""

    sid: str
    account_sid: str
    to: str
    sender: str
    body: str
    time: datetime


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: dict[str, Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_kind(kind: Kind) -> Kind:
    """Return ``kind`` when it is an answer the stand-in knows, else raise."""
    if isinstance(kind, tuple):
        if (
            len(kind) == 2
            and kind[0] in ("hold", "hold-drop")
            and isinstance(kind[1], threading.Event)
        ):
            return kind
    elif kind in _SIMPLE_KINDS:
        return kind
    raise ValueError(f"unknown Twilio answer kind: {kind!r}")


def _basic_auth_user(header: str | None) -> str | None:
    """Return the user name of an HTTP Basic ``Authorization`` header."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except ValueError:
        return None
    return decoded.partition(":")[0]


def _twilio_date(moment: datetime) -> str:
    """Format a moment as Twilio does (RFC 2822, GMT)."""
    return format_datetime(moment.astimezone(UTC))


def _error_payload(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _message_payload(message: AcceptedMessage, *, listed: bool) -> dict[str, Any]:
    """Build Twilio's JSON for a message: queued when created, sent when listed."""
    uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
    by_service = message.sender.startswith("MG")
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": _twilio_date(message.time),
        "date_sent": _twilio_date(message.time) if listed else None,
        "date_updated": _twilio_date(message.time),
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": None if by_service else message.sender,
        "messaging_service_sid": message.sender if by_service else None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": "sent" if listed else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": message.to,
        "uri": f"{uri}.json",
    }


def _filter_date(value: str) -> date:
    """Read a ``DateSent`` filter value; like Twilio, only the GMT date counts."""
    return date.fromisoformat(value[:10])


def _matches(message: AcceptedMessage, query: dict[str, str]) -> bool:
    """Tell whether a kept message passes Twilio's list filters."""
    sent = message.time.astimezone(UTC).date()
    checks = (
        ("To", lambda v: message.to == v),
        ("From", lambda v: message.sender == v),
        ("DateSent", lambda v: sent == _filter_date(v)),
        ("DateSent>", lambda v: sent >= _filter_date(v)),
        ("DateSent<", lambda v: sent <= _filter_date(v)),
    )
    return all(test(query[key]) for key, test in checks if key in query)


class TwilioStandIn(BackgroundServer):
    """A local Twilio REST API that records sends and answers as it is told.

    Answers are queued with :meth:`answer_with` and used one per POST; when
    the queue is empty the default answer (``"201"``) is used. Kinds:
    ``"201"``, ``"400"``, ``"429"``, ``"500"``, ``"drop"`` (close the socket
    without an answer), ``("hold-drop", event)`` (wait for the event, then drop:
    the message never went out) and ``("hold", event)`` (wait for the event, at most
    10 s, then answer 201).
    """

    def __init__(self, clock: Clock = _utc_now) -> None:
        super().__init__()
        self._clock = clock
        self._lock = threading.Lock()
        self._queue: list[Kind] = []
        self._default: Kind = "201"
        self._posts: list[RecordedPost] = []
        self._messages: list[AcceptedMessage] = []

    def _handler_factory(self) -> HandlerFactory:
        return functools.partial(_TwilioHandler, self)

    @property
    def posts(self) -> list[RecordedPost]:
        """Return a copy of every POST received so far, oldest first."""
        with self._lock:
            return list(self._posts)

    @property
    def accepted(self) -> list[AcceptedMessage]:
        """Return a copy of the messages answered 201 so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def answer_with(self, *kinds: Kind) -> None:
        """Queue answers for the next POSTs, one each, in order."""
        checked = [_check_kind(kind) for kind in kinds]
        with self._lock:
            self._queue.extend(checked)

    def set_default(self, kind: Kind) -> None:
        """Set the answer used once the queue is empty."""
        checked = _check_kind(kind)
        with self._lock:
            self._default = checked

    def _record(self, post: RecordedPost) -> Kind:
        """Keep a POST and return the answer it gets."""
        with self._lock:
            self._posts.append(post)
            return self._queue.pop(0) if self._queue else self._default

    def _accept(self, post: RecordedPost) -> AcceptedMessage:
        message = AcceptedMessage(
            sid="SM" + uuid.uuid4().hex,
            account_sid=post.account_sid,
            to=post.to,
            sender=post.sender,
            body=post.body,
            time=post.time,
        )
        with self._lock:
            self._messages.append(message)
        return message

    def _wait_for(self, event: threading.Event) -> None:
        """Wait for a hold to be released, the time limit, or :meth:`stop`."""
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while not event.wait(0.02):
            if self._stopping.is_set() or time.monotonic() >= deadline:
                return

    def _answer_post(self, post: RecordedPost) -> _Reply | None:
        """Decide the reply to a POST; None means drop the connection."""
        kind = self._record(post)
        if isinstance(kind, tuple):
            self._wait_for(kind[1])
            kind = "201" if kind[0] == "hold" else "drop"
        if kind == "drop":
            return None
        if kind in _ERROR_KINDS:
            status, code, text = _ERROR_KINDS[kind]
            return _Reply(status, _error_payload(status, code, text.format(to=post.to)))
        message = self._accept(post)
        return _Reply(201, _message_payload(message, listed=False))

    def _answer_list(self, account_sid: str, query: dict[str, str]) -> _Reply:
        """List kept messages of an account, newest first, as one page."""
        with self._lock:
            kept = [m for m in self._messages if m.account_sid == account_sid]
        found = [m for m in reversed(kept) if _matches(m, query)]
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        page_size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
        return _Reply(
            200,
            {
                "end": max(len(found) - 1, 0),
                "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
                "messages": [_message_payload(m, listed=True) for m in found],
                "next_page_uri": None,
                "page": 0,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": 0,
                "uri": f"{uri}?PageSize={page_size}&Page=0",
            },
        )


def _single_values(raw: str) -> dict[str, str]:
    """Decode a form or query string, keeping the first value of each field."""
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _not_found(path: str) -> _Reply:
    text = f"The requested resource {path} was not found"
    return _Reply(404, _error_payload(404, 20404, text))


class _TwilioHandler(QuietHandler):
    def __init__(self, standin: TwilioStandIn, *args: Any) -> None:
        self.standin = standin
        super().__init__(*args)

    def _account_sid(self) -> str | None:
        match = _MESSAGES_PATH.match(urlsplit(self.path).path)
        return match["sid"] if match else None

    def _read_form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return _single_values(self.rfile.read(length).decode())

    def _send_json(self, reply: _Reply) -> None:
        body = json.dumps(reply.payload).encode()
        self.write_reply(reply.status, [("Content-Type", "application/json")], body)

    def do_POST(self) -> None:
        """Record a send and answer it as programmed."""
        form = self._read_form()
        account_sid = self._account_sid()
        if account_sid is None:
            self._send_json(_not_found(self.path))
            return
        post = RecordedPost(
            account_sid=account_sid,
            to=form.get("To", ""),
            sender=form.get("From") or form.get("MessagingServiceSid", ""),
            body=form.get("Body", ""),
            auth_user=_basic_auth_user(self.headers.get("Authorization")),
            time=self.standin._clock(),
        )
        reply = self.standin._answer_post(post)
        if reply is None:
            self.close_connection = True
            return
        self._send_json(reply)

    def do_GET(self) -> None:
        """List the kept messages of an account, filtered like Twilio does."""
        account_sid = self._account_sid()
        if account_sid is None:
            self._send_json(_not_found(self.path))
            return
        query = _single_values(urlsplit(self.path).query)
        self._send_json(self.standin._answer_list(account_sid, query))
