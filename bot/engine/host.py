"""The host: runs the engine for one inbound message inside one unit of work.

It loads and locks the conversation, applies the flows' commands through core services, saves
the conversation in the same transaction, and hands outbound messages over only after commit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bot.engine import store
from bot.engine.commands import (
    BookAppointment,
    CancelAppointment,
    ChangeLanguage,
    Command,
    RegisterPatient,
    RescheduleAppointment,
)
from bot.engine.engine import LANGUAGE_CHOSEN_KEY, Engine
from bot.engine.flow import Flow, StepContext
from bot.engine.model import (
    PRESSED_MESSAGE_KEY,
    Conversation,
    InboundMessage,
    Input,
    InputKind,
    MessageResult,
    Option,
    Reply,
    ScreenLimits,
    Text,
)
from bot.flows import HOME_TARGETS
from core.booking import service as booking
from core.booking.catalog import CatalogCache
from core.booking.model import Appointment, Doctor, Slot, Specialty
from core.clock import Clock
from core.db.database import Sql, UnitOfWork
from core.i18n import DEFAULT_LANGUAGE, N_, local_day_and_time, translate
from core.identity import patients
from core.notify import reminders
from core.notify.dispatch import OutboxDispatcher
from core.notify.outbox import enqueue_message
from core.notify.policy import DeliveryPolicy, MessageKind, Priority
from core.notify.whatsapp_window import SMS_CHANNEL, WHATSAPP_CHANNEL, record_whatsapp_inbound

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_STALE_RETRIES = 3
# The text of a contact input for the sender's own contact card whose phone number is not
# valid. A linked number is the text of its own contact input, and someone else's contact has
# an empty text.
INVALID_PHONE_CONTACT = "invalid-phone"
# Answers one USSD request may carry. A real session has a few dozen hops at most, and each
# answer is replayed inside the database transaction, so a longer `text` is rejected.
MAX_USSD_ANSWERS = 60


class TooManyAnswers(Exception):
    """A USSD request carries more answers than any real session would."""


@dataclass(frozen=True)
class HostConfig:
    zone: ZoneInfo
    booking_lead: timedelta
    booking_horizon_days: int
    change_cutoff: timedelta
    inactivity_timeout: timedelta
    ussd_service_code: str
    # Reminder offsets and quiet hours; None plans no reminders.
    delivery: DeliveryPolicy | None = None


@dataclass(frozen=True)
class StepResult:
    """A reply and what the step did, for the request log."""

    reply: Reply
    conversation_id: int | None
    state_before: str
    state_after: str
    duplicate: bool = False
    stale: bool = False


class BookingQueries:
    """The flows' read port, bound to one unit of work and one patient."""

    def __init__(
        self,
        uow: UnitOfWork,
        config: HostConfig,
        now: datetime,
        conversation: Conversation,
        catalog: CatalogCache,
    ) -> None:
        self._uow = uow
        self._catalog = catalog
        self._config = config
        self._now = now
        self._conversation = conversation

    @property
    def _patient_id(self) -> int | None:
        # Read on each call: registration earlier in the same request sets it.
        return self._conversation.patient_id

    async def specialties(self) -> list[Specialty]:
        return await self._catalog.specialties(self._uow)

    async def doctors(self, specialty_id: int) -> list[Doctor]:
        return await self._catalog.doctors(self._uow, specialty_id=specialty_id)

    async def doctor(self, doctor_id: int) -> Doctor:
        return await self._catalog.doctor(self._uow, doctor_id=doctor_id)

    async def open_days(self, doctor_id: int) -> list[date]:
        return await booking.list_open_days(
            self._uow,
            doctor_id=doctor_id,
            now=self._now,
            zone=self._config.zone,
            lead=self._config.booking_lead,
            horizon_days=self._config.booking_horizon_days,
        )

    async def free_slots(self, doctor_id: int, day: date) -> list[Slot]:
        return await booking.list_free_slots(
            self._uow,
            doctor_id=doctor_id,
            day=day,
            zone=self._config.zone,
            now=self._now,
            lead=self._config.booking_lead,
        )

    async def next_free_slots(self, doctor_id: int, after: datetime) -> list[Slot]:
        return await booking.next_free_slots(
            self._uow,
            doctor_id=doctor_id,
            after=after,
            now=self._now,
            lead=self._config.booking_lead,
        )

    async def slot(self, slot_id: int) -> Slot | None:
        return await booking.get_slot(self._uow, slot_id=slot_id)

    async def upcoming_appointments(self) -> list[Appointment]:
        if self._patient_id is None:
            return []
        return await booking.list_upcoming_appointments(
            self._uow, patient_id=self._patient_id, now=self._now
        )

    async def appointment(self, appointment_id: int) -> Appointment:
        assert self._patient_id is not None, "appointments need a registered patient"
        return await booking.get_patient_appointment(
            self._uow, patient_id=self._patient_id, appointment_id=appointment_id
        )


