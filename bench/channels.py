"""Chat-channel webhooks of `myafya serve` against a bare body-parsing server, in one run.

Each scenario sends provider-format requests to the real endpoint: authenticated, each with a
message or update id of its own, from registered fake patients. The same requests go to
bench/bare_channel_server.py, which parses the body and replies with a constant. An asyncio load
generator in this process keeps `concurrency` requests in flight for a fixed time, at each
concurrency, and reps are the outer loop, so a slow phase of the machine hits both servers
alike. Tables show the median of the reps; the ratio is our req/s over the bare server's.

Scenarios:
- `whatsapp`: Twilio webhooks with X-Twilio-Signature, each the message "00" (the menu).
- `telegram`: Telegram updates with X-Telegram-Bot-Api-Secret-Token from users linked to
  registered patients, alternating a text message "00" and a press of button 1 (Book) on the
  menu it drew. Each load worker has users of its own, so no user has two updates in flight,
  and a press carries the conversation version its keyboard was drawn for. The service
  answers each press in the response to its update, which the load generator checks; Telegram
  performs such an answer on its own servers, so no request stands for it here. The pressed
  keyboard is removed by the worker that sends the reply, as is the reply itself.
  `--settle` pauses before each measurement so that the background work left over from the one
  before (handing replies to the broker) does not slow it down.

The provider calls of our server go to the sandbox fakes of a second `myafya serve` on a
database of its own (MYAFYA_SANDBOX_URL), as they go to the providers' servers in production.
With `--fakes same` our server serves them itself, which adds the fakes' work to its own.
Add a scenario to SCENARIOS for another channel.

Our server's replies are checked after each measurement: every accepted request must have put
a reply starting with the expected screen title into the outbox, and a missing or different
reply counts as an error, as does a press whose response does not answer it. By default the
service hands replies to a Redis broker that no worker reads (`--jobs redis`), so the numbers
measure the webhook. With `--jobs embedded` the same process also sends every reply to the
sandbox fake, as `make run` does.

    .venv/bin/python bench/channels.py               # SQLite, both scenarios, about 5 minutes
    .venv/bin/python bench/channels.py --database postgresql --reps 5
    .venv/bin/python bench/channels.py --scenario telegram --reps 1 --duration 2   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
from support import (
    DEFAULT_POSTGRES_URL,
    BenchDatabase,
    ServerProcess,
    fake_phone,
    free_port,
    load_average,
    machine_summary,
    median,
    postgres_reachable,
    register_patients,
    seed_demo_database,
    service_environment,
    spread,
    start_serve,
    throwaway_database,
)
from twilio.request_validator import RequestValidator

BENCH_DIR = Path(__file__).resolve().parent
CONCURRENCIES = (16, 64)
TARGET_RATIO = 0.2
PATIENTS = 64
TELEGRAM_USERS = 128  # at least the highest concurrency, so every load worker has a user
REDIS_URL = "redis://127.0.0.1:6379/0"

# The sandbox's placeholder Twilio account and the default public URL that signatures cover.
SANDBOX_TWILIO_AUTH_TOKEN = "sandbox-twilio-auth-token"
PUBLIC_URL = "http://127.0.0.1:8080"
WHATSAPP_PATH = "/webhooks/twilio/whatsapp"

# Telegram credentials of the bench's service, and fake user ids 7100000000 and up.
BENCH_TELEGRAM_TOKEN = "8000000001:bench-telegram-bot-token"
BENCH_TELEGRAM_SECRET = "bench-telegram-webhook-secret"
TELEGRAM_PATH = "/webhooks/telegram"
TELEGRAM_FIRST_USER_ID = 7_100_000_000
TELEGRAM_BOT_USER = {"id": 8_000_000_001, "is_bot": True, "first_name": "MyAfya Bench Bot"}

# Titles of the screens the scenarios lead to, in English, as the outbox body starts.
HOME_TITLE = "MyAfya menu:"
SERVICES_TITLE = "Choose a service:"


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]
    # The outbox dedupe key of the reply our server must queue for this request, and the text
    # that reply starts with; None for a request whose reply is not checked.
    reply_key: str | None = None
    reply_title: str = ""
    # The JSON body our server's response must have; None for an empty or unchecked one.
    response: dict[str, Any] | None = None


class Scenario(Protocol):
    """A channel's workload. Each request it yields is new: its message or update id is unique."""

    name: str
    expected_status: int

    def prepare(self, database: BenchDatabase) -> None:
        """Set up the database (patients, linked users) before the servers start."""

    def streams(self, concurrency: int, database: BenchDatabase | None) -> list[Iterator[Request]]:
        """Return one request stream per load worker, for our server (`database` set) or for
        the bare server (`database` None)."""


