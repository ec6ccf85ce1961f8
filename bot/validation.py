"""Rules for every request field, checked before any call to AWS.

Each rule raises :class:`InvalidInput` with a sentence naming the field and what it
should hold; the same sentences serve the API, Slack and the command line.
"""

from __future__ import annotations

import re

import phonenumbers

from bot.errors import InvalidInput
from bot.models import CheckRequest

ACCOUNT_PATTERN = re.compile(r"^\d{12}$")
ROLE_PATTERN = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
INSTANCE_PATTERN = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def account_id(value: str) -> str:
    """Return the account id if it is 12 digits."""
    if not ACCOUNT_PATTERN.match(value):
        raise InvalidInput(
            "account_id",
            f"The account id {_quoted(value)} is not valid: it must be 12 digits.",
        )
    return value


def role_name(value: str) -> str:
    """Return the role name if IAM would accept it."""
    if not ROLE_PATTERN.match(value):
        raise InvalidInput(
            "role_name",
            f"The role name {_quoted(value)} is not valid: it must be 1 to 64 "
            "letters, digits or the characters +=,.@_-.",
        )
    return value


def instance_id(value: str) -> str:
    """Return the instance id if it is ``i-`` followed by 8 or 17 hex digits."""
    lowered = value.lower()
    if not INSTANCE_PATTERN.match(lowered):
        raise InvalidInput(
            "instance_id",
            f"The instance id {_quoted(value)} is not valid: it must be i- "
            "followed by 8 or 17 hexadecimal digits.",
        )
    return lowered


def phone_number(value: str) -> str:
    """Return the number in E.164 form if ``phonenumbers`` finds it valid."""
    problem = (
        f"The phone number {_quoted(value)} is not valid: it must be in "
        "international E.164 form, such as +14155550100."
    )
    if not value.startswith("+"):
        raise InvalidInput("phone_number", problem)

    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise InvalidInput("phone_number", problem) from None

    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput("phone_number", problem)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def region(value: str) -> str:
    """Return the region if it has an AWS region name's shape."""
    if not REGION_PATTERN.match(value):
        raise InvalidInput(
            "region",
            f"The region {_quoted(value)} is not valid: it must be an AWS region "
            "name such as us-east-1.",
        )
    return value


def threshold(value: str | float) -> float:
    """Return the threshold if it is a number from 0 to 100."""
    problem = (
        f"The threshold {_quoted(str(value))} is not valid: it must be a "
        "percentage from 0 to 100."
    )
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput("threshold", problem) from None

    if not 0 <= number <= 100:
        raise InvalidInput("threshold", problem)
    return number


def limit(value: str | int, most: int) -> int:
    """Return a count of rows to list, from 1 to ``most``."""
    text = str(value)
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise InvalidInput(
            "limit",
            f"The limit {_quoted(text)} is not valid: it must be a whole number "
            f"from 1 to {most}.",
        )
    return int(text)


def check_request(
    *,
    account: str,
    role: str,
    instance: str,
    phone: str | None,
    region_name: str,
    threshold_value: str | float,
) -> CheckRequest:
    """Validate every field of a check, in the order a caller wrote them."""
    return CheckRequest(
        account_id=account_id(account),
        role_name=role_name(role),
        instance_id=instance_id(instance),
        phone_number=None if phone is None else phone_number(phone),
        region=region(region_name),
        threshold=threshold(threshold_value),
    )


def _quoted(value: str) -> str:
    """Quote a user's value for a message, cut short so a sentence stays short."""
    shown = value if len(value) <= 40 else value[:37] + "..."
    return repr(shown)
