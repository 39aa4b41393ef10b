"""Reply to a press on an old WhatsApp message, or on one drawn for another conversation, with
the current screen.

The host acts on a press only when its screen version is the conversation's current one. A
press on an older message acts on nothing, and the patient gets "that menu is out of date" with
the current screen again, whose buttons carry the current version. After a finished or timed-out
flow the current screen is the home menu.
"""

from __future__ import annotations

from bot.engine.host import ConversationHost
from bot.engine.host import resend_current_screen as host_resend_current_screen
from bot.engine.model import InboundMessage, Text
from core.i18n import N_


async def resend_current_screen(host: ConversationHost, message: InboundMessage) -> None:
    """Queue "that menu is out of date" and the patient's current screen: the screen they are
    on, or the home menu after a finished or timed-out flow.

    The reply's dedupe key is the one the host gives a reply to the same message, so it is
    queued at most once per pressed message.
    """
    await host_resend_current_screen(
        host, message, Text(N_("whatsapp.menu_expired")), live_screen=True
    )
