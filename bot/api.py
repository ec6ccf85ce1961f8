"""The HTTP adapter: the original ``/check_cpu`` route and health probes, on FastAPI.

Checks run in worker threads, so the event loop keeps serving while they wait on
AWS and Twilio. Errors from the core are translated into statuses here, once.
"""

import hashlib
import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool

from bot import validation
from bot.config import Settings
from bot.core import Checker, build_checker
from bot.errors import (
    AccessDenied,
    AwsError,
    AwsUnavailable,
    CpuBotError,
    InvalidInput,
    NoData,
    NotAllowed,
    NotAuthenticated,
    StoreUnavailable,
)
from bot.models import Requester
from bot.schemas import CheckOut, CheckRecordOut, ErrorOut
from bot.slack.app import build_bolt_app

log = logging.getLogger(__name__)

WORKER_THREADS = 100
MAX_HISTORY = 200
SLACK_EVENTS_PATH = "/slack/events"
STATUS_OF: list[tuple[type[CpuBotError], int]] = [
    (InvalidInput, 400),
    (NotAuthenticated, 401),
    (NotAllowed, 403),
    (AccessDenied, 403),
    (NoData, 404),
    (AwsUnavailable, 503),
    (StoreUnavailable, 503),
    (AwsError, 502),
]
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "A malformed field, named in the detail."},
    401: {"model": ErrorOut, "description": "No or wrong bearer token."},
    403: {"model": ErrorOut, "description": "Account not allowed, or AWS refused."},
    404: {"model": ErrorOut, "description": "CloudWatch has no CPU data."},
    500: {"model": ErrorOut, "description": "Unexpected; a reference for the logs."},
    502: {"model": ErrorOut, "description": "AWS answered with another error."},
    503: {"model": ErrorOut, "description": "AWS throttled or timed out; retry."},
}

bearer = HTTPBearer(auto_error=False, description="A token from API_TOKENS.")
checks = APIRouter(tags=["checks"])
probes = APIRouter(tags=["probes"])
slack_routes = APIRouter(tags=["slack"])


def create_app(settings: Settings, checker: Checker | None = None) -> FastAPI:
    """Return the web application, building the core from settings unless given."""
    core = checker or build_checker(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        await run_in_threadpool(core.settle_pending)
        yield
        core.store.close()

    app = FastAPI(
        title="cpubot",
        summary="How hot is this EC2 instance? One SMS when it runs hot.",
        version="1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.checker = core
    app.state.slack = build_bolt_app(settings, core) if settings.slack_enabled else None
    _add_error_handlers(app)
    for router in (checks, probes, slack_routes):
        app.include_router(router)
    return app


def _core(request: Request) -> Checker:
    """Return the app's checker (a FastAPI dependency)."""
    checker: Checker = request.app.state.checker
    return checker


def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Requester:
    """Return who is calling, by the name of their bearer token (a dependency)."""
    return Requester("api", token_name(request.app.state.settings, credentials))


Core = Annotated[Checker, Depends(_core)]
Caller = Annotated[Requester, Depends(_caller)]


@checks.get(
    "/check_cpu/{account_id}/{role_name}/{instance_id}/{phone_number}",
    response_model=CheckOut,
    responses=ERROR_RESPONSES,
)
async def check_cpu(
    account_id: str,
    role_name: str,
    instance_id: str,
    phone_number: str,
    requester: Caller,
    core: Core,
    region: str | None = None,
    threshold: str | None = None,
) -> CheckOut:
    """Check an instance's CPU and text the number once when it runs hot."""
    request = core.request(
        account_id, role_name, instance_id, phone_number, region, threshold
    )
    result = await run_in_threadpool(core.check, request, requester)
    return CheckOut.from_result(result)


@checks.get(
    "/checks",
    response_model=list[CheckRecordOut],
    responses={code: ERROR_RESPONSES[code] for code in (400, 401, 503)},
)
async def list_checks(
    _requester: Caller,
    core: Core,
    instance_id: str | None = None,
    limit: str = "20",
) -> list[CheckRecordOut]:
    """List the latest checks, newest first, of one instance or of all."""
    instance = None if instance_id is None else validation.instance_id(instance_id)
    records = await run_in_threadpool(
        core.history, instance, validation.limit(limit, MAX_HISTORY)
    )
    return [CheckRecordOut.model_validate(record.__dict__) for record in records]


@probes.get("/healthz")
async def healthz() -> dict[str, str]:
    """Say the process is alive."""
    return {"status": "ok"}


@probes.get("/readyz", responses={503: {"model": ErrorOut}})
async def readyz(core: Core) -> dict[str, str]:
    """Say the process can serve checks: its database answers."""
    await run_in_threadpool(core.ping)
    return {"status": "ready"}


@slack_routes.post(
    SLACK_EVENTS_PATH,
    responses={401: {"description": "Not signed by Slack."}, 404: {"model": ErrorOut}},
)
async def slack_events(request: Request) -> Response:
    """Receive Slack's signed commands and interactions."""
    slack: App | None = request.app.state.slack
    if slack is None:
        return JSONResponse(
            {
                "detail": "Slack is not configured here: set SLACK_BOT_TOKEN and "
                "SLACK_SIGNING_SECRET to enable it."
            },
            status_code=404,
        )
    bolt_request = to_bolt_request(request, await request.body())
    bolt_response = await run_in_threadpool(slack.dispatch, bolt_request)
    return to_starlette_response(bolt_response)


def token_name(
    settings: Settings, credentials: HTTPAuthorizationCredentials | None
) -> str:
    """Return the name of the presented token, comparing in constant time."""
    if not settings.api_tokens:
        raise NotAuthenticated(
            "No API tokens are configured: set API_TOKENS to a comma-separated list "
            "of tokens (at least 16 characters each) and send one as "
            "'Authorization: Bearer <token>'."
        )
    if credentials is None:
        raise NotAuthenticated("Send a token as 'Authorization: Bearer <token>'.")

    presented = _digest(credentials.credentials)
    found = None
    for token in settings.api_tokens:
        if hmac.compare_digest(presented, _digest(token.secret)):
            found = token.name
    if found is None:
        raise NotAuthenticated("The bearer token is not valid.")
    return found


def _digest(token: str) -> bytes:
    """Hash a token so comparisons take the same time whatever its length."""
    return hashlib.sha256(token.encode()).digest()


def _add_error_handlers(app: FastAPI) -> None:
    async def known(_request: Request, exc: Exception) -> JSONResponse:
        status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
        headers = {}
        if isinstance(exc, AwsUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, StoreUnavailable):
            headers["Retry-After"] = "5"
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    async def malformed(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - typed narrowing
        fields = ", ".join(str(error["loc"][-1]) for error in exc.errors())
        return JSONResponse(
            {"detail": f"The request is malformed: check {fields}."}, status_code=400
        )

    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("unexpected error ref=%s", ref, exc_info=exc)
        return JSONResponse(
            {"detail": f"Error retrieving CPU usage: internal error (ref {ref})"},
            status_code=500,
        )

    for kind, _status in STATUS_OF:
        app.add_exception_handler(kind, known)
    app.add_exception_handler(RequestValidationError, malformed)
    app.add_exception_handler(Exception, unexpected)
