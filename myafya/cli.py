"""The `myafya` command: serve, migrate, seed-demo, create-user."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import secrets
import sys
from collections.abc import Sequence

from myafya.settings import Settings, SettingsError, load_settings

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
    from myafya.app import create_app
    from myafya.logs import configure_logging

    settings = _settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    mode = "sandbox (loopback provider fakes)" if settings.sandbox_on else "live providers"
    log.info("starting", extra={"mode": mode, "database": settings.database_url.split(":", 1)[0]})

    upgrade_to_head(settings.database_url)
    summary = asyncio.run(_seed_demo(settings))
    if summary.get("created"):
        log.info("seeded demo data", extra={"doctors": summary.get("doctors")})

    base = _self_url(host, port)
    app = create_app(settings, self_url=base)
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
    web.run_app(app, host=host, port=port, print=None, access_log=None, loop=loop)


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


async def _create_user(settings: Settings, role: str, username: str, password: str) -> int:
    from core.clock import SystemClock
    from core.db.database import open_database
    from core.identity.staff import StaffRole, create_staff_user

    database = await open_database(settings.database_url)
    try:
        async with database.unit_of_work() as uow:
            return await create_staff_user(
                uow,
                username=username,
                password=password,
                role=StaffRole(role),
                now=SystemClock().now(),
            )
    finally:
        await database.close()


def create_user(role: str, username: str) -> None:
    from core.db.migrate import upgrade_to_head
    from core.errors import DomainError

    settings = _settings_or_exit()
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    upgrade_to_head(settings.database_url)
    try:
        user_id = asyncio.run(_create_user(settings, role, username, password))
    except DomainError as exc:
        print(f"myafya: cannot create user {username!r}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"Created {role} user {username!r} (id {user_id}).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="myafya", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the web service")
    serve_parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port")

    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("seed-demo", help="add demo clinic, doctors and staff to an empty database")

    user_parser = commands.add_parser("create-user", help="add a staff user; password on stdin")
    user_parser.add_argument(
        "--role", required=True, choices=["doctor", "lab_technician", "pharmacist", "admin"]
    )
    user_parser.add_argument("--username", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    match args.command:
        case "serve":
            serve(args.host, args.port)
        case "migrate":
            migrate()
        case "seed-demo":
            seed_demo()
        case "create-user":
            create_user(args.role, args.username)