class CommandExecutor:
    """Applies flow commands through core services on the conversation's unit of work."""

    def __init__(
        self,
        uow: UnitOfWork,
        conversation: Conversation,
        config: HostConfig,
        now: datetime,
        dispatcher: OutboxDispatcher | None,
    ) -> None:
        self._uow = uow
        self._conversation = conversation
        self._config = config
        self._now = now
        self._dispatcher = dispatcher

    async def execute(self, command: Command) -> Any:
        match command:
            case RegisterPatient(name, language):
                return await self._register(name, language)
            case ChangeLanguage(language):
                if self._conversation.patient_id is not None:
                    await patients.set_language(
                        self._uow, patient_id=self._conversation.patient_id, language=language
                    )
                    await reminders.relocalize_reminders(
                        self._uow,
                        patient_id=self._conversation.patient_id,
                        language=language,
                        zone=self._config.zone,
                        now=self._now,
                    )
                self._conversation.language = language
                self._conversation.data[LANGUAGE_CHOSEN_KEY] = True
                return None
            case BookAppointment(slot_id):
                appointment = await booking.book_appointment(
                    self._uow,
                    patient_id=self._require_patient(),
                    slot_id=slot_id,
                    channel=self._conversation.channel,
                    now=self._now,
                    lead=self._config.booking_lead,
                )
                await self._notify(appointment, N_("sms.booking_confirmed"), MessageKind.BOOKED)
                await self._plan_reminders(appointment, moved=False)
                return appointment
            case CancelAppointment(appointment_id):
                appointment = await booking.cancel_appointment(
                    self._uow,
                    patient_id=self._require_patient(),
                    appointment_id=appointment_id,
                    now=self._now,
                    cutoff=self._config.change_cutoff,
                )
                await self._notify(appointment, N_("sms.booking_cancelled"), MessageKind.CANCELLED)
                await reminders.revoke_reminders(
                    self._uow,
                    appointment_id=appointment.id,
                    reason=reminders.REASON_CANCELLED,
                    now=self._now,
                )
                return appointment
            case RescheduleAppointment(appointment_id, new_slot_id):
                appointment = await booking.reschedule_appointment(
                    self._uow,
                    patient_id=self._require_patient(),
                    appointment_id=appointment_id,
                    new_slot_id=new_slot_id,
                    now=self._now,
                    cutoff=self._config.change_cutoff,
                    lead=self._config.booking_lead,
                )
                await self._notify(appointment, N_("sms.booking_moved"), MessageKind.MOVED)
                await self._plan_reminders(appointment, moved=True)
                return appointment
        raise TypeError(f"unknown command {command!r}")

    def _require_patient(self) -> int:
        if self._conversation.patient_id is None:
            raise RuntimeError("a booking command reached the host before registration")
        return self._conversation.patient_id

    async def _register(self, name: str, language: str) -> int:
        patient = await patients.get_or_create_patient(
            self._uow, phone=self._conversation.phone, now=self._now
        )
        await patients.register_patient(
            self._uow, patient_id=patient.id, name=name, language=language, consented_at=self._now
        )
        self._conversation.patient_id = patient.id
        self._conversation.language = language
        return patient.id

    async def _plan_reminders(self, appointment: Appointment, *, moved: bool) -> None:
        policy = self._config.delivery
        if policy is None:
            return
        plan = reminders.move_reminders if moved else reminders.schedule_reminders
        await plan(
            self._uow,
            appointment=appointment,
            recipient=self._conversation.phone,
            language=self._conversation.language or DEFAULT_LANGUAGE,
            service_code=self._config.ussd_service_code,
            policy=policy,
            now=self._now,
        )

    async def _notify(self, appointment: Appointment, template: str, event: str) -> None:
        language = self._conversation.language or DEFAULT_LANGUAGE
        variables = {
            "doctor": appointment.doctor_name,
            "when": local_day_and_time(appointment.starts_at, self._config.zone, language),
            "reference": appointment.reference,
            "service_code": self._config.ussd_service_code,
        }
        message_id = await enqueue_message(
            self._uow,
            dedupe_key=f"appointment:{appointment.id}:{event}:{self._now.isoformat()}",
            patient_id=appointment.patient_id,
            recipient=self._conversation.phone,
            channel="sms",
            template=template,
            variables=variables,
            language=language,
            body=translate(language, template, **variables),
            now=self._now,
            priority=Priority.URGENT,
            kind=event,
            appointment_id=appointment.id,
        )
        dispatcher = self._dispatcher
        if message_id is not None and dispatcher is not None:

            async def send_after_commit() -> None:
                dispatcher.dispatch_later(message_id)

            self._uow.after_commit(send_after_commit)


