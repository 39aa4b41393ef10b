"""Two-way SMS after authentication: keywords first, then the conversation.

Every SMS adapter (Africa's Talking, Twilio) calls `handle_sms` with an authenticated
`InboundMessage` whose `key` is the sender's E.164 number. BOOK, CANCEL, HELP and MENU open
their flow; STOP and START change the number's subscription here and never reach the engine
(START reaches it only when nothing was opted out, and then opens the home menu). Any other text
is an answer to the conversation's current screen.

STOP, in the same transaction as the dedupe row:
- plain STOP opts the number out of every non-essential message and confirms once: a second
  STOP changes nothing and sends nothing;
- `STOP <patient id>` mutes only that patient's messages, when the patient has this number or
  has been sent messages at it; another id gets a reply that nothing changed;
- START lifts every opt-out of the number and confirms.
The delivery pipeline enforces opt-outs when each message is about to be sent.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Final

from bot.channels.sms.keywords import FLOW_OF_KEYWORD, Keyword, KeywordMatch, match_keyword
from bot.engine.host import RECORD_INBOUND, ConversationHost, handle_message
from bot.engine.model import InboundMessage, Input, InputKind, MessageResult, Reply
from core.db.database import Sql, UnitOfWork
from core.i18n import N_, translate
from core.identity.patients import find_patient_by_phone
from core.notify import optouts
from core.notify.outbox import enqueue_message
from core.notify.policy import MessageKind, Priority

log = logging.getLogger(__name__)

# patients.id is a 32-bit integer on PostgreSQL; a larger number names no patient.
MAX_PATIENT_ID: Final = 2**31 - 1

_PATIENT_ON_NUMBER = Sql(
    """
    SELECT 1 FROM patients WHERE id = :patient_id AND phone = :phone
    UNION ALL
    SELECT 1 FROM outbox_messages WHERE patient_id = :patient_id AND recipient = :phone
    LIMIT 1
    """
)
_ANY_OPT_OUT = Sql("SELECT 1 FROM opt_outs WHERE phone = :phone LIMIT 1")


class Outcome:
    """Names of what an inbound SMS did, for logs and metrics."""

    REPLIED = "replied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    OPTED_OUT = "opted_out"
    ALREADY_OPTED_OUT = "already_opted_out"
    MUTED = "muted"
    ALREADY_MUTED = "already_muted"
    PATIENT_NOT_FOUND = "patient_not_found"
    OPTED_IN = "opted_in"


@dataclass(frozen=True)
class SmsResult:
    outcome: str
    keyword: Keyword | None = None
    # The conversation step, when the message reached the engine.
    message_result: MessageResult | None = None


async def handle_sms(host: ConversationHost, message: InboundMessage) -> SmsResult:
    """Apply one inbound SMS exactly once: a subscription keyword, or a conversation step."""
    match = match_keyword(message.input.text) if message.input.kind is InputKind.TEXT else None
    if match is None:
        return _from_step(await handle_message(host, message), None)

    if match.keyword is Keyword.STOP:
        return await _change_subscription(host, message, match)
    if match.keyword is Keyword.START:
        if await _has_opt_out(host, message.key):
            return await _change_subscription(host, message, match)
        flow = "home"
    else:
        flow = FLOW_OF_KEYWORD[match.keyword]
    # The argument ("1" in "MIADI 1") answers the flow's first screen; other words are dropped.
    opened = dataclasses.replace(message, start_flow=flow, input=Input.of_text(match.argument))
    return _from_step(await handle_message(host, opened), match.keyword)


def _from_step(result: MessageResult, keyword: Keyword | None) -> SmsResult:
    if result.duplicate:
        outcome = Outcome.DUPLICATE
    elif result.stale_screen:
        outcome = Outcome.STALE
    else:
        outcome = Outcome.REPLIED
    return SmsResult(outcome, keyword, result)


async def _has_opt_out(host: ConversationHost, phone: str) -> bool:
    async with host.database.unit_of_work() as uow:
        return await uow.scalar(_ANY_OPT_OUT, phone=phone) is not None


async def _change_subscription(
    host: ConversationHost, message: InboundMessage, match: KeywordMatch
) -> SmsResult:
    now = host.clock.now()
    phone = message.key
    async with host.database.unit_of_work() as uow:
        recorded = await uow.scalar(
            RECORD_INBOUND,
            provider=message.provider,
            provider_message_id=message.provider_message_id,
            channel=message.channel,
            received_at=now,
        )
        if recorded is None:
            return SmsResult(Outcome.DUPLICATE, match.keyword)

        patient = await find_patient_by_phone(uow, phone=phone)
        language = (patient.language if patient else None) or match.language
        source = f"{message.channel}:{match.keyword.name}"
        params: dict[str, object] = {}

        if match.keyword is Keyword.START:
            lifted = await optouts.opt_in(uow, phone=phone)
            outcome = Outcome.OPTED_IN if lifted else Outcome.REPLIED
            text_id: str | None = N_("optin.confirmed")
        elif match.argument is None:
            added = await optouts.opt_out(uow, phone=phone, now=now, source=source)
            outcome = Outcome.OPTED_OUT if added else Outcome.ALREADY_OPTED_OUT
            text_id = N_("optout.confirmed") if added else None
        else:
            patient_id = int(match.argument)
            params = {"patient_id": match.argument}
            if not await _patient_on_number(uow, patient_id, phone):
                outcome = Outcome.PATIENT_NOT_FOUND
                text_id = N_("optout.patient_not_found")
            else:
                added = await optouts.opt_out(
                    uow, phone=phone, now=now, patient_id=patient_id, source=source
                )
                outcome = Outcome.MUTED if added else Outcome.ALREADY_MUTED
                text_id = N_("optout.patient_muted") if added else None

        if text_id is not None:
            await _enqueue_confirmation(
                host,
                uow,
                message,
                patient_id=patient.id if patient else None,
                language=language,
                body=translate(language, text_id, **params),
                template=text_id,
            )
    return SmsResult(outcome, match.keyword)


async def _patient_on_number(uow: UnitOfWork, patient_id: int, phone: str) -> bool:
    if patient_id > MAX_PATIENT_ID:
        return False
    return await uow.scalar(_PATIENT_ON_NUMBER, patient_id=patient_id, phone=phone) is not None


async def _enqueue_confirmation(
    host: ConversationHost,
    uow: UnitOfWork,
    message: InboundMessage,
    *,
    patient_id: int | None,
    language: str,
    body: str,
    template: str,
) -> None:
    """Queue the answer to a STOP or START like a conversation reply: it is essential, so it
    goes out even to a number that has just opted out, through the provider the keyword came in
    on."""
    reply = Reply(body=body, end=True)
    message_id = await enqueue_message(
        uow,
        dedupe_key=f"reply:{message.provider}:{message.provider_message_id}",
        patient_id=patient_id,
        recipient=message.reply_to,
        channel=message.channel,
        template=template,
        variables={"reply": reply.to_json()},
        language=language,
        body=body,
        now=host.clock.now(),
        priority=Priority.URGENT,
        kind=MessageKind.REPLY,
        provider=message.provider,
    )
    dispatcher = host.dispatcher
    if message_id is not None and dispatcher is not None:

        async def send_after_commit() -> None:
            dispatcher.dispatch_later(message_id)

        uow.after_commit(send_after_commit)
