"""Which replies become WhatsApp quick-reply buttons or list pickers, and what they carry."""

from __future__ import annotations

import pytest

from bot.channels.whatsapp.interactive import (
    LIST_PICKER,
    QUICK_REPLY,
    decode_press_id,
    encode_press_id,
    plan_interactive,
    plan_outbox_reply,
)
from bot.engine.model import Option, Reply

BACK = Option("0", "Back")
HOME = Option("00", "Menu")
MORE = Option("98", "More")


def options(count: int, label: str = "Dr. Achieng") -> tuple[Option, ...]:
    return tuple(Option(str(i), f"{label} {i}") for i in range(1, count + 1))


def plan(reply: Reply, language: str = "en"):  # type: ignore[no-untyped-def]
    return plan_interactive(reply, conversation_id=7, screen_version=12, language=language)


def test_three_choices_are_quick_replies() -> None:
    reply = Reply(body="MyAfya menu", options=options(2, "Book"), navigation=(BACK,))

    drawn = plan(reply)

    assert drawn is not None
    assert drawn.content_type == QUICK_REPLY
    assert drawn.count == 3
    assert drawn.variables == {
        "1": "MyAfya menu",
        "2": "Book 1",
        "3": "7:12:1",
        "4": "Book 2",
        "5": "7:12:2",
        "6": "Back",
        "7": "7:12:0",
    }


def test_navigation_moves_to_body_for_buttons() -> None:
    reply = Reply(body="Confirm appointment", options=options(2, "Yes"), navigation=(BACK, HOME))

    drawn = plan(reply)

    assert drawn is not None
    assert drawn.content_type == QUICK_REPLY
    assert drawn.count == 2
    assert drawn.variables["1"] == "Confirm appointment\n\n0. Back\n00. Menu"


def test_up_to_ten_choices_are_a_list() -> None:
    reply = Reply(body="Choose a doctor:", options=options(7), navigation=(MORE, BACK, HOME))

    drawn = plan(reply, "sw")

    assert drawn is not None
    assert drawn.content_type == LIST_PICKER
    assert drawn.count == 10
    assert drawn.variables["1"] == "Choose a doctor:"
    assert drawn.variables["2"] == "Chagua"
    assert drawn.variables["3"] == "Dr. Achieng 1"
    assert drawn.variables["4"] == "7:12:1"
    assert drawn.variables["5"] == "au andika 1"
    assert drawn.variables["30"] == "Menu"
    assert drawn.variables["31"] == "7:12:00"
    assert drawn.variables["32"] == "au andika 00"


def test_list_with_navigation_in_body() -> None:
    reply = Reply(body="Choose a time:", options=options(9, "09:30"), navigation=(BACK, HOME))

    drawn = plan(reply)

    assert drawn is not None
    assert drawn.content_type == LIST_PICKER
    assert drawn.count == 9
    assert drawn.variables["1"] == "Choose a time:\n\n0. Back\n00. Menu"


def test_long_button_label_uses_a_list() -> None:
    reply = Reply(body="Welcome back", options=(Option("1", "Continue where I left"),))

    drawn = plan(reply)

    assert drawn is not None
    assert drawn.content_type == LIST_PICKER


def test_long_item_label_shown_as_description() -> None:
    doctors = (
        Option("1", "Dr. Test Kamau KES 1,000"),
        Option("2", "Dr. Test Njeri-Mwangi KES 2,500"),
    )
    reply = Reply(body="Choose a doctor:", options=doctors, navigation=(BACK, HOME))

    drawn = plan(reply)

    assert drawn is not None
    assert drawn.content_type == LIST_PICKER
    assert drawn.variables["3"] == "Dr. Test Kamau KES 1,000"
    assert drawn.variables["5"] == "or type 1"
    assert drawn.variables["6"] == "Dr. Test Njeri-Mwangi..."
    assert drawn.variables["8"] == "Dr. Test Njeri-Mwangi KES 2,500"


@pytest.mark.parametrize(
    ("case", "reply"),
    [
        ("ending reply", Reply(body="Booked!", options=options(2), end=True)),
        ("no options", Reply(body="Type your name:", navigation=(BACK,))),
        ("label over 72", Reply(body="Pick", options=(Option("1", "x" * 73),))),
        ("eleven options", Reply(body="Pick", options=options(11))),
        ("asks for contact", Reply(body="Share", options=options(1), request_contact="Share")),
        ("empty body", Reply(body="", options=options(2))),
        ("body over 1024", Reply(body="x" * 1025, options=options(2))),
    ],
)
def test_numbered_text_when_nothing_fits(case: str, reply: Reply) -> None:
    assert plan(reply) is None, case


def test_numbered_text_without_screen_version() -> None:
    reply = Reply(body="MyAfya menu", options=options(2))

    drawn = plan_interactive(reply, conversation_id=7, screen_version=None, language="en")

    assert drawn is None


def test_outbox_variables_plan() -> None:
    reply = Reply(body="MyAfya menu", options=options(2, "Book"))
    variables = {"reply": reply.to_json(), "screen_version": 3, "conversation_id": 9}

    drawn = plan_outbox_reply(variables, "en")

    assert drawn is not None
    assert drawn.variables["3"] == "9:3:1"
    assert plan_outbox_reply({"reminder": "x"}, "en") is None


def test_one_resource_per_shape_count_language() -> None:
    first = plan(Reply(body="A", options=options(2, "Yes")))
    second = plan(Reply(body="B", options=options(2, "No")))
    three = plan(Reply(body="A", options=options(3, "Yes")))
    swahili = plan(Reply(body="A", options=options(2, "Ndiyo")), "sw")

    assert first is not None
    assert second is not None
    assert three is not None
    assert swahili is not None
    assert first.content_key() == second.content_key()
    assert first.content_key() != three.content_key()
    assert first.content_key() != swahili.content_key()
    assert first.content_key().startswith("twilio/quick-reply:2:en:")


def test_definition_uses_variables_only() -> None:
    drawn = plan(Reply(body="Pick", options=options(4)))
    assert drawn is not None

    definition = drawn.definition()

    picker = definition["types"][LIST_PICKER]
    assert picker["body"] == "{{1}}"
    assert picker["button"] == "{{2}}"
    assert picker["items"][3] == {"item": "{{12}}", "id": "{{13}}", "description": "{{14}}"}
    assert set(definition["variables"]) == set(drawn.variables)
    assert definition["language"] == "en"


def test_press_id_round_trip() -> None:
    press = decode_press_id(encode_press_id(41, 7, "00"))

    assert press is not None
    assert (press.conversation_id, press.screen_version, press.key) == (41, 7, "00")


@pytest.mark.parametrize("value", ["", "1", "confirm:appt_0001", "1:2:abc", "1:2:3:4", "a:2:3"])
def test_press_id_rejects_foreign_ids(value: str) -> None:
    assert decode_press_id(value) is None


def test_press_id_rejects_bad_key() -> None:
    with pytest.raises(ValueError, match="invalid option key"):
        encode_press_id(1, 2, "book")
