"""The simulator page in headless Chromium against the real service in sandbox mode.

The booking tests register a new phone number, book the first free slot over USSD and check the
confirmation on the phone's screen and in the SMS inbox. Expected texts come from the gettext
catalogues, so the checks follow wording changes but still tell the two languages apart. Other
tests check the requests the page sends for the gateway and how it shows failed requests. The
chat pane tests post one WhatsApp exchange and one Telegram exchange, with a button press and a
shared contact, through the real webhooks.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from core.i18n import catalogue
from myafya.settings import Settings
from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.browser

REFERENCE = re.compile(r"\bMA-[A-Z0-9]{6}\b")
SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "simulator.png"
CHATS_SCREENSHOT = SCREENSHOT.with_name("simulator-chats.png")
STEP_TIMEOUT_MS = 10_000
INBOX_TIMEOUT_MS = 10_000
PATIENT_NAME = "Test Patient"
# The server fixture sets no service code, so the server uses the settings default.
SERVICE_CODE = Settings.model_fields["ussd_service_code"].default
STEP_URL = re.compile(r"/webhooks/africastalking/ussd$")
EVENTS_URL = re.compile(r"/webhooks/africastalking/ussd/events$")


def fixed_text(language: str, message_id: str) -> str:
    """Return the first literal part of a catalogue message, without its placeholders."""
    template = catalogue(language)[message_id]
    for literal, _field, _spec, _conversion in string.Formatter().parse(template):
        # Whitespace differs between the catalogue and the rendered screen, so compare words.
        words = " ".join(literal.split())
        if words.strip(" :.,") != "":
            return words
    raise AssertionError(f"message {message_id!r} in {language!r} has no literal text")


def wait_for_screen(page: Page, state: str, hops: int) -> str:
    """Wait until reply number `hops` is on the screen in `state`, then return the screen text."""
    screen = page.locator("#screen")
    expect(screen).to_have_attribute("data-hops", str(hops), timeout=STEP_TIMEOUT_MS)
    expect(screen).not_to_have_attribute("data-state", "busy", timeout=STEP_TIMEOUT_MS)
    expect(screen).to_have_attribute("data-state", state)
    return screen.inner_text()


def option_key(screen_text: str, label: str) -> str:
    """Return the number the screen gives the option `label`, such as "2" for "2. Kiswahili"."""
    for line in screen_text.splitlines():
        match = re.fullmatch(r"\s*(\d+)\.\s+(.*?)\s*", line)
        if match and match.group(2) == label:
            return match.group(1)
    raise AssertionError(f"no option {label!r} on the screen:\n{screen_text}")


def answer(page: Page, text: str) -> None:
    page.locator("#answer").fill(text)
    page.locator("#send").click()


class UssdSession:
    """Drives the simulator through one dialled session and checks every screen."""

    def __init__(self, page: Page, language: str) -> None:
        self.page = page
        self.language = language
        self.hops = 0

    def expect_screen(self, message_id: str, *, state: str = "waiting") -> str:
        self.hops += 1
        text = wait_for_screen(self.page, state, self.hops)
        expected = fixed_text(self.language, message_id)
        assert expected in " ".join(text.split()), (
            f"step {self.hops}: expected {message_id} ({expected!r}) on the screen:\n{text}"
        )
        return text

    def dial(self) -> str:
        self.page.locator("#dial").click()
        self.hops += 1
        return wait_for_screen(self.page, "waiting", self.hops)

    def choose(self, screen_text: str, label: str) -> None:
        answer(self.page, option_key(screen_text, label))

    def choose_first(self) -> None:
        answer(self.page, "1")


def record_page_errors(page: Page) -> list[str]:
    """Collect console errors and uncaught exceptions, such as a blocked asset or a script bug."""
    errors: list[str] = []

    def record_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", record_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def book_first_free_slot(page: Page, server: RunningServer, phone: str, language: str) -> str:
    """Register `phone` in `language`, book the first free slot and return the END screen text."""
    page.goto(f"{server.base_url}/simulator")
    page.locator("#phone-number").fill(phone)
    session = UssdSession(page, language)

    welcome = session.dial()
    language_label = {"en": "English", "sw": "Kiswahili"}[language]
    session.choose(welcome, language_label)

    session.expect_screen("registration.ask_name")
    answer(page, PATIENT_NAME)

    privacy = session.expect_screen("registration.privacy")
    session.choose(privacy, catalogue(language)["registration.agree"])

    home = session.expect_screen("home.title")
    session.choose(home, catalogue(language)["home.book"])

    session.expect_screen("booking.choose_specialty")
    session.choose_first()
    session.expect_screen("booking.choose_doctor")
    session.choose_first()
    session.expect_screen("booking.choose_day")
    session.choose_first()
    session.expect_screen("booking.choose_time")
    session.choose_first()

    confirm = session.expect_screen("booking.confirm")
    session.choose(confirm, catalogue(language)["booking.confirm_yes"])

    return session.expect_screen("booking.booked", state="ended")


def inbox_text_with(page: Page, reference: str) -> str:
    """Wait until the SMS inbox lists a message containing `reference`, then return its text."""
    message = page.locator("#inbox .message-text", has_text=reference)
    expect(message).to_have_count(1, timeout=INBOX_TIMEOUT_MS)
    return message.inner_text()


def test_simulator_books_in_english(browser_page: Page, server: RunningServer) -> None:
    page = browser_page
    page_errors = record_page_errors(page)
    phone = "+254700000011"

    end_screen = book_first_free_slot(page, server, phone, "en")

    reference_match = REFERENCE.search(end_screen)
    assert reference_match is not None, f"no MA-XXXXXX reference on the END screen:\n{end_screen}"
    reference = reference_match.group()
    assert fixed_text("en", "booking.booked") in " ".join(end_screen.split())

    sms = inbox_text_with(page, reference)
    assert fixed_text("en", "sms.booking_confirmed") in sms
    expect(page.locator("#session-info")).to_contain_text("notification sent")
    expect(page.locator("#dial")).to_be_enabled()
    assert page_errors == []

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_simulator_books_in_kiswahili(browser_page: Page, server: RunningServer) -> None:
    page = browser_page
    page_errors = record_page_errors(page)
    phone = "+254700000012"

    end_screen = book_first_free_slot(page, server, phone, "sw")

    reference_match = REFERENCE.search(end_screen)
    assert reference_match is not None, f"no MA-XXXXXX reference on the END screen:\n{end_screen}"
    reference = reference_match.group()
    assert "Miadi imewekwa!" in end_screen
    assert fixed_text("sw", "booking.confirmation_follows") in " ".join(end_screen.split())

    sms = inbox_text_with(page, reference)
    assert "MyAfya: miadi yako na" in sms
    assert fixed_text("sw", "sms.booking_confirmed") in sms
    assert page_errors == []


def test_simulator_cancel_notifies_incomplete(browser_page: Page, server: RunningServer) -> None:
    page = browser_page
    phone = "+254700000013"
    page.goto(f"{server.base_url}/simulator")
    page.locator("#phone-number").fill(phone)

    with page.expect_request(STEP_URL) as first_step:
        page.locator("#dial").click()
    welcome = wait_for_screen(page, "waiting", 1)
    first = parse_qs(first_step.value.post_data or "", keep_blank_values=True)
    assert first_step.value.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert re.fullmatch(r"ATUid_[0-9a-f]{32}", first["sessionId"][0])
    assert first["serviceCode"] == [SERVICE_CODE]
    assert first["phoneNumber"] == [phone]
    assert first["networkCode"] == ["99999"]
    assert first["text"] == [""]

    # The dial pad types into the input field, as a handset's keys would.
    english_key = option_key(welcome, "English")
    page.locator(f'#dial-pad button[data-key="{english_key}"]').click()
    with page.expect_request(STEP_URL) as second_step:
        page.locator("#send").click()
    name_prompt = wait_for_screen(page, "waiting", 2)
    second = parse_qs(second_step.value.post_data or "", keep_blank_values=True)
    assert second["sessionId"] == first["sessionId"]
    assert second["text"] == [english_key]

    with page.expect_request(EVENTS_URL) as event:
        page.locator("#cancel").click()
    expect(page.locator("#screen")).to_have_attribute("data-state", "cancelled")
    expect(page.locator("#session-info")).to_contain_text("notification sent")
    notification = parse_qs(event.value.post_data or "", keep_blank_values=True)
    assert notification["sessionId"] == first["sessionId"]
    assert notification["serviceCode"] == [SERVICE_CODE]
    assert notification["phoneNumber"] == [phone]
    assert notification["networkCode"] == ["99999"]
    assert notification["status"] == ["Incomplete"]
    assert notification["input"] == [english_key]
    assert notification["lastAppResponse"] == ["CON " + name_prompt]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", notification["date"][0])
    assert notification["cost"] == ["0.0"]
    assert int(notification["durationInMillis"][0]) >= 0
    assert notification["hopsCount"] == ["2"]
    assert notification["errorMessage"] == [""]
    expect(page.locator("#dial")).to_be_enabled()
    expect(page.locator("#send")).to_be_disabled()


def test_simulator_shows_errors_on_screen(browser_page: Page, server: RunningServer) -> None:
    page = browser_page
    page.goto(f"{server.base_url}/simulator")
    screen = page.locator("#screen")

    # The webhook rejects a malformed phone number with 400 and a plain-text reason.
    page.locator("#phone-number").fill("+2547")
    page.locator("#dial").click()
    expect(screen).to_have_attribute("data-state", "error", timeout=STEP_TIMEOUT_MS)
    expect(screen).to_contain_text("HTTP 400")
    expect(screen).to_contain_text("phoneNumber")
    expect(page.locator("#dial")).to_be_enabled()

    # A request that never reaches the server.
    page.route(STEP_URL, lambda route: route.abort())
    page.locator("#phone-number").fill("+254700000014")
    page.locator("#dial").click()
    expect(screen).to_have_attribute("data-state", "error", timeout=STEP_TIMEOUT_MS)
    expect(screen).to_contain_text("network error")


WHATSAPP_URL = re.compile(r"/webhooks/twilio/whatsapp$")
TELEGRAM_URL = re.compile(r"/webhooks/telegram$")
TELEGRAM_WEBHOOK_REPLY_URL = re.compile(r"/sandbox/telegram/webhook-reply$")


def chat_bubble(page: Page, pane: str, message_id: str, language: str = "en"):
    """Return the locator of the service's bubbles in `pane` that show `message_id`."""
    text = fixed_text(language, message_id)
    return page.locator(f"#{pane}-log .chat-bubble[data-from='service']", has_text=text)


