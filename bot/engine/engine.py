"""The engine loop: apply one input to a conversation and render the next screen.

The engine never touches a channel, the database or the broker. Reads and writes go through
the `queries` and `commands` ports the host puts in the StepContext, inside the host's
transaction, so the conversation commits together with the change it caused.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from bot.engine.flow import (
    Enter,
    Finish,
    Flow,
    FlowRef,
    Go,
    Home,
    Outcome,
    Stay,
    Step,
    StepContext,
)
from bot.engine.gsm7 import fit, gsm7_length, to_gsm7
from bot.engine.model import (
    BACK,
    HOME,
    MORE,
    Conversation,
    Input,
    InputKind,
    Option,
    Reply,
    ScreenLimits,
    Text,
)
from core.i18n import translate

# Keys the engine keeps in Conversation.data; flows use other names.
CHOICES_KEY = "_choices"
PAGE_KEY = "_page"
# Choice indices where a page must start, added when a long notice shortened a page, so that
# "more" goes on from the first choice the shortened page left out. Cleared with the screen.
PAGE_BREAKS_KEY = "_page_breaks"
HAS_MORE_KEY = "_more"
ACCEPTS_TEXT_KEY = "_text"
# Set when the user picked the conversation's language in a menu, as opposed to the language
# coming from their app's settings. It is the one key of `data` that survives going home.
LANGUAGE_CHOSEN_KEY = "_language_chosen"

# Maximum number of choices a screen pages through, which keeps option numbers below 98.
MAX_LIST = 90


@dataclass(frozen=True)
class HomeTargets:
    """Targets of `00` and of a finished flow: registration until the patient has consented.

    A chat user known only by a channel id (key `tg:<user id>`, not an E.164 number) gets
    `unlinked` instead of registration, because registering needs a verified phone number.
    """

    registered: FlowRef
    unregistered: FlowRef
    unlinked: FlowRef | None = None
    # Registration past its language question, for a user who has already chosen a language.
    unregistered_with_language: FlowRef | None = None

    def target(self, *, registered: bool, key: str, language_chosen: bool = False) -> FlowRef:
        """Return the home of a conversation with this key (its phone column)."""
        if registered:
            return self.registered
        if self.unlinked is not None and not key.startswith("+"):
            return self.unlinked
        if language_chosen and self.unregistered_with_language is not None:
            return self.unregistered_with_language
        return self.unregistered


class Engine:
    def __init__(
        self,
        flows: Mapping[str, Flow],
        home: HomeTargets,
        inactivity_timeout: timedelta,
    ) -> None:
        self.flows = flows
        self.home = home
        self.inactivity_timeout = inactivity_timeout

    # --- positions ---------------------------------------------------------------------------

    def _current(self, conversation: Conversation) -> tuple[Flow, enum.Enum]:
        flow = self.flows[conversation.flow]
        return flow, flow.state(conversation.state)

    def current_step(self, conversation: Conversation) -> Step:
        flow, state = self._current(conversation)
        return flow.steps[state]

    def _home_ref(self, conversation: Conversation) -> FlowRef:
        return self.home.target(
            registered=bool(conversation.patient_id),
            key=conversation.phone,
            language_chosen=bool(conversation.data.get(LANGUAGE_CHOSEN_KEY)),
        )

    def at_language_question(self, conversation: Conversation) -> bool:
        """Check whether the conversation is on the question that picks its language.

        That is the unregistered home when a home past the language question exists.
        """
        return (
            self.home.unregistered_with_language is not None
            and self._home_ref(conversation) == self.home.unregistered
            and self.is_home(conversation)
        )

    def is_home(self, conversation: Conversation) -> bool:
        ref = self._home_ref(conversation)
        flow = self.flows[ref.flow]
        state = ref.state or flow.initial.name
        return conversation.flow == ref.flow and conversation.state == state

    def go_home(self, conversation: Conversation) -> None:
        ref = self._home_ref(conversation)
        flow = self.flows[ref.flow]
        conversation.flow = ref.flow
        conversation.state = ref.state or flow.initial.name
        conversation.back_stack = []
        chosen = conversation.data.get(LANGUAGE_CHOSEN_KEY)
        conversation.data = {LANGUAGE_CHOSEN_KEY: True} if chosen else {}

    def is_expired(self, conversation: Conversation, now: datetime) -> bool:
        return conversation.expires_at is not None and now >= conversation.expires_at

    def touch(self, conversation: Conversation, now: datetime) -> None:
        """Restart the inactivity timer, or clear it at the home screen where nothing is pending."""
        conversation.expires_at = (
            None if self.is_home(conversation) else now + self.inactivity_timeout
        )

    # --- one input ---------------------------------------------------------------------------

    async def start(
        self, conversation: Conversation, context: StepContext, limits: ScreenLimits
    ) -> Reply:
        """Open a new session at home (or registration) and render it.

        A new session is a fresh start, so an earlier conversation's timeout does not apply.
        """
        self.go_home(conversation)
        conversation.expires_at = None
        return await self.render(conversation, context, limits)

    async def start_at(
        self, conversation: Conversation, context: StepContext, limits: ScreenLimits, flow: str
    ) -> Reply:
        """Open a new session in `flow`, as if the patient had picked it on the home menu.

        A patient who has not registered gets the opening screen instead, because every flow
        but registration needs a patient. Raises KeyError for an unknown flow name.
        """
        target = self.flows[flow]
        self.go_home(conversation)
        conversation.expires_at = None
        if conversation.patient_id is not None and conversation.flow != flow:
            conversation.back_stack.append((conversation.flow, conversation.state))
            conversation.flow = flow
            conversation.state = target.initial.name
        return await self.render(conversation, context, limits)

    async def step(
        self,
        conversation: Conversation,
        received: Input,
        context: StepContext,
        limits: ScreenLimits,
    ) -> Reply:
        """Apply one input and return the reply; the conversation is changed in place."""
        if self.is_expired(conversation, context.now):
            # The stale screen's choices must not act (a slot list shown an hour ago, say),
            # so the input that arrives after the timeout is consumed here.
            self.go_home(conversation)
            return await self.render(conversation, context, limits, Text("session.expired"))

        if received.kind is InputKind.TEXT and received.text == HOME:
            self.go_home(conversation)
            return await self.render(conversation, context, limits)
        if received.kind is InputKind.TEXT and received.text == BACK:
            page = int(conversation.data.get(PAGE_KEY, 0))
            if page > 0:
                conversation.data[PAGE_KEY] = page - 1  # back a page of the same list first
            else:
                if conversation.back_stack:
                    conversation.flow, conversation.state = conversation.back_stack.pop()
                _first_page(conversation)
            return await self.render(conversation, context, limits)
        if received.kind is InputKind.TEXT and received.text == MORE:
            if not conversation.data.get(HAS_MORE_KEY):
                notice = self._input_notice(conversation, Text("input.no_more"))
                return await self.render(conversation, context, limits, notice)
            conversation.data[PAGE_KEY] = int(conversation.data.get(PAGE_KEY, 0)) + 1
            return await self.render(conversation, context, limits)

        outcome = await self._handle(conversation, received, context)
        return await self._apply(conversation, outcome, context, limits)

    async def _handle(
        self, conversation: Conversation, received: Input, context: StepContext
    ) -> Outcome:
        flow, state = self._current(conversation)
        step = flow.steps[state]
        context.data = conversation.data
        context.patient_id = conversation.patient_id
        if step.handle is None:
            return Stay(Text("input.use_navigation"))
        if received.kind is InputKind.CONTACT:
            # The host handles the user's own, just-linked number, so this contact is not usable.
            return Stay(Text("link.not_own_contact"))
        if received.kind in (InputKind.MEDIA, InputKind.LOCATION):
            return Stay(self._input_notice(conversation, Text("input.answer_with_number")))
        if conversation.data.get(ACCEPTS_TEXT_KEY):
            if received.kind is InputKind.EMPTY:
                return Stay(Text("input.empty_text"))
            return await step.handle(context, received.text)
        if received.kind is InputKind.EMPTY:
            return Stay(self._input_notice(conversation, Text("input.invalid_choice")))
        value = conversation.data.get(CHOICES_KEY, {}).get(received.text)
        if value is None:
            return Stay(self._input_notice(conversation, Text("input.invalid_choice")))
        return await step.handle(context, value)

    def _input_notice(self, conversation: Conversation, notice: Text) -> Text:
        """Return `notice` for an input the screen cannot use, or its bilingual replacement.

        The language question comes before the patient has picked a language, so its notice is
        the invalid-choice notice in English and Kiswahili, as the question itself is.
        """
        if self.at_language_question(conversation):
            return Text("input.invalid_choice_bilingual")
        return notice

    async def _apply(
        self,
        conversation: Conversation,
        outcome: Outcome,
        context: StepContext,
        limits: ScreenLimits,
    ) -> Reply:
        flow, state = self._current(conversation)
        conversation.language = context.language
        match outcome:
            case Stay(notice):
                return await self.render(conversation, context, limits, notice)
            case Go(target, notice, replace):
                flow.check(state, target)
                if not replace:
                    conversation.back_stack.append((conversation.flow, conversation.state))
                conversation.state = target.name
                _first_page(conversation)
                return await self.render(conversation, context, limits, notice)
            case Enter(target, notice):
                flow.check(state, target)
                conversation.back_stack.append((conversation.flow, conversation.state))
                other = self.flows[target.flow]
                conversation.flow = target.flow
                conversation.state = target.state or other.initial.name
                _first_page(conversation)
                return await self.render(conversation, context, limits, notice)
            case Home(notice):
                self.go_home(conversation)
                return await self.render(conversation, context, limits, notice)
            case Finish(message, extra):
                self.go_home(conversation)
                body = "\n".join(
                    translate(context.language, text.id, **text.params)
                    for text in (message, *extra)
                )
                return self._fit_reply(Reply(body=body, end=True), limits)
        raise TypeError(f"unknown outcome {outcome!r}")

    # --- rendering ---------------------------------------------------------------------------

    async def render(
        self,
        conversation: Conversation,
        context: StepContext,
        limits: ScreenLimits,
        notice: Text | None = None,
    ) -> Reply:
        flow, state = self._current(conversation)
        context.data = conversation.data
        screen = await flow.steps[state].render(context)
        language = context.language
        notice_text = translate(language, notice.id, **notice.params) if notice else ""
        body = "\n".join(translate(language, text.id, **text.params) for text in screen.body)
        if screen.end:
            self.go_home(conversation)
            return self._fit_reply(Reply(_join(notice_text, body), end=True), limits)

        labels = [
            choice.label
            if isinstance(choice.label, str)
            else translate(language, choice.label.id, **choice.label.params)
            for choice in screen.choices[:MAX_LIST]
        ]
        if not labels and screen.empty is not None:
            body = "\n".join(filter(None, [body, translate(language, screen.empty.id)]))

        requested_page = int(conversation.data.get(PAGE_KEY, 0))
        back = bool(conversation.back_stack) or requested_page > 0
        # Home is offered once the patient is registered; before that `00` only restarts.
        home = not self.is_home(conversation) and conversation.patient_id is not None
        # Pages are cut without the notice, so a re-prompt keeps the choices the patient saw
        # when the notice fits in place of the screen's text. A longer notice shortens the page
        # and adds a page break, which later renders of this screen keep.
        breaks = tuple(conversation.data.get(PAGE_BREAKS_KEY, ()))
        pages = self._paginate(body, labels, limits, language, back=back, home=home, breaks=breaks)
        page = min(requested_page, max(len(pages) - 1, 0))
        first, last = pages[page] if pages else (0, 0)
        if notice_text:
            end = _notice_page_end(
                notice_text, tuple(labels), first, last, limits, language, back, home
            )
            if end < last:
                breaks = tuple(sorted({*breaks, end}))
                conversation.data[PAGE_BREAKS_KEY] = list(breaks)
                pages = self._paginate(
                    body, labels, limits, language, back=back, home=home, breaks=breaks
                )
                first, last = pages[page]
        options = tuple(Option(str(i + 1), labels[i]) for i in range(first, last))
        has_more = page < len(pages) - 1
        navigation = self._navigation(language, more=has_more, back=back, home=home)

        conversation.data[PAGE_KEY] = page
        conversation.data[HAS_MORE_KEY] = has_more
        conversation.data[ACCEPTS_TEXT_KEY] = screen.accepts_text
        conversation.data[CHOICES_KEY] = {
            str(i + 1): screen.choices[i].value for i in range(first, last)
        }
        contact_label = (
            translate(language, screen.request_contact.id) if screen.request_contact else ""
        )
        reply = Reply(_join(notice_text, body), options, navigation, request_contact=contact_label)
        # When the notice makes the screen too long, the notice replaces the screen's own text.
        return self._fit_reply(reply, limits, shorter_body=notice_text or None)

    def _navigation(
        self, language: str, *, more: bool, back: bool, home: bool
    ) -> tuple[Option, ...]:
        return _navigation(language, more, back, home)

    def _measure(self, text: str, limits: ScreenLimits) -> int:
        return gsm7_length(text) if limits.gsm7_only else len(text)

    def _paginate(
        self,
        body: str,
        labels: list[str],
        limits: ScreenLimits,
        language: str,
        *,
        back: bool,
        home: bool,
        breaks: tuple[int, ...] = (),
    ) -> tuple[tuple[int, int], ...]:
        """Split the choices into pages of [first, last) indices that fit the channel's screen.

        A page also ends before each index in `breaks` when the channel limits the screen size.
        """
        return _paginate(body, tuple(labels), limits, language, back, home, breaks)

    def _fit_reply(
        self, reply: Reply, limits: ScreenLimits, shorter_body: str | None = None
    ) -> Reply:
        """Shorten the body when the screen overflows: first to `shorter_body`, then by words."""
        if limits.max_chars is None:
            return reply
        if self._measure(reply.as_text(), limits) <= limits.max_chars:
            return reply
        if shorter_body is not None:
            reply = Reply(shorter_body, reply.options, reply.navigation, reply.end)
        text = reply.as_text()
        if self._measure(text, limits) <= limits.max_chars:
            return reply
        rest = len(text) - len(reply.body)
        budget = max(limits.max_chars - rest, 10)
        body = fit(to_gsm7(reply.body), budget) if limits.gsm7_only else reply.body[:budget]
        options = tuple(
            Option(o.key, fit(to_gsm7(o.label), 40) if limits.gsm7_only else o.label[:40])
            for o in reply.options
        )
        return Reply(body, options, reply.navigation, reply.end)


def _join(*parts: str) -> str:
    return "\n".join(part for part in parts if part)


def _first_page(conversation: Conversation) -> None:
    """Show a newly entered screen from its first page, without an earlier screen's breaks."""
    conversation.data[PAGE_KEY] = 0
    conversation.data.pop(PAGE_BREAKS_KEY, None)


