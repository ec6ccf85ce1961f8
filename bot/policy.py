"""Who may be texted: countries, numbers, and kinds of line that can take an SMS."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType

from bot.config import Settings
from bot.logs import mask_phone

REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.FIXED_LINE: "a landline, which cannot take an SMS",
    PhoneNumberType.PAGER: "a pager",
    PhoneNumberType.UAN: "a universal access number",
    PhoneNumberType.VOICEMAIL: "a voicemail access number",
    PhoneNumberType.UNKNOWN: "a number of unknown type",
}


def recipient_problem(number: str, settings: Settings) -> str | None:
    """Return why ``number`` may not be texted, or None when it may."""
    parsed = phonenumbers.parse(number, None)
    shown = mask_phone(number)

    kind = REFUSED_TYPES.get(phonenumbers.number_type(parsed))
    if kind is not None:
        return f"{shown} is {kind}."

    country = phonenumbers.region_code_for_number(parsed)
    allowed_countries = settings.sms_allowed_countries
    if allowed_countries and country not in allowed_countries:
        listed = ", ".join(sorted(allowed_countries))
        return (
            f"{shown} is in {country}, and SMS_ALLOWED_COUNTRIES allows only {listed}."
        )

    allowed_numbers = settings.sms_allowed_numbers
    if allowed_numbers and number not in allowed_numbers:
        return f"{shown} is not in SMS_ALLOWED_NUMBERS."
    return None
