"""Parse the text of ``/cpu`` into what the caller asked for."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.errors import InvalidInput

OPTIONS = ("region", "threshold")
SLACK_LINK = re.compile(r"^<(?:tel:)?([^|>]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True)
class Help:
    """The caller asked how to use the command."""


@dataclass(frozen=True)
class History:
    """The caller asked for the latest checks of an instance."""

    instance: str


@dataclass(frozen=True)
class Check:
    """The caller asked for a check; fields are raw until the core validates them."""

    account: str
    role: str
    instance: str
    phone: str | None = None
    region: str | None = None
    threshold: str | None = None


Command = Help | History | Check


def parse(text: str) -> Command:
    """Split ``ACCOUNT ROLE INSTANCE [PHONE] [region=R] [threshold=T]``, or the rest."""
    words = [_unlink(word) for word in text.split()]
    if not words or words == ["help"]:
        return Help()
    if words[0] == "history":
        if len(words) != 2:
            raise InvalidInput(
                "text", "History needs one instance id: /cpu history INSTANCE."
            )
        return History(words[1])

    positional = [word for word in words if "=" not in word]
    options = _options([word for word in words if "=" in word])

    if len(positional) < 3:
        raise InvalidInput(
            "text",
            "Missing words: the command needs at least an account id, a role name "
            "and an instance id.",
        )
    if len(positional) > 4:
        extra = " ".join(positional[4:])
        raise InvalidInput("text", f"Too many words: {extra!r} is not understood.")

    account, role, instance, *phone = positional
    return Check(
        account,
        role,
        instance,
        phone=phone[0] if phone else None,
        region=options.get("region"),
        threshold=options.get("threshold"),
    )


def _options(words: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in words:
        name, _, value = word.partition("=")
        if name not in OPTIONS:
            raise InvalidInput(
                "text",
                f"Unknown option {name + '='!r}: the options are region= and "
                "threshold=.",
            )
        if name in options:
            raise InvalidInput("text", f"The option {name}= is given twice.")
        options[name] = value
    return options


def _unlink(word: str) -> str:
    """Undo Slack's link formatting, such as ``<tel:+1415...|+1415...>``."""
    match = SLACK_LINK.match(word)
    return match[1] if match else word
