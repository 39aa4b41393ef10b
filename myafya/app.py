"""The composition root: the only place that picks concrete adapters and wires the routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.channels.sms.africastalking import AfricasTalkingSmsSender
from bot.channels.sms.delivery_reports import AfricasTalkingDeliveryReports
from bot.channels.sms.inbound import AfricasTalkingInboundSms
from bot.channels.ussd.webhook import UssdWebhook
from bot.channels.whatsapp.contents import DatabaseContentStore
from bot.channels.whatsapp.sender import TwilioSender
from bot.channels.whatsapp.signature import TwilioSignatureCheck
from bot.channels.whatsapp.webhook import TwilioWebhooks
from bot.engine.host import ConversationHost, HostConfig
from bot.flows import FLOWS
from core.booking.schedules import extend_all_slots
from core.clock import Clock, SystemClock
from core.db.database import open_database
from core.notify.dispatch import BlockingSender, OutboxDispatcher
from core.notify.outbox import count_by_status
from core.notify.statuses import TWILIO
from jobs.system import JobsConfig, JobSystem
from myafya.metrics import CONTENT_TYPE_LATEST, Metrics
from myafya.settings import SANDBOX_AT_WEBHOOK_SECRET, Settings
from myafya.telegram_channel import (
    add_telegram_fake,
    add_telegram_routes,
    build_telegram_sender,
    start_telegram,
    stop_telegram,
)
from sandbox.app import add_sandbox_routes
from sandbox.store import SandboxStore

log = logging.getLogger(__name__)

SLOT_REFRESH_SECONDS = 3600


@dataclass
class Services:
    """Everything the routes share, built at start-up and closed at shutdown."""

    settings: Settings
    clock: Clock
    database: object
    host: ConversationHost
    dispatcher: OutboxDispatcher
    metrics: Metrics
    sandbox_store: SandboxStore | None
    jobs: JobSystem | None = None


SERVICES = web.AppKey("services", Services)
USSD_WEBHOOK = web.AppKey("ussd_webhook", UssdWebhook)
SMS_DELIVERY_REPORTS = web.AppKey("sms_delivery_reports", AfricasTalkingDeliveryReports)
SMS_INBOUND = web.AppKey("sms_inbound", AfricasTalkingInboundSms)
TWILIO_WEBHOOKS = web.AppKey("twilio_webhooks", TwilioWebhooks)
TWILIO_STATUS_PATH = "/webhooks/twilio/status"


def host_config(settings: Settings) -> HostConfig:
    return HostConfig(
        zone=settings.zone,
        booking_lead=timedelta(minutes=settings.booking_lead_minutes),
        booking_horizon_days=settings.booking_horizon_days,
        change_cutoff=timedelta(hours=settings.change_cutoff_hours),
        inactivity_timeout=timedelta(minutes=settings.conversation_timeout_minutes),
        ussd_service_code=settings.ussd_service_code,
        delivery=settings.delivery_policy,
    )


# Worker threads of the embedded job system inside `myafya serve`. SQLite takes one writer at a
# time, and a send spends most of its time waiting on the provider, so a few threads suffice.
EMBEDDED_WORKER_THREADS = 4

# How often a thread of the web process checkpoints the SQLite WAL, so commits on the event loop
# never do. The WAL then grows by about half a second of writes between checkpoints.
SQLITE_CHECKPOINT_SECONDS = 0.5


def jobs_config(settings: Settings, *, fakes_url: str, worker_threads: int) -> JobsConfig:
    """Describe the job system; with the sandbox on, senders call the fakes at `fakes_url`.

    Africa's Talking is the default SMS sender. Twilio sends the SMS rows whose provider is
    `twilio` (replies to our Twilio number) when `MYAFYA_TWILIO_SMS_FROM` is set; without it
    those rows go out through Africa's Talking too.
    """
    username, api_key = settings.at_credentials
    base_url = f"{fakes_url}/sandbox/africastalking" if settings.sandbox_on else None
    if settings.twilio_credentials is not None and settings.twilio_sms_sender is None:
        log.info(
            "MYAFYA_TWILIO_SMS_FROM is not set, so replies to SMS that came through Twilio"
            " go out through Africa's Talking"
        )

    def build_senders() -> dict[str, BlockingSender]:
        sms = AfricasTalkingSmsSender(
            username=username,
            api_key=api_key,
            sender_id=settings.at_sender_id,
            base_url=base_url,
        )
        senders: dict[str, BlockingSender] = {"sms": sms}
        twilio = twilio_sender(settings, fakes_url=fakes_url)
        if twilio is not None and settings.whatsapp_from is not None:
            senders["whatsapp"] = twilio
        if twilio is not None and settings.twilio_sms_sender is not None:
            senders[f"sms:{TWILIO}"] = twilio
        telegram = build_telegram_sender(settings, fakes_url)
        if telegram is not None:
            senders["telegram"] = telegram
        return senders

    return JobsConfig(
        database_url=settings.database_url,
        broker_url=settings.broker_url,
        broker_namespace=settings.broker_namespace,
        policy=settings.delivery_policy,
        worker_threads=worker_threads,
        build_senders=build_senders,
    )


def twilio_sender(settings: Settings, *, fakes_url: str) -> TwilioSender | None:
    """Build the Twilio sender, pointed at this server's fake when the sandbox is on; None when
    Twilio is not configured or has neither a WhatsApp nor an SMS number."""
    credentials = settings.twilio_credentials
    if credentials is None or (
        settings.whatsapp_from is None and settings.twilio_sms_sender is None
    ):
        return None
    account_sid, auth_token = credentials
    return TwilioSender(
        account_sid=account_sid,
        auth_token=auth_token,
        whatsapp_from=settings.whatsapp_from,
        sms_from=settings.twilio_sms_sender,
        templates=settings.whatsapp_templates,
        status_callback_url=f"{settings.public_url}{TWILIO_STATUS_PATH}",
        base_url=f"{fakes_url}/sandbox/twilio" if settings.sandbox_on else None,
        content_store=DatabaseContentStore(settings.database_url),
    )


# Young-generation threshold of the garbage collector in `myafya serve` (CPython's default is
# 700). The objects of the requests in flight alone pass 700 allocations, so at the default a
# young collection ran every few steps, and promoted those objects to older generations, which
# then triggered full collections.
GC_YOUNG_THRESHOLD = 5000


async def settle_garbage_collector(app: web.Application) -> None:
    """Tune the garbage collector for serving, once start-up has finished.

    A full collection walks every object the collector tracks, and after start-up that is about
    150,000 objects of imported modules and caches, which never become garbage: ~60 ms per
    collection on the event loop, where every request waits for it. gc.freeze() moves them to
    a generation the collector never walks. Measured with gc.callbacks while bench/ussd.py's walk
    ran at 64 sessions for 5 s: without this function, 9 full collections took 0.54 s and 1,170
    young ones 0.25 s. With it, 8 young collections took 5 ms and no full one ran.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)


