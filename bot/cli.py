"""The command line: ``python -m bot serve | worker | demo | check | migrate``."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence

from dotenv import find_dotenv, load_dotenv

from bot import logs
from bot.config import Settings, load_settings
from bot.core import build_checker
from bot.errors import (
    AccessDenied,
    AwsError,
    ConfigError,
    CpuBotError,
    InvalidInput,
    NoData,
    NotAllowed,
    StoreUnavailable,
)
from bot.models import Requester
from bot.schemas import CheckOut
from bot.store import migrate, migrate_if_local
from bot.text import summary

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_NO_DATA, EXIT_REFUSED, EXIT_UNAVAILABLE = (
    0,
    1,
    2,
    3,
    4,
    5,
)
EXIT_OF: list[tuple[type[CpuBotError], int]] = [
    (InvalidInput, EXIT_INPUT),
    (ConfigError, EXIT_INPUT),
    (NoData, EXIT_NO_DATA),
    (NotAllowed, EXIT_REFUSED),
    (AccessDenied, EXIT_REFUSED),
    (AwsError, EXIT_UNAVAILABLE),
    (StoreUnavailable, EXIT_UNAVAILABLE),
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    load_dotenv(find_dotenv(usecwd=True))
    arguments = _parser().parse_args(argv)
    try:
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        command: Callable[[argparse.Namespace, Settings], int] = arguments.run
        return command(arguments, settings)
    except CpuBotError as exc:
        print(f"cpubot: {exc}", file=sys.stderr)
        return next((code for kind, code in EXIT_OF if isinstance(exc, kind)), 1)
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="How hot is this EC2 instance?"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web process (API and Slack)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run Slack over Socket Mode")
    worker.set_defaults(run=_worker)

    demo = commands.add_parser("demo", help="run everything locally with no accounts")
    demo.add_argument("--port", type=int, default=None, help="web port (default PORT)")
    demo.set_defaults(run=_demo)

    check = commands.add_parser("check", help="check one instance from the terminal")
    check.add_argument("account", help="12-digit AWS account id")
    check.add_argument("role", help="IAM role name to assume in that account")
    check.add_argument("instance", help="EC2 instance id, i-...")
    check.add_argument("phone", nargs="?", help="E.164 number to text when hot")
    check.add_argument("--region", help="AWS region (default AWS_REGION)")
    check.add_argument("--threshold", help="alert above this percentage")
    check.add_argument("--json", action="store_true", help="print the API's JSON")
    check.set_defaults(run=_check)

    upgrade = commands.add_parser(
        "migrate", help="bring the database schema up to date"
    )
    upgrade.set_defaults(run=_migrate)
    return parser


def _serve(_arguments: argparse.Namespace, settings: Settings) -> int:
    from bot.web import serve

    serve(settings)
    return EXIT_OK


def _worker(_arguments: argparse.Namespace, settings: Settings) -> int:
    from bot.worker import run_worker

    return run_worker(settings)


def _demo(arguments: argparse.Namespace, settings: Settings) -> int:
    from bot.demo import run_demo

    run_demo(settings, port=arguments.port)
    return EXIT_OK


def _migrate(_arguments: argparse.Namespace, settings: Settings) -> int:
    revision = migrate(settings.database_url)
    print(f"Database schema is at revision {revision}.")
    return EXIT_OK


def _check(arguments: argparse.Namespace, settings: Settings) -> int:
    checker = build_checker(settings, with_sms=arguments.phone is not None)
    request = checker.request(
        arguments.account,
        arguments.role,
        arguments.instance,
        arguments.phone,
        arguments.region,
        arguments.threshold,
    )
    migrate_if_local(settings.database_url)

    result = checker.check(request, Requester("cli", getpass.getuser()))

    if arguments.json:
        print(
            json.dumps(CheckOut.from_result(result).model_dump(mode="json"), indent=2)
        )
    else:
        print(summary(result))
    return EXIT_UNAVAILABLE if result.alert.provider_unavailable else EXIT_OK