def split_ussd_text(text: str) -> list[str]:
    """Split Africa's Talking's whole-session input into the patient's answers."""
    return text.split("*") if text else []


class ConversationHost:
    def __init__(
        self,
        *,
        database: Any,
        clock: Clock,
        config: HostConfig,
        flows: Mapping[str, Flow],
        dispatcher: OutboxDispatcher | None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.config = config
        self.engine = Engine(flows, HOME_TARGETS, config.inactivity_timeout)
        self.catalog = CatalogCache()
        self.dispatcher = dispatcher

    def _context(self, uow: UnitOfWork, conversation: Conversation, now: datetime) -> StepContext:
        return StepContext(
            data=conversation.data,
            language=conversation.language or DEFAULT_LANGUAGE,
            now=now,
            zone=self.config.zone,
            patient_id=conversation.patient_id,
            queries=BookingQueries(uow, self.config, now, conversation, self.catalog),
            commands=CommandExecutor(uow, conversation, self.config, now, self.dispatcher),
            settings={"change_cutoff_hours": self.config.change_cutoff.total_seconds() / 3600},
        )

    async def _load(
        self,
        uow: UnitOfWork,
        phone: str,
        channel: str,
        now: datetime,
        initial_language: str | None = None,
        initial_language_chosen: bool = False,
    ) -> Conversation:
        """Load and lock the conversation of `phone`, creating it at home when there is none.

        A new conversation takes the patient's language, or else `initial_language`. When the
        user chose `initial_language` in a menu, a new conversation of an unregistered patient
        starts registration past its language question.
        """
        existing = await store.load_existing(uow, phone=phone)
        if existing is not None:
            conversation, registered_patient_id = existing
            if registered_patient_id is not None and conversation.patient_id is None:
                conversation.patient_id = registered_patient_id
            return conversation
        patient = await patients.find_patient_by_phone(uow, phone=phone)
        registered = patient is not None and patient.consented_at is not None
        home = HOME_TARGETS.target(registered=registered, key=phone)
        conversation = await store.load_or_create(
            uow,
            phone=phone,
            channel=channel,
            flow=home.flow,
            state=home.state or self.engine.flows[home.flow].initial.name,
            patient_id=patient.id if registered and patient else None,
            language=(patient.language if patient else None) or initial_language,
            now=now,
        )
        if registered and patient and conversation.patient_id is None:
            conversation.patient_id = patient.id
        if initial_language_chosen and not (patient and patient.language):
            conversation.data[LANGUAGE_CHOSEN_KEY] = True
            self.engine.go_home(conversation)
        return conversation

    async def handle_ussd(self, *, session_id: str, phone: str, text: str) -> StepResult:
        """Apply one Africa's Talking USSD request, whose `text` contains the session's input."""
        return await _retry_when_stale(lambda: self._handle_ussd_once(session_id, phone, text))

    async def _handle_ussd_once(self, session_id: str, phone: str, text: str) -> StepResult:
        limits = USSD_LIMITS
        now = self.clock.now()
        async with self.database.unit_of_work() as uow:
            conversation = await self._load(uow, phone, "ussd", now)
            before = f"{conversation.flow}.{conversation.state}"
            same_session = conversation.session_id == session_id
            if same_session and conversation.session_input == text and conversation.last_reply:
                # The gateway sent this request again: return the stored reply, change nothing.
                return StepResult(
                    conversation.last_reply, conversation.id, before, before, duplicate=True
                )

            answers = split_ussd_text(text)
            if len(answers) > MAX_USSD_ANSWERS:
                raise TooManyAnswers(f"{len(answers)} answers in one USSD request")
            applied = split_ussd_text(conversation.session_input or "") if same_session else []
            context = self._context(uow, conversation, now)
            conversation.channel = "ussd"
            if same_session and conversation.last_reply:
                if answers[: len(applied)] != applied:
                    # A late or out-of-order request of this session. Replaying it could act
                    # on a screen the patient has left, even book twice, so show the current
                    # screen and change nothing.
                    return StepResult(
                        conversation.last_reply, conversation.id, before, before, stale=True
                    )
                pending = answers[len(applied) :]
                reply = conversation.last_reply
                seen_screen = True
            else:
                # A new dial, possibly with answers already in it: replay them from the
                # opening screen, which gives the same result as stepping one by one.
                reply = await self.engine.start(conversation, context, limits)
                pending = answers
                seen_screen = False
            for index, answer in enumerate(pending):
                if reply.end:
                    break
                if self.engine.current_step(conversation).commits and not (
                    seen_screen and index == 0
                ):
                    # A step that books, cancels or registers acts only on an answer to a
                    # screen the patient has seen, never on answers typed ahead.
                    break
                reply = await self.engine.step(conversation, Input.of_text(answer), context, limits)
                context.language = conversation.language or context.language

            conversation.session_id = session_id
            conversation.session_input = text
            conversation.last_reply = reply
            self.engine.touch(conversation, now)
            await store.save(uow, conversation, now=now)
            after = f"{conversation.flow}.{conversation.state}"
            return StepResult(reply, conversation.id, before, after)

    async def language_for(self, phone: str) -> str | None:
        """Return the patient's language, for an apology when a step failed."""
        async with self.database.unit_of_work() as uow:
            patient = await patients.find_patient_by_phone(uow, phone=phone)
        return patient.language if patient else None


# USSD: 182 GSM-7 characters per screen, less the 4 of "CON " or "END ".
USSD_LIMITS = ScreenLimits(max_chars=178, max_choices=9, gsm7_only=True)


async def _retry_when_stale(attempt: Callable[[], Awaitable[_T]]) -> _T:
    """Run `attempt` again while another request changes the same conversation first."""
    for number in range(1, MAX_STALE_RETRIES + 1):
        try:
            return await attempt()
        except store.StaleConversation:
            log.warning("conversation changed concurrently; retrying (attempt %d)", number)
    raise store.StaleConversation("conversation kept changing; gave up")


RECORD_INBOUND = Sql(
    """
    INSERT INTO inbound_messages (provider, provider_message_id, channel, received_at)
    VALUES (:provider, :provider_message_id, :channel, :received_at)
    ON CONFLICT (provider, provider_message_id) DO NOTHING
    RETURNING id
    """
)

# Conversation data key marking a pending "continue or start again?" question.
RESUME_KEY = "_resume"
RESUME_CONTINUE, RESUME_RESTART = "1", "2"


async def handle_message(host: ConversationHost, message: InboundMessage) -> MessageResult:
    """Apply one chat message (WhatsApp, Telegram, two-way SMS) exactly once.

    The dedupe row, the conversation and the outbound reply commit in one transaction, so a
    provider's retry or a concurrent copy of the message finds the dedupe row and does nothing.
    """
    return await _retry_when_stale(lambda: _handle_message_once(host, message))


async def _handle_message_once(host: ConversationHost, message: InboundMessage) -> MessageResult:
    now = host.clock.now()
    engine = host.engine
    async with host.database.unit_of_work() as uow:
        recorded = await uow.scalar(
            RECORD_INBOUND,
            provider=message.provider,
            provider_message_id=message.provider_message_id,
            channel=message.channel,
            received_at=now,
        )
        if recorded is None:
            return MessageResult(None, None, None, "", "", duplicate=True)
        if message.resolve_key is not None:
            message = dataclasses.replace(message, key=await message.resolve_key(uow, now))
        if message.channel == WHATSAPP_CHANNEL:
            # Opens WhatsApp's 24-hour window; a duplicate, returned above, leaves it unchanged.
            await record_whatsapp_inbound(uow, phone=message.key, now=now)

        conversation = await host._load(
            uow,
            message.key,
            message.channel,
            now,
            message.initial_language,
            message.initial_language_chosen,
        )
        before = f"{conversation.flow}.{conversation.state}"
        foreign_screen = (
            message.screen_conversation_id is not None
            and message.screen_conversation_id != conversation.id
        )
        old_screen = (
            message.screen_version is not None and message.screen_version != conversation.version
        )
        if foreign_screen or old_screen:
            # A button on an old screen: the dedupe row commits, nothing else changes.
            return MessageResult(
                None,
                conversation.id,
                conversation.version,
                before,
                before,
                stale_screen=True,
                language=conversation.language,
            )

        context = host._context(uow, conversation, now)
        reply = await _next_reply(engine, conversation, message, context)
        conversation.channel = message.channel
        conversation.session_id = None
        conversation.session_input = None
        conversation.last_reply = reply
        engine.touch(conversation, now)
        await store.save(uow, conversation, now=now)
        await _enqueue_reply(host, uow, conversation, message, reply, now)
        after = f"{conversation.flow}.{conversation.state}"
        return MessageResult(
            reply,
            conversation.id,
            conversation.version,
            before,
            after,
            language=conversation.language,
        )


async def resend_current_screen(
    host: ConversationHost,
    message: InboundMessage,
    notice: Text | None,
    *,
    live_screen: bool,
) -> bool:
    """Queue the patient's current screen, after `notice`, as the reply to a stale press, and
    return whether a reply was queued.

    A finished or timed-out flow has no screen left to press, so the conversation goes home and
    the home menu is sent with a new screen version. A live screen is sent again only when
    `live_screen` is true. It is rendered afresh, without notices of earlier steps, when that
    leaves its stored choices unchanged, and otherwise the stored reply is sent as it was.
    Either way the live conversation is not saved, so the old screen's buttons stay stale.
    """
    return await _retry_when_stale(
        lambda: _resend_current_screen_once(host, message, notice, live_screen)
    )


async def _resend_current_screen_once(
    host: ConversationHost, message: InboundMessage, notice: Text | None, live_screen: bool
) -> bool:
    now = host.clock.now()
    engine = host.engine
    limits = message.limits
    async with host.database.unit_of_work() as uow:
        if message.resolve_key is not None:
            message = dataclasses.replace(message, key=await message.resolve_key(uow, now))
        existing = await store.load_existing(uow, phone=message.key)
        if existing is None:
            return False
        conversation, registered_patient_id = existing
        if registered_patient_id is not None and conversation.patient_id is None:
            conversation.patient_id = registered_patient_id
        context = host._context(uow, conversation, now)
        last = conversation.last_reply
        if last is None or last.end or engine.is_expired(conversation, now):
            engine.go_home(conversation)
            conversation.expires_at = None
            reply = await engine.render(conversation, context, limits, notice)
            conversation.channel = message.channel
            conversation.session_id = None
            conversation.session_input = None
            conversation.last_reply = reply
            engine.touch(conversation, now)
            await store.save(uow, conversation, now=now)
        elif not live_screen:
            return False
        else:
            stored_data = json.loads(json.dumps(conversation.data))
            reply = await engine.render(conversation, context, limits, notice)
            if conversation.data != stored_data:
                # The screen would now offer other choices than the stored ones that its
                # buttons act on, so the stored reply goes out instead.
                notice_text = translate(context.language, notice.id) if notice else ""
                body = "\n".join(filter(None, [notice_text, last.body]))
                reply = dataclasses.replace(last, body=body)
        await _enqueue_reply(host, uow, conversation, message, reply, now)
        return True


async def _next_reply(
    engine: Engine, conversation: Conversation, message: InboundMessage, context: StepContext
) -> Reply:
    limits = message.limits
    last = conversation.last_reply
    if message.start_flow is not None:
        # A keyword names where to go, so any pending "continue or start again?" is dropped.
        reply = await engine.start_at(conversation, context, limits, message.start_flow)
        opened = conversation.flow == message.start_flow  # not when registration comes first
        has_answer = message.input.kind is InputKind.TEXT
        if opened and has_answer and not engine.current_step(conversation).commits:
            reply = await engine.step(conversation, message.input, context, limits)
        return reply
    if RESUME_KEY in conversation.data:
        answer = message.input.text
        if answer == RESUME_CONTINUE:
            del conversation.data[RESUME_KEY]
            return await engine.render(conversation, context, limits)
        if answer == RESUME_RESTART:
            return await engine.start(conversation, context, limits)
        return _resume_prompt(conversation, context.language, notice=True)

    moved_channel = conversation.channel != message.channel
    if (
        moved_channel
        and last is not None
        and not last.end
        and not engine.is_home(conversation)
        and not engine.is_expired(conversation, context.now)
    ):
        # Started elsewhere (say on USSD) and left mid-way: ask before acting on this input.
        conversation.data[RESUME_KEY] = conversation.channel
        return _resume_prompt(conversation, context.language, notice=False)
    if message.input.kind is InputKind.CONTACT and message.input.text == message.key:
        # A chat user has just linked this phone number: confirm it and show the current screen
        # of the phone's conversation. A new, finished or timed-out one starts at home.
        if last is None or last.end or engine.is_expired(conversation, context.now):
            engine.go_home(conversation)
            conversation.expires_at = None
        return await engine.render(conversation, context, limits, Text("link.linked"))
    if last is None or last.end or (moved_channel and engine.is_home(conversation)):
        # A first message, a message after a finished flow, or a new channel at home: show the
        # opening screen rather than reading "hello" as a menu choice.
        return await engine.start(conversation, context, limits)
    invalid_phone = message.input == Input(InputKind.CONTACT, INVALID_PHONE_CONTACT)
    if invalid_phone and not engine.is_expired(conversation, context.now):
        # The engine's notice for a contact is about someone else's number, so this one is
        # chosen here. A timed-out conversation gets the engine's time-out notice instead.
        return await engine.render(conversation, context, limits, Text("link.invalid_phone"))
    return await engine.step(conversation, message.input, context, limits)


CHANNEL_NAMES = {"ussd": "USSD", "sms": "SMS", "whatsapp": "WhatsApp", "telegram": "Telegram"}


def _resume_prompt(conversation: Conversation, language: str, *, notice: bool) -> Reply:
    previous = str(conversation.data.get(RESUME_KEY, ""))
    body = translate(language, "resume.prompt", channel=CHANNEL_NAMES.get(previous, previous))
    if notice:
        body = translate(language, "input.invalid_choice") + "\n" + body
    return Reply(
        body=body,
        options=(
            Option(RESUME_CONTINUE, translate(language, "resume.continue")),
            Option(RESUME_RESTART, translate(language, "resume.restart")),
        ),
    )


async def _enqueue_reply(
    host: ConversationHost,
    uow: UnitOfWork,
    conversation: Conversation,
    message: InboundMessage,
    reply: Reply,
    now: datetime,
) -> None:
    """Queue the reply in this transaction; the channel's sender renders it from `variables`."""
    variables: dict[str, Any] = {
        "reply": reply.to_json(),
        "screen_version": conversation.version,
        # Telegram's buttons carry it, so a press is checked against its conversation.
        "conversation_id": conversation.id,
    }
    if message.pressed_message_id is not None:
        variables[PRESSED_MESSAGE_KEY] = message.pressed_message_id
    message_id = await enqueue_message(
        uow,
        dedupe_key=f"reply:{message.provider}:{message.provider_message_id}",
        patient_id=conversation.patient_id,
        recipient=message.reply_to,
        channel=message.channel,
        template="conversation.reply",
        variables=variables,
        language=conversation.language or DEFAULT_LANGUAGE,
        body=reply.as_text(),
        now=now,
        priority=Priority.URGENT,
        kind=MessageKind.REPLY,
        # SMS arrives through Africa's Talking or Twilio, and the reply goes back through the
        # same one, so it comes from the number the patient wrote to.
        provider=message.provider if message.channel == SMS_CHANNEL else None,
    )
    dispatcher = host.dispatcher
    if message_id is not None and dispatcher is not None:

        async def send_after_commit() -> None:
            dispatcher.dispatch_later(message_id)

        uow.after_commit(send_after_commit)
