"""Phone numbers: every stored number is E.164, whatever shape the patient typed."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

from core.errors import InvalidPhoneNumber

_CHANNEL_PREFIXES = ("whatsapp:", "tel:")

# Any character outside a written phone number: digits, +, spaces, hyphens, dots, parentheses.
# phonenumbers drops trailing text and reads letters as keypad digits, so without this check
# "+254700000105x" would be read as +254700000105.
_NOT_IN_NUMBER = re.compile(r"[^0-9+ ().-]")
_DIGIT = re.compile(r"[0-9]")

_PARSE_PROBLEMS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "the country code is unknown",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it is not a number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "it is too short",
    phonenumbers.NumberParseException.TOO_LONG: "it is too long",
}
_LENGTH_PROBLEMS = {
    phonenumbers.ValidationResult.TOO_SHORT: "it is too short",
    phonenumbers.ValidationResult.TOO_LONG: "it is too long",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "the country code is unknown",
}


# Patients dial again and again from the same numbers, and parsing costs tens of microseconds.
@lru_cache(maxsize=8192)
def normalize_phone(raw: str, region: str = "KE") -> str:
    """Return `raw` in E.164 form, e.g. "0700 000 105" → "+254700000105".

    Numbers without a country code are read as numbers of `region`. A `whatsapp:` or `tel:`
    prefix, as Twilio and URIs carry it, is dropped. Raises InvalidPhoneNumber for anything
    that phonenumbers does not accept as a valid number, and for any character other than
    digits, spaces and + - . ( ), such as a letter or trailing text.
    """
    value = raw.strip()
    lowered = value.lower()
    for prefix in _CHANNEL_PREFIXES:
        if lowered.startswith(prefix):
            value = value[len(prefix) :].strip()
            break
    if not value:
        raise InvalidPhoneNumber("the phone number is missing", value=raw)

    # Text without a digit is left to phonenumbers, which reports "it is not a number".
    stray_character = _NOT_IN_NUMBER.search(value)
    if stray_character is not None and _DIGIT.search(value) is not None:
        raise InvalidPhoneNumber(
            f"{value} is not a valid phone number: it contains {stray_character.group()!r},"
            " which is not part of a phone number",
            value=raw,
        )

    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        parse_problem = _PARSE_PROBLEMS.get(exc.error_type, "it could not be read")
        raise InvalidPhoneNumber(
            f"{value} is not a valid phone number: {parse_problem}", value=raw
        ) from None

    if not phonenumbers.is_valid_number(parsed):
        # Patients write from mobiles, so a wrong length for that country's mobile numbers is
        # the likeliest problem. The general check passes "0700 000 10" as a landline length.
        reason = phonenumbers.is_possible_number_for_type_with_reason(
            parsed, phonenumbers.PhoneNumberType.MOBILE
        )
        problem = _LENGTH_PROBLEMS.get(reason)
        detail = f"{value} is not a valid phone number"
        if problem is not None:
            detail += f": {problem}"
        raise InvalidPhoneNumber(detail, value=raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def to_daraja(e164: str) -> str:
    """Return a Kenyan E.164 number in the form M-Pesa Daraja expects: "2547…" with no "+".

    Raises InvalidPhoneNumber when the value is not a valid Kenyan number in E.164 form.
    """
    if not e164.startswith("+"):
        raise InvalidPhoneNumber(f"{e164} is not in E.164 form (+254…)", value=e164)
    normalized = normalize_phone(e164)
    if not normalized.startswith("+254"):
        raise InvalidPhoneNumber(
            f"{e164} is not a Kenyan number; M-Pesa needs a +254 number", value=e164
        )
    return normalized[1:]