# Screens repeat (every walk through booking shows the same specialty and doctor lists), so
# the navigation lines and the page cuts are cached on everything they depend on.


@lru_cache(maxsize=64)
def _navigation(language: str, more: bool, back: bool, home: bool) -> tuple[Option, ...]:
    items = []
    if more:
        items.append(Option(MORE, translate(language, "nav.more")))
    if back:
        items.append(Option(BACK, translate(language, "nav.back")))
    if home:
        items.append(Option(HOME, translate(language, "nav.home")))
    return tuple(items)


def _line_size(line: str, limits: ScreenLimits) -> int:
    """Measure one line of `Reply.as_text` with its newline."""
    return (gsm7_length(line) if limits.gsm7_only else len(line)) + 1


def _navigation_size(
    language: str, limits: ScreenLimits, more: bool, back: bool, home: bool
) -> int:
    """Measure the navigation lines with their newlines."""
    return sum(
        _line_size(f"{o.key}. {o.label}", limits) for o in _navigation(language, more, back, home)
    )


@lru_cache(maxsize=1024)
def _paginate(
    body: str,
    labels: tuple[str, ...],
    limits: ScreenLimits,
    language: str,
    back: bool,
    home: bool,
    breaks: tuple[int, ...] = (),
) -> tuple[tuple[int, int], ...]:
    """Split the choices into pages of [first, last) indices that fit the channel's screen.

    A page also ends before each index in `breaks` when the channel limits the screen size,
    because only there does a notice shorten a page.

    Each line is measured once; a page's size is the sum of its lines and newlines, which is
    what `Reply.as_text` produces.
    """
    if not labels:
        return ()
    if limits.max_chars is None:
        step = limits.max_choices
        return tuple((i, min(i + step, len(labels))) for i in range(0, len(labels), step))

    def size(line: str) -> int:
        return _line_size(line, limits)

    body_size = size(body) if body else 0
    option_sizes = [size(f"{i + 1}. {label}") for i, label in enumerate(labels)]
    # Navigation lines when a "more" line is and is not shown, less the final newline.
    nav_with_more = _navigation_size(language, limits, True, back, home)
    nav_without_more = _navigation_size(language, limits, False, back, home)
    pages: list[tuple[int, int]] = []
    first = 0
    while first < len(labels):
        last = first
        used = body_size
        while last < len(labels) and last - first < limits.max_choices:
            if last > first and last in breaks:
                break
            more = last + 1 < len(labels)
            navigation = nav_with_more if more else nav_without_more
            if used + option_sizes[last] + navigation - 1 > limits.max_chars:
                break
            used += option_sizes[last]
            last += 1
        if last == first:
            last = first + 1  # one choice per page at least; _fit_reply shortens it
        pages.append((first, last))
        first = last
    return tuple(pages)


def _notice_page_end(
    notice: str,
    labels: tuple[str, ...],
    first: int,
    last: int,
    limits: ScreenLimits,
    language: str,
    back: bool,
    home: bool,
) -> int:
    """Return where the page [first, last) must end for `notice` to be shown whole above it.

    `Engine._fit_reply` puts the notice in place of the screen's text when both do not fit, so
    the page needs room for the notice alone. The page keeps at least one choice, so a notice
    too long to fit beside one choice is still cut by words.
    """
    if limits.max_chars is None:
        return last
    notice_size = _line_size(notice, limits)
    for end in range(last, first + 1, -1):
        options = sum(_line_size(f"{i + 1}. {labels[i]}", limits) for i in range(first, end))
        navigation = _navigation_size(language, limits, end < len(labels), back, home)
        # Less the final newline, because `Reply.as_text` adds none after the last line.
        if notice_size + options + navigation - 1 <= limits.max_chars:
            return end
    return min(first + 1, last)