class WhatsAppScenario:
    """Signed WhatsApp messages "00" (back to the menu) from the registered patients."""

    name = "whatsapp"
    expected_status = 200

    def __init__(self, run_tag: str) -> None:
        self._requests = whatsapp_requests(run_tag)

    def prepare(self, database: BenchDatabase) -> None:
        register_patients(database, PATIENTS)

    def streams(self, concurrency: int, database: BenchDatabase | None) -> list[Iterator[Request]]:
        # Each message goes back to the menu, so the workers can share one stream.
        return [self._requests] * concurrency


def whatsapp_requests(run_tag: str) -> Iterator[Request]:
    validator = RequestValidator(SANDBOX_TWILIO_AUTH_TOKEN)
    for number in itertools.count():
        phone = fake_phone(number % PATIENTS)
        sid = f"SM{run_tag}{number:024d}"[:34]
        form = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": f"whatsapp:{phone}",
            "To": "whatsapp:+254700000100",
            "Body": "00",
            "NumMedia": "0",
            "ProfileName": "Bench Patient",
            "WaId": phone.removeprefix("+"),
            "ApiVersion": "2010-04-01",
        }
        signature = validator.compute_signature(PUBLIC_URL + WHATSAPP_PATH, form)
        yield Request(
            WHATSAPP_PATH,
            urlencode(form).encode(),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
            reply_key=f"reply:twilio:{sid}",
            reply_title=HOME_TITLE,
        )


@dataclass
class TelegramUser:
    """A linked Telegram user, with their conversation as the bench expects it to be."""

    user_id: int
    phone: str
    conversation_id: int | None = None
    version: int = 0
    at_menu: bool = False


class TelegramScenario:
    """Telegram users linked to registered patients, each alternating the text "00" (the menu)
    and a press of button 1 (Book) on the menu's keyboard, which opens the list of services.

    Our server's users are read back from the database before each measurement, so a press
    carries the conversation id and screen version of the keyboard it is on, even after a
    failed request. The bare server's users only pretend to move.
    """

    name = "telegram"
    expected_status = 200

    def __init__(self) -> None:
        self._update_ids = itertools.count(1)
        self._users = [
            TelegramUser(TELEGRAM_FIRST_USER_ID + index, fake_phone(index))
            for index in range(TELEGRAM_USERS)
        ]
        self._bare_users = [TelegramUser(u.user_id, u.phone) for u in self._users]

    def prepare(self, database: BenchDatabase) -> None:
        register_patients(database, TELEGRAM_USERS)
        asyncio.run(_link_telegram_users(database.url, self._users))

    def streams(self, concurrency: int, database: BenchDatabase | None) -> list[Iterator[Request]]:
        users = self._bare_users
        if database is not None:
            users = self._users
            asyncio.run(_read_conversations(database.url, users))
        return [self._walk(users[worker::concurrency]) for worker in range(concurrency)]

    def _walk(self, users: Sequence[TelegramUser]) -> Iterator[Request]:
        for user in itertools.cycle(users):
            update_id = next(self._update_ids)
            response = None
            if user.at_menu and user.conversation_id is not None:
                data = f"{user.conversation_id}:{user.version}:1"
                update = telegram_press(update_id, user.user_id, data)
                title = SERVICES_TITLE
                # The press is answered in the response, without a notice.
                response = {
                    "method": "answerCallbackQuery",
                    "callback_query_id": update["callback_query"]["id"],
                }
            else:
                update = telegram_text(update_id, user.user_id, "00")
                title = HOME_TITLE
            # Each accepted update saves the conversation once, which adds 1 to its version.
            user.version += 1
            user.at_menu = not user.at_menu if user.conversation_id is not None else True
            yield Request(
                TELEGRAM_PATH,
                json.dumps(update).encode(),
                {
                    "Content-Type": "application/json",
                    "X-Telegram-Bot-Api-Secret-Token": BENCH_TELEGRAM_SECRET,
                },
                reply_key=f"reply:telegram:{update_id}",
                reply_title=title,
                response=response,
            )


