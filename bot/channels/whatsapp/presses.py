"""Check a pressed WhatsApp button or list item against the patient's conversation, and reply
to a press on an old message with the current screen.

The host acts on a press only when its screen version is the conversation's current one. A
press on an older message changes nothing, and the patient gets "that menu is out of date" with
the current screen again, whose buttons carry the current version.
"""

from __future__ import annotations

import json
from typing import Final

from bot.channels.whatsapp.interactive import Press
from bot.engine.host import ConversationHost
from bot.engine.model import InboundMessage, Reply
from core.db.database import Sql
from core.i18n import DEFAULT_LANGUAGE, N_, translate
from core.notify.outbox import enqueue_message
from core.notify.policy import MessageKind, Priority

# No conversation has this version, so the host treats the press as one on an old screen.
FOREIGN_SCREEN: Final = -1

_CONVERSATION = Sql(
    "SELECT id, version, language, patient_id, last_reply FROM conversations WHERE phone = :key"
)


async def screen_version_of(host: ConversationHost, phone: str, press: Press) -> int:
    """Return the press's screen version, or FOREIGN_SCREEN when it was drawn for another
    conversation than the one of `phone`."""
    async with host.database.unit_of_work() as uow:
        row = await uow.one(_CONVERSATION, key=phone)
    if row is None or row["id"] != press.conversation_id:
        return FOREIGN_SCREEN
    return press.screen_version


async def resend_current_screen(host: ConversationHost, message: InboundMessage) -> None:
    """Queue "that menu is out of date" and the conversation's current screen.

    The reply's dedupe key is the one the host gives a reply to the same message, so it is
    queued at most once per pressed message.
    """
    now = host.clock.now()
    async with host.database.unit_of_work() as uow:
        row = await uow.one(_CONVERSATION, key=message.key)
        if row is None:
            return
        language = row["language"] or DEFAULT_LANGUAGE
        notice = translate(language, N_("whatsapp.menu_expired"))
        last = Reply.from_json(json.loads(row["last_reply"])) if row["last_reply"] else None
        if last is not None and not last.end:
            reply = Reply(
                body=f"{notice}\n\n{last.body}" if last.body else notice,
                options=last.options,
                navigation=last.navigation,
                request_contact=last.request_contact,
            )
        else:
            reply = Reply(body=notice)
        message_id = await enqueue_message(
            uow,
            dedupe_key=f"reply:{message.provider}:{message.provider_message_id}",
            patient_id=row["patient_id"],
            recipient=message.reply_to,
            channel=message.channel,
            template="conversation.reply",
            variables={
                "reply": reply.to_json(),
                "screen_version": row["version"],
                "conversation_id": row["id"],
            },
            language=language,
            body=reply.as_text(),
            now=now,
            priority=Priority.URGENT,
            kind=MessageKind.REPLY,
        )
        dispatcher = host.dispatcher
        if message_id is not None and dispatcher is not None:

            async def send_after_commit() -> None:
                dispatcher.dispatch_later(message_id)

            uow.after_commit(send_after_commit)