def test_whatsapp_pane_exchange(browser_page: Page, server: RunningServer) -> None:
    page = browser_page
    page_errors = record_page_errors(page)
    page.goto(f"{server.base_url}/simulator")
    page.locator("#phone-number").fill("+254700000015")
    expect(page.locator("#whatsapp-send")).to_be_enabled(timeout=STEP_TIMEOUT_MS)

    with page.expect_request(WHATSAPP_URL) as first:
        page.locator("#whatsapp-text").fill("Hello")
        page.locator("#whatsapp-send").click()
    form = parse_qs(first.value.post_data or "")
    assert first.value.headers["x-twilio-signature"]
    assert form["From"] == ["whatsapp:+254700000015"]
    assert form["Body"] == ["Hello"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"][0])
    welcome = chat_bubble(page, "whatsapp", "registration.welcome")
    expect(welcome).to_have_count(1, timeout=INBOX_TIMEOUT_MS)

    page.locator("#whatsapp-text").fill("1")
    page.locator("#whatsapp-send").click()
    expect(chat_bubble(page, "whatsapp", "registration.ask_name")).to_have_count(
        1, timeout=INBOX_TIMEOUT_MS
    )
    patient = page.locator("#whatsapp-log .chat-bubble[data-from='patient']")
    expect(patient).to_have_count(2)
    expect(page.locator("#whatsapp-log .chat-bubble[data-failed='true']")).to_have_count(0)
    assert page_errors == []


def test_whatsapp_pane_button_press(browser_page: Page, server: RunningServer) -> None:
    page = browser_page
    page_errors = record_page_errors(page)
    page.goto(f"{server.base_url}/simulator")
    page.locator("#phone-number").fill("+254700000017")
    expect(page.locator("#whatsapp-send")).to_be_enabled(timeout=STEP_TIMEOUT_MS)
    page.locator("#whatsapp-text").fill("Hello")
    page.locator("#whatsapp-send").click()
    welcome = chat_bubble(page, "whatsapp", "registration.welcome")
    expect(welcome).to_have_count(1, timeout=INBOX_TIMEOUT_MS)

    # The language screen has two choices, so WhatsApp shows them as quick-reply buttons.
    buttons = welcome.locator(".chat-buttons[data-kind='quick-reply'] button")
    expect(buttons).to_have_count(2, timeout=INBOX_TIMEOUT_MS)
    english = welcome.locator(".chat-buttons button", has_text="English")
    with page.expect_request(WHATSAPP_URL) as press:
        english.click()
    form = parse_qs(press.value.post_data or "")
    assert press.value.headers["x-twilio-signature"]
    assert form["MessageType"] == ["interactive"]
    assert form["ButtonText"] == ["English"]
    assert form["Body"] == ["English"]
    assert re.fullmatch(r"\d+:\d+:1", form["ButtonPayload"][0])
    assert form["OriginalRepliedMessageSid"] == [welcome.get_attribute("data-provider-message-id")]
    expect(chat_bubble(page, "whatsapp", "registration.ask_name")).to_have_count(
        1, timeout=INBOX_TIMEOUT_MS
    )
    expect(page.locator("#whatsapp-log .chat-bubble[data-failed='true']")).to_have_count(0)
    assert page_errors == []


def test_telegram_pane_buttons_and_contact(browser_page: Page, server: RunningServer) -> None:
    page = browser_page
    page_errors = record_page_errors(page)
    page.goto(f"{server.base_url}/simulator")
    page.locator("#phone-number").fill("+254700000016")
    page.locator("#telegram-user").fill("100000016")
    expect(page.locator("#telegram-send")).to_be_enabled(timeout=STEP_TIMEOUT_MS)

    with page.expect_request(TELEGRAM_URL) as start:
        page.locator("#telegram-text").fill("/start")
        page.locator("#telegram-send").click()
    assert start.value.headers["x-telegram-bot-api-secret-token"]
    assert start.value.post_data_json["message"]["text"] == "/start"
    welcome = chat_bubble(page, "telegram", "link.welcome")
    expect(welcome).to_have_count(1, timeout=INBOX_TIMEOUT_MS)

    # An inline button posts a callback query. The service answers it in the response, which
    # the pane has the sandbox perform as Telegram would, then removes the pressed keyboard.
    book = welcome.locator(".chat-buttons button", has_text=catalogue("en")["home.book"])
    with (
        page.expect_request(TELEGRAM_URL) as press,
        page.expect_request(TELEGRAM_WEBHOOK_REPLY_URL) as answer,
    ):
        book.click()
    query = press.value.post_data_json["callback_query"]
    assert query["data"]
    assert answer.value.post_data_json == {
        "method": "answerCallbackQuery",
        "callback_query_id": query["id"],
    }
    expect(chat_bubble(page, "telegram", "link.share")).to_have_count(1, timeout=INBOX_TIMEOUT_MS)
    expect(welcome.locator(".chat-buttons button")).to_have_count(0, timeout=INBOX_TIMEOUT_MS)

    # The request-contact button shares the phone number above as a contact.
    share = page.locator(
        "#telegram-reply-keyboard button", has_text=catalogue("en")["link.share_button"]
    )
    with page.expect_request(TELEGRAM_URL) as shared:
        share.click()
    contact = shared.value.post_data_json["message"]["contact"]
    assert contact["phone_number"] == "+254700000016"
    assert contact["user_id"] == 100000016
    expect(chat_bubble(page, "telegram", "link.linked")).to_have_count(1, timeout=INBOX_TIMEOUT_MS)
    expect(page.locator("#telegram-log .chat-bubble[data-failed='true']")).to_have_count(0)
    assert page_errors == []

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(CHATS_SCREENSHOT), full_page=True)