def _telegram_user(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": "Bench",
        "last_name": "Patient",
        "language_code": "en",
    }


def _telegram_chat(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "first_name": "Bench", "last_name": "Patient", "type": "private"}


def telegram_text(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": _telegram_user(user_id),
            "chat": _telegram_chat(user_id),
            "date": int(time.time()),
            "text": text,
        },
    }


def telegram_press(update_id: int, user_id: int, data: str) -> dict[str, Any]:
    """A press on a button of an earlier bot message, with the button's callback data."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(4_000_000_000_000_000_000 + update_id),
            "from": _telegram_user(user_id),
            "message": {
                "message_id": update_id,
                "from": TELEGRAM_BOT_USER,
                "chat": _telegram_chat(user_id),
                "date": int(time.time()),
                "text": HOME_TITLE,
            },
            "chat_instance": "-1000000000000000001",
            "data": data,
        },
    }


async def _link_telegram_users(url: str, users: Sequence[TelegramUser]) -> None:
    """Link each user to their patient's phone, as sharing their own contact does."""
    from bot.channels.telegram import identities
    from core.clock import SystemClock
    from core.db.database import open_database

    now = SystemClock().now()
    database = await open_database(url)
    try:
        async with database.unit_of_work() as uow:
            for user in users:
                await identities.link_phone(
                    uow, user_id=user.user_id, chat_id=user.user_id, phone=user.phone, now=now
                )
    finally:
        await database.close()


async def _read_conversations(url: str, users: Sequence[TelegramUser]) -> None:
    """Set each user's conversation id, version and screen from our server's database."""
    from core.db.database import Sql, open_database

    database = await open_database(url)
    try:
        async with database.unit_of_work() as uow:
            rows = await uow.all(Sql("SELECT phone, id, version, flow FROM conversations"))
    finally:
        await database.close()
    found = {row["phone"]: row for row in rows}
    for user in users:
        row = found.get(user.phone)
        user.conversation_id = row["id"] if row else None
        user.version = row["version"] if row else 0
        user.at_menu = bool(row and row["flow"] == "home")


async def _count_wrong_replies(url: str, accepted: Sequence[Request]) -> int:
    """Return how many accepted requests have no queued reply, or one with another title."""
    from core.db.database import Sql, open_database

    keys = {request.reply_key for request in accepted if request.reply_key}
    database = await open_database(url)
    try:
        async with database.unit_of_work() as uow:
            rows = await uow.all(
                Sql("SELECT dedupe_key, body FROM outbox_messages WHERE kind = 'reply'")
            )
    finally:
        await database.close()
    bodies = {row["dedupe_key"]: row["body"] for row in rows if row["dedupe_key"] in keys}
    return sum(
        1
        for request in accepted
        if request.reply_key
        and not str(bodies.get(request.reply_key, "")).startswith(request.reply_title)
    )


SCENARIOS = ("whatsapp", "telegram")


