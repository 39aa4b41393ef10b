"""The `myafya` command: serve, worker, migrate, seed-demo, create-user, outbox."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import secrets
import socket
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from core.db.database import Sql
from core.notify.outbox import RequeueOutcome
from myafya.settings import Settings, SettingsError, is_loopback_url, load_settings

log = logging.getLogger("myafya")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"myafya: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _seed_demo(settings: Settings) -> dict[str, object]:
    from core.booking.demo import seed_demo
    from core.clock import SystemClock
    from core.db.database import open_database

    generated: dict[str, str] = {}

    def password_for(username: str) -> str:
        if settings.demo_password is not None:
            return settings.demo_password.get_secret_value()
        generated.setdefault("password", secrets.token_urlsafe(12))
        return generated["password"]

    database = await open_database(settings.database_url)
    try:
        async with database.unit_of_work() as uow:
            summary = await seed_demo(
                uow, now=SystemClock().now(), zone=settings.zone, password_for=password_for
            )
    finally:
        await database.close()
    if summary.get("created") and generated:
        # Shown once, on the terminal only: it is never logged or stored in clear.
        print(f"Demo staff password (shown once): {generated['password']}")
    return summary


def _self_url(host: str, port: int) -> str:
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
    if ":" in reachable and not reachable.startswith("["):
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"


def serve(host: str, port: int) -> None:
    from aiohttp import web

    from core.db.migrate import upgrade_to_head
    from myafya.app import create_app, settle_garbage_collector
    from myafya.logs import configure_logging

    settings = _settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    # Bound before anything else runs, so a busy port stops start-up before the migrations,
    # the demo data and the job system touch the database.
    try:
        listener = _listen(host, port)
    except OSError as exc:
        print(f"myafya: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(1) from None
    mode = "sandbox (loopback provider fakes)" if settings.sandbox_on else "live providers"
    log.info("starting", extra={"mode": mode, "database": settings.database_url.split(":", 1)[0]})

    upgrade_to_head(settings.database_url)
    if settings.sandbox_on:
        # Demo doctors and staff with a known password belong in the sandbox only.
        summary = asyncio.run(_seed_demo(settings))
        if summary.get("created"):
            log.info("seeded demo data", extra={"doctors": summary.get("doctors")})

    base = _self_url(host, port)
    app = create_app(settings, self_url=base)
    # After create_app's own start-up (an on_startup step appended later runs later).
    app.on_startup.append(settle_garbage_collector)

    def print_banner(_: str) -> None:
        # aiohttp calls this once the port is bound, so the banner never announces a failure.
        print(f"MyAfya is running in {mode} mode on {base}")
        if settings.sandbox_on:
            print(f"USSD simulator: {base}/simulator")
        print(
            "Try it with curl:\n"
            f"  curl -s {base}/webhooks/africastalking/ussd "
            "-d sessionId=ATUid_demo0001 "
            f"--data-urlencode serviceCode='{settings.ussd_service_code}' "
            "--data-urlencode phoneNumber=+254700000099 -d networkCode=99999 -d text="
        )
        sys.stdout.flush()

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    loop = loop_factory() if loop_factory else None
    with listener:
        web.run_app(app, sock=listener, print=print_banner, access_log=None, loop=loop)


def _listen(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on `host` and `port`; raise OSError when it is taken."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(address, family=family)


def migrate() -> None:
    from core.db.migrate import upgrade_to_head

    settings = _settings_or_exit()
    upgrade_to_head(settings.database_url)
    print("Database schema is up to date.")


def seed_demo() -> None:
    from core.db.migrate import upgrade_to_head

    settings = _settings_or_exit()
    upgrade_to_head(settings.database_url)
    summary = asyncio.run(_seed_demo(settings))
    if summary.get("created"):
        print("Seeded demo data.")
    else:
        print("The database already has a clinic; nothing seeded.")


async def _create_user(
    settings: Settings, role: str, username: str, password: str, links: dict[str, int | None]
) -> int:
    from core.clock import SystemClock
    from core.db.database import open_database
    from core.identity.staff import StaffRole, create_staff_user

    database = await open_database(settings.database_url)
    try:
        async with database.unit_of_work() as uow:
            for link, value in links.items():
                if value is not None and not await uow.scalar(LINK_EXISTS[link], id=value):
                    raise ValueError(f"no {LINK_TABLES[link]} record has id {value}")
            return await create_staff_user(
                uow,
                username=username,
                password=password,
                role=StaffRole(role),
                now=SystemClock().now(),
                **links,
            )
    finally:
        await database.close()


LINK_TABLES = {"doctor_id": "doctors", "pharmacy_id": "pharmacies", "lab_id": "labs"}
LINK_EXISTS = {
    link: Sql(f"SELECT 1 FROM {table} WHERE id = :id")  # noqa: S608  # fixed table names
    for link, table in LINK_TABLES.items()
}
# The record each role works for; its id is required when creating such a user.
ROLE_LINKS = {"doctor": "doctor_id", "pharmacist": "pharmacy_id", "lab_technician": "lab_id"}


def create_user(role: str, username: str, links: dict[str, int | None]) -> None:
    from core.db.migrate import upgrade_to_head
    from core.errors import DomainError

    required = ROLE_LINKS.get(role)
    if required is not None and links.get(required) is None:
        option = "--" + required.replace("_", "-")
        print(f"myafya: a {role} user needs {option} (the id it works for)", file=sys.stderr)
        raise SystemExit(2)
    settings = _settings_or_exit()
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    upgrade_to_head(settings.database_url)
    try:
        user_id = asyncio.run(_create_user(settings, role, username, password, links))
    except (DomainError, ValueError) as exc:
        print(f"myafya: cannot create user {username!r}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"Created {role} user {username!r} (id {user_id}).")


def worker(processes: int, threads: int, run_scheduler: bool) -> None:
    from core.clock import SystemClock
    from core.db.migrate import upgrade_to_head
    from jobs.worker import run_worker_process, supervise
    from myafya.app import jobs_config
    from myafya.logs import configure_logging

    settings = _settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    if not settings.broker_url:
        print(
            "myafya: MYAFYA_BROKER_URL is not set; set it to redis://… or amqp://… for "
            "separate workers (without it, myafya serve runs the worker itself)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    fakes_url = settings.fakes_url(settings.public_url)
    if settings.sandbox_on and not is_loopback_url(fakes_url):
        host = urlsplit(fakes_url).hostname
        print(
            "myafya: with the sandbox on, the worker sends to the provider fakes of myafya serve"
            f" at MYAFYA_PUBLIC_URL, which must be a loopback address; got host {host!r}."
            " Set MYAFYA_SANDBOX_URL to http://127.0.0.1:PORT of that server, or turn the"
            " sandbox off",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if processes > 1:
        raise SystemExit(supervise(processes, threads, run_scheduler=run_scheduler))
    upgrade_to_head(settings.database_url)
    config = jobs_config(settings, fakes_url=fakes_url, worker_threads=threads)
    # NOTE: `POST /sandbox/clock` moves the clock of the `myafya serve` process only. Separate
    # workers keep the wall clock, so after a jump they skip rows that are not yet due on it.
    # The scheduler hands such rows over again later. Demonstrate reminders with the embedded
    # worker instead.
    run_worker_process(config, clock=SystemClock(), run_scheduler=run_scheduler)


def _mask_phone(phone: str) -> str:
    """Keep the country code and the last two digits, so an operator can tell rows apart."""
    return phone[:4] + "*" * max(len(phone) - 6, 0) + phone[-2:]


async def _outbox_report(settings: Settings, requeue: int | None) -> int:
    from core.clock import SystemClock
    from core.db.database import open_database
    from core.notify.outbox import count_by_status, count_handed_on, list_failed, requeue_failed

    database = await open_database(settings.database_url)
    try:
        async with database.unit_of_work() as uow:
            if requeue is not None:
                outcome, reason = await requeue_failed(
                    uow, message_id=requeue, now=SystemClock().now()
                )
                if outcome is not RequeueOutcome.REQUEUED:
                    rejection = _requeue_rejection(requeue, outcome, reason)
                    print(f"myafya: {rejection}", file=sys.stderr)
                    return 1
                print(f"Requeued outbox message {requeue}; it is due now.")
                return 0
            counts = await count_by_status(uow)
            failed = await list_failed(uow)
            handed_on = await count_handed_on(uow)
    finally:
        await database.close()
    print("status      count")
    for status, count in counts.items():
        print(f"{status:<11} {count:>5}")
    if failed:
        print("\nfailed messages (newest first; requeue with `myafya outbox --requeue ID`):")
        for message in failed:
            print(
                f"  {message.id:>6}  {_mask_phone(message.recipient)}  {message.kind or '-'}"
                f"  attempts {message.attempts}  {message.updated_at:%Y-%m-%d %H:%M}Z"
                f"  {message.provider_status or '-'}: {message.last_error or '-'}"
            )
    if handed_on:
        print(
            f"\n{handed_on} failed WhatsApp messages are not listed: each was queued again as a"
            " template or an SMS, which is listed if it failed too."
        )
    return 0


def _requeue_rejection(message_id: int, outcome: RequeueOutcome, reason: str | None) -> str:
    """Return why `myafya outbox --requeue` did not requeue the row, and what to do instead."""
    match outcome:
        case RequeueOutcome.NOT_FOUND:
            return f"outbox message {message_id} not found"
        case RequeueOutcome.NOT_FAILED:
            return (
                f"outbox message {message_id} is not failed; only failed messages can be requeued"
            )
        case RequeueOutcome.REPLY:
            return (
                f"outbox message {message_id} is a chat reply and is not requeued: it answered"
                " a screen of the conversation at that moment, and the patient gets the current"
                " screen with their next message"
            )
    return (
        f"outbox message {message_id} was not requeued because another row took it over"
        f" ({reason}); requeue that row if it failed"
    )


def outbox(requeue: int | None) -> None:
    from core.db.migrate import upgrade_to_head

    settings = _settings_or_exit()
    upgrade_to_head(settings.database_url)
    raise SystemExit(asyncio.run(_outbox_report(settings, requeue)))


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {number}")
    return number


def tcp_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {raw!r}: expected a number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port}: expected 1 to 65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="myafya", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the web service")
    serve_parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    serve_parser.add_argument("--port", type=tcp_port, default=DEFAULT_PORT, help="TCP port")

    worker_parser = commands.add_parser(
        "worker", help="send outbox messages from MYAFYA_BROKER_URL's queue"
    )
    worker_parser.add_argument(
        "--processes", type=_positive, default=1, help="worker processes (default 1)"
    )
    worker_parser.add_argument(
        "--threads", type=_positive, default=8, help="worker threads per process (default 8)"
    )
    worker_parser.add_argument(
        "--no-scheduler",
        dest="scheduler",
        action="store_false",
        help="only consume jobs; another process hands due messages to the broker",
    )

    outbox_parser = commands.add_parser(
        "outbox", help="show outbox counts by status and the failed messages"
    )
    outbox_parser.add_argument(
        "--requeue", type=int, metavar="ID", help="queue a failed message again, due now"
    )

    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed-demo", help="add demo clinic, doctors and staff to an empty database")

    user_parser = commands.add_parser("create-user", help="add a staff user; password on stdin")
    user_parser.add_argument(
        "--role", required=True, choices=["doctor", "lab_technician", "pharmacist", "admin"]
    )
    user_parser.add_argument("--username", required=True)
    user_parser.add_argument("--doctor-id", type=int, help="doctor record of a doctor user")
    user_parser.add_argument("--pharmacy-id", type=int, help="pharmacy of a pharmacist user")
    user_parser.add_argument("--lab-id", type=int, help="lab of a lab technician user")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    match args.command:
        case "serve":
            serve(args.host, args.port)
        case "worker":
            worker(args.processes, args.threads, args.scheduler)
        case "outbox":
            outbox(args.requeue)
        case "migrate":
            migrate()
        case "seed-demo":
            seed_demo()
        case "create-user":
            links = {
                "doctor_id": args.doctor_id,
                "pharmacy_id": args.pharmacy_id,
                "lab_id": args.lab_id,
            }
            create_user(args.role, args.username, links)
