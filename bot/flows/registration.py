"""First contact: language, name and consent to data processing."""

from __future__ import annotations

import enum

from bot.engine.commands import ChangeLanguage, RegisterPatient
from bot.engine.flow import Finish, Flow, FlowRef, Go, Home, Outcome, Stay, Step, StepContext
from bot.engine.gsm7 import to_gsm7
from bot.engine.model import Choice, Screen, Text

NAME_MIN, NAME_MAX = 2, 60
NAME_PUNCTUATION = frozenset(" '-.")
# Phone keyboards type ’ (U+2019), and some ‘ (U+2018) or ʼ (U+02BC), in names such as
# Ng’ang’a. GSM-7 has only the ASCII apostrophe, so names are stored with that one.
APOSTROPHES = str.maketrans(dict.fromkeys("\u2018\u2019\u02bc", "'"))


class State(enum.Enum):
    LANGUAGE = "LANGUAGE"
    NAME = "NAME"
    CONSENT = "CONSENT"


async def render_language(context: StepContext) -> Screen:
    return Screen(
        body=(Text("registration.welcome"),),
        choices=(Choice("en", "English"), Choice("sw", "Kiswahili")),
    )


async def handle_language(context: StepContext, value: str) -> Outcome:
    context.language = value
    # Marks the language as chosen, so going home (00) returns to the name question in it.
    await context.commands.execute(ChangeLanguage(value))
    return Go(State.NAME)


async def render_name(context: StepContext) -> Screen:
    return Screen(body=(Text("registration.ask_name"),), accepts_text=True)


def clean_name(raw: str) -> str | None:
    """Return the name with single spaces and ASCII apostrophes, or None when it is not a
    plausible name."""
    name = " ".join(raw.translate(APOSTROPHES).split())
    if not NAME_MIN <= len(name) <= NAME_MAX:
        return None
    if not all(char.isalpha() or char in NAME_PUNCTUATION for char in name):
        return None
    if not any(char.isalpha() for char in name):
        return None
    if "?" in to_gsm7(name):
        # Letters a basic phone cannot show (Cyrillic, Chinese, emoji) would come back as "?".
        return None
    return name


async def handle_name(context: StepContext, value: str) -> Outcome:
    name = clean_name(value)
    if name is None:
        return Stay(Text("registration.invalid_name", minimum=NAME_MIN, maximum=NAME_MAX))
    context.data["name"] = name
    return Go(State.CONSENT)


async def render_consent(context: StepContext) -> Screen:
    return Screen(
        body=(Text("registration.privacy"),),
        choices=(
            Choice("agree", Text("registration.agree")),
            Choice("decline", Text("registration.decline")),
        ),
    )


async def handle_consent(context: StepContext, value: str) -> Outcome:
    if value == "decline":
        return Finish(Text("registration.declined"))
    name = str(context.data["name"])
    await context.commands.execute(RegisterPatient(name=name, language=context.language))
    return Home(Text("registration.done", name=name))


FLOW = Flow(
    name="registration",
    states=State,
    initial=State.LANGUAGE,
    steps={
        State.LANGUAGE: Step(render_language, handle_language),
        State.NAME: Step(render_name, handle_name),
        State.CONSENT: Step(render_consent, handle_consent, commits=True),
    },
    transitions={
        State.LANGUAGE: frozenset({State.NAME}),
        State.NAME: frozenset({State.CONSENT}),
        State.CONSENT: frozenset({FlowRef("home")}),
    },
)
