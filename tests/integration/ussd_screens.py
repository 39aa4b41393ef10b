"""Reading USSD screens in tests: find an option's number by its label."""

from __future__ import annotations

import re

OPTION = re.compile(r"^(\d+)\. (.*)$")


def options(screen: str) -> dict[str, str]:
    """Map each option label on a CON screen to its number."""
    found = {}
    for line in screen.splitlines():
        match = OPTION.match(line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def number_of(screen: str, label_part: str) -> str:
    for label, number in options(screen).items():
        if label_part in label:
            return number
    raise AssertionError(f"no option containing {label_part!r} on screen:\n{screen}")


def first_option(screen: str) -> str:
    numbers = [n for n in options(screen).values() if n not in ("0", "00", "98")]
    assert numbers, f"no choices on screen:\n{screen}"
    return numbers[0]