def create_app(
    settings: Settings,
    *,
    self_url: str,
    clock: Clock | None = None,
    sandbox_store: SandboxStore | None = None,
) -> web.Application:
    """Build the web application; `self_url` is where this server listens, for the sandbox."""
    clock = clock or SystemClock()
    app = web.Application()
    metrics = Metrics()
    store = (sandbox_store or SandboxStore()) if settings.sandbox_on else None

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        database = await open_database(
            settings.database_url, checkpoint_interval_seconds=SQLITE_CHECKPOINT_SECONDS
        )
        fakes_url = settings.fakes_url(self_url)
        config = jobs_config(settings, fakes_url=fakes_url, worker_threads=EMBEDDED_WORKER_THREADS)
        # Embedded: a dramatiq worker and the scheduler run here. With a broker URL they run in
        # `myafya worker`, and this process only enqueues.
        jobs = JobSystem(config, database=database, clock=clock, run_worker=config.embedded)
        jobs.start(run_scheduler=config.embedded)
        dispatcher: OutboxDispatcher = jobs.dispatcher
        host = ConversationHost(
            database=database,
            clock=clock,
            config=host_config(settings),
            flows=FLOWS,
            dispatcher=dispatcher,
        )
        app[SERVICES] = Services(
            settings, clock, database, host, dispatcher, metrics, store, jobs=jobs
        )
        ussd = UssdWebhook(
            host=host, clock=clock, metrics=metrics, allowed_networks=settings.at_networks
        )
        app[USSD_WEBHOOK] = ussd
        app[SMS_DELIVERY_REPORTS] = AfricasTalkingDeliveryReports(
            secret=settings.at_webhook_path_secret, clock=clock, database=database
        )
        app[SMS_INBOUND] = AfricasTalkingInboundSms(
            host=host,
            secret=settings.at_webhook_path_secret,
            allowed_networks=settings.at_networks,
            metrics=metrics,
        )
        credentials = settings.twilio_credentials
        app[TWILIO_WEBHOOKS] = TwilioWebhooks(
            host=host,
            signature=TwilioSignatureCheck(
                auth_token=credentials[1] if credentials else None,
                public_url=settings.public_url,
                trusted_proxies=settings.trusted_proxy_networks,
            ),
            policy=settings.delivery_policy,
            metrics=metrics,
            dispatcher=dispatcher,
        )
        start_telegram(app, settings=settings, host=host, metrics=metrics, fakes_url=fakes_url)
        if settings.sandbox_on and not settings.at_webhook_secret:
            log.info(
                "Africa's Talking inbound SMS URL with the sandbox placeholder secret: "
                "%s/webhooks/africastalking/sms/%s",
                self_url,
                SANDBOX_AT_WEBHOOK_SECRET,
            )
        slot_keeper = asyncio.get_running_loop().create_task(
            keep_slots_ahead(database, clock, settings)
        )
        yield
        slot_keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slot_keeper
        await stop_telegram(app)
        await jobs.stop()
        await database.close()

    app.cleanup_ctx.append(lifecycle)

    async def ussd_step(request: web.Request) -> web.StreamResponse:
        return await request.app[USSD_WEBHOOK].handle_step(request)

    async def ussd_events(request: web.Request) -> web.StreamResponse:
        return await request.app[USSD_WEBHOOK].handle_session_end(request)

    async def sms_delivery_report(request: web.Request) -> web.StreamResponse:
        return await request.app[SMS_DELIVERY_REPORTS].handle(request)

    async def sms_inbound_with_secret(request: web.Request) -> web.StreamResponse:
        return await request.app[SMS_INBOUND].handle_with_secret(request)

    async def sms_inbound_from_network(request: web.Request) -> web.StreamResponse:
        return await request.app[SMS_INBOUND].handle_from_network(request)

    async def twilio_whatsapp(request: web.Request) -> web.StreamResponse:
        return await request.app[TWILIO_WEBHOOKS].handle_whatsapp(request)

    async def twilio_sms(request: web.Request) -> web.StreamResponse:
        return await request.app[TWILIO_WEBHOOKS].handle_sms(request)

    async def twilio_status(request: web.Request) -> web.StreamResponse:
        return await request.app[TWILIO_WEBHOOKS].handle_status(request)

    app.router.add_post("/webhooks/africastalking/ussd", ussd_step)
    app.router.add_post("/webhooks/twilio/whatsapp", twilio_whatsapp)
    app.router.add_post("/webhooks/twilio/sms", twilio_sms)
    app.router.add_post(TWILIO_STATUS_PATH, twilio_status)
    add_telegram_routes(app)
    app.router.add_post("/webhooks/africastalking/ussd/events", ussd_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_post("/webhooks/africastalking/sms/delivery/{secret}", sms_delivery_report)
    app.router.add_post("/webhooks/africastalking/sms", sms_inbound_from_network)
    app.router.add_post("/webhooks/africastalking/sms/{secret}", sms_inbound_with_secret)

    if settings.sandbox_on:
        assert store is not None
        username, api_key = settings.at_credentials
        add_sandbox_routes(
            app,
            store=store,
            clock=clock,
            at_username=username,
            at_api_key=api_key,
            at_sender_ids=frozenset({settings.at_sender_id})
            if settings.at_sender_id
            else frozenset(),
            claim_due_work=lambda: claim_due_work(app),
            twilio_account=settings.twilio_credentials,
            twilio_templates=settings.whatsapp_templates.values(),
            self_url=self_url,
        )
        add_telegram_fake(app, settings=settings, store=store, clock=clock)
        from myafya.simulator.routes import add_simulator_routes, chat_credentials

        add_simulator_routes(
            app, service_code=settings.ussd_service_code, chats=chat_credentials(settings)
        )
    return app


async def keep_slots_ahead(database: Any, clock: Clock, settings: Settings) -> None:
    """Generate slots for the booking horizon at start-up and then every hour, so a service
    that runs for weeks keeps offering days ahead. Generation is idempotent."""
    while True:
        try:
            async with database.unit_of_work() as uow:
                result = await extend_all_slots(
                    uow,
                    now=clock.now(),
                    days=settings.booking_horizon_days,
                    clinic_zone=settings.zone,
                )
            # `created` is a LogRecord attribute, and logging raises KeyError for such a key.
            log.info(
                "slots extended",
                extra={"slots_created": result.created, "slots_deleted": result.deleted},
            )
        except Exception:
            log.exception("extending slots failed; retrying in an hour")
        await asyncio.sleep(SLOT_REFRESH_SECONDS)


async def claim_due_work(app: web.Application) -> int:
    """Hand the outbox rows due now to the broker; the sandbox clock calls it after a jump."""
    jobs = app[SERVICES].jobs
    return 0 if jobs is None else await jobs.scheduler.tick()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        await services.database.ping()  # type: ignore[attr-defined]
    except Exception as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ready", "database": "ok"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        async with services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
            services.metrics.set_outbox_counts(await count_by_status(uow))
    except Exception as exc:
        log.warning("reading outbox counts for /metrics failed: %s", type(exc).__name__)
    body = services.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