def build_scenario(name: str, run_tag: str) -> Scenario:
    if name == "whatsapp":
        return WhatsAppScenario(run_tag)
    if name == "telegram":
        return TelegramScenario()
    raise ValueError(f"unknown scenario {name!r}: expected one of {', '.join(SCENARIOS)}")


@dataclass
class Sample:
    requests: int
    seconds: float
    errors: int  # failed requests, and on our server accepted requests with a wrong reply
    latencies_ms: list[float] = field(repr=False)
    # The accepted requests, each with the body of its response.
    accepted: list[tuple[Request, bytes]] = field(repr=False, default_factory=list)
    wrong_replies: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load(
    base_url: str, streams: Sequence[Iterator[Request]], *, seconds: float, status: int
) -> Sample:
    """Keep one request per stream in flight for `seconds`; count each reply with `status`."""
    concurrency = len(streams)
    latencies: list[float] = []
    accepted: list[tuple[Request, bytes]] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + seconds

        async def worker(requests: Iterator[Request]) -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                request = next(requests)
                started = time.perf_counter()
                try:
                    async with session.post(
                        base_url + request.path, data=request.body, headers=request.headers
                    ) as response:
                        body = await response.read()
                        ok = response.status == status
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                    accepted.append((request, body))
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker(stream) for stream in streams))
        elapsed = time.monotonic() - started
    return Sample(len(latencies), elapsed, errors, latencies, accepted)


def check_replies(database: BenchDatabase, sample: Sample) -> None:
    """Count the accepted requests whose queued reply or response body is missing or wrong as
    errors of `sample`."""
    wrong_bodies = sum(
        1
        for request, body in sample.accepted
        if request.response is not None and _json_or_none(body) != request.response
    )
    requests = [request for request, _ in sample.accepted]
    sample.wrong_replies = wrong_bodies + asyncio.run(_count_wrong_replies(database.url, requests))
    sample.errors += sample.wrong_replies
    sample.accepted = []  # only the counts are kept


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def start_bare_server(workdir: Path) -> ServerProcess:
    port = free_port()
    server = ServerProcess(
        [sys.executable, str(BENCH_DIR / "bare_channel_server.py"), "--port", str(port)],
        port=port,
        env={"PATH": "/usr/bin:/bin"},
        cwd=workdir,
        name="bare",
    )
    server.wait_ready()
    return server


def _service_environment(database_url: str) -> dict[str, str]:
    env = service_environment(database_url)
    env.update(
        MYAFYA_TELEGRAM_BOT_TOKEN=BENCH_TELEGRAM_TOKEN,
        MYAFYA_TELEGRAM_WEBHOOK_SECRET=BENCH_TELEGRAM_SECRET,
    )
    return env


def start_provider_fakes(database: BenchDatabase) -> ServerProcess:
    """Start a second `myafya serve`, on a database of its own, whose /sandbox/ fakes serve
    the provider calls of ours, as the providers' own servers do in production."""
    fakes_database = f"sqlite:///{database.workdir / 'provider-fakes.db'}"
    return start_serve(
        database.workdir, _service_environment(fakes_database), name="provider-fakes"
    )


def start_ours(
    database: BenchDatabase, jobs: str, namespace: str, fakes: ServerProcess | None
) -> ServerProcess:
    env = _service_environment(database.url)
    if fakes is not None:
        env.update(MYAFYA_SANDBOX_URL=fakes.base_url)
    if jobs == "redis":
        env.update(MYAFYA_BROKER_URL=REDIS_URL, MYAFYA_BROKER_NAMESPACE=namespace)
    return start_serve(database.workdir, env)


