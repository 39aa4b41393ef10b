"""Check a pressed WhatsApp button or list item against the patient's conversation, and reply
to a press on an old message with the current screen.

The host acts on a press only when its screen version is the conversation's current one. A
press on an older message acts on nothing, and the patient gets "that menu is out of date" with
the current screen again, whose buttons carry the current version. After a finished or timed-out
flow the current screen is the home menu.
"""

from __future__ import annotations

from typing import Final

from bot.channels.whatsapp.interactive import Press
from bot.engine.host import ConversationHost
from bot.engine.host import resend_current_screen as host_resend_current_screen
from bot.engine.model import InboundMessage, Text
from core.db.database import Sql
from core.i18n import N_

# No conversation has this version, so the host treats the press as one on an old screen.
FOREIGN_SCREEN: Final = -1

_CONVERSATION = Sql("SELECT id FROM conversations WHERE phone = :key")


async def screen_version_of(host: ConversationHost, phone: str, press: Press) -> int:
    """Return the press's screen version, or FOREIGN_SCREEN when it was drawn for another
    conversation than the one of `phone`."""
    async with host.database.unit_of_work() as uow:
        row = await uow.one(_CONVERSATION, key=phone)
    if row is None or row["id"] != press.conversation_id:
        return FOREIGN_SCREEN
    return press.screen_version


async def resend_current_screen(host: ConversationHost, message: InboundMessage) -> None:
    """Queue "that menu is out of date" and the patient's current screen: the screen they are
    on, or the home menu after a finished or timed-out flow.

    The reply's dedupe key is the one the host gives a reply to the same message, so it is
    queued at most once per pressed message.
    """
    await host_resend_current_screen(
        host, message, Text(N_("whatsapp.menu_expired")), live_screen=True
    )