def clear_redis_namespace(namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def measure(
    database: BenchDatabase, scenario: Scenario, args: argparse.Namespace
) -> dict[str, dict[int, list[Sample]]]:
    print(f"  preparing {database.dialect} database for {scenario.name}")
    seed_demo_database(database)
    scenario.prepare(database)
    namespace = f"bench-{secrets.token_hex(4)}"
    samples: dict[str, dict[int, list[Sample]]] = {
        name: {c: [] for c in CONCURRENCIES} for name in ("ours", "bare")
    }
    fakes = start_provider_fakes(database) if args.fakes == "separate" else None
    try:
        with (
            start_ours(database, args.jobs, namespace, fakes) as ours,
            start_bare_server(database.workdir) as bare,
        ):
            servers = {"ours": ours, "bare": bare}
            for name, server in servers.items():
                target = database if name == "ours" else None
                warmup = asyncio.run(
                    load(
                        server.base_url,
                        scenario.streams(16, target),
                        seconds=args.warmup,
                        status=scenario.expected_status,
                    )
                )
                if target is not None:
                    check_replies(database, warmup)
                print(f"    warm-up {name}: {warmup.requests} requests, {warmup.errors} errors")
            for rep in range(args.reps):
                order = ["bare", "ours"] if rep % 2 == 0 else ["ours", "bare"]
                for concurrency in CONCURRENCIES:
                    for name in order:
                        # Background work left over from the last measurement would slow this
                        # one down.
                        time.sleep(args.settle)
                        target = database if name == "ours" else None
                        sample = asyncio.run(
                            load(
                                servers[name].base_url,
                                scenario.streams(concurrency, target),
                                seconds=args.duration,
                                status=scenario.expected_status,
                            )
                        )
                        if target is not None:
                            check_replies(database, sample)
                        samples[name][concurrency].append(sample)
                        print(
                            f"    rep {rep + 1} {scenario.name} c={concurrency} {name}:"
                            f" {sample.rate:,.0f} req/s, p99 {sample.percentile(0.99):.1f} ms,"
                            f" {sample.errors} errors ({sample.wrong_replies} wrong replies),"
                            f" load average {load_average()}"
                        )
    finally:
        if fakes is not None:
            fakes.stop()
        if args.jobs == "redis":
            clear_redis_namespace(namespace)
    return samples


def report(scenario: Scenario, dialect: str, samples: dict[str, dict[int, list[Sample]]]) -> None:
    print(f"\n{scenario.name} on {dialect} (median of reps, min-max in brackets)\n")
    print(
        "| concurrency | ours req/s | bare req/s | ratio | ours p50 ms | ours p99 ms"
        " | bare p99 ms | errors |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for concurrency in CONCURRENCIES:
        ours = samples["ours"][concurrency]
        bare = samples["bare"][concurrency]
        ratios = [o.rate / b.rate for o, b in zip(ours, bare, strict=True) if b.rate]
        ratio = median(ratios)
        verdict = "meets" if ratio >= TARGET_RATIO else "below"
        print(
            f"| {concurrency} | {median([s.rate for s in ours]):,.0f}"
            f" ({spread([s.rate for s in ours])}) | {median([s.rate for s in bare]):,.0f}"
            f" | {ratio:.3f} ({verdict} {TARGET_RATIO}) |"
            f" {median([s.percentile(0.5) for s in ours]):.1f} |"
            f" {median([s.percentile(0.99) for s in ours]):.1f}"
            f" ({spread([s.percentile(0.99) for s in ours], '{:.1f}')}) |"
            f" {median([s.percentile(0.99) for s in bare]):.1f} |"
            f" {sum(s.errors for s in ours + bare)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--jobs", choices=("redis", "embedded"), default="redis")
    parser.add_argument(
        "--fakes",
        choices=("separate", "same"),
        default="separate",
        help="serve the provider fakes from a process of their own (default) or from ours",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measurement")
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds of pause before each measurement, for background work to finish",
    )
    args = parser.parse_args()

    print(machine_summary())
    dialects = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in dialects and not postgres_reachable(args.postgres_url):
        sys.exit(1)
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    for dialect in dialects:
        for name in names:
            scenario = build_scenario(name, secrets.token_hex(4).upper())
            with throwaway_database(dialect, args.postgres_url) as database:
                samples = measure(database, scenario, args)
            report(scenario, dialect, samples)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
