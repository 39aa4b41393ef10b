"""Tables of the service, one SQLAlchemy MetaData shared by the migrations and the data path.

Datetimes are stored in UTC: `timestamptz` on PostgreSQL, ISO text on SQLite.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# Appointment statuses that occupy their slot. The partial unique index below and the booking
# service's ON CONFLICT clause must name the same set.
LIVE_APPOINTMENT_STATUSES = ("held", "booked")
LIVE_STATUS_SQL = "status IN ('held', 'booked')"


def _utc(name: str, **kwargs: object) -> Column:  # type: ignore[type-arg]
    return Column(name, DateTime(timezone=True), **kwargs)  # type: ignore[arg-type]


patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("phone", String(20), nullable=False, unique=True),
    Column("name", String(120)),
    Column("language", String(2)),
    _utc("consented_at"),
    _utc("created_at", nullable=False),
)

staff_users = Table(
    "staff_users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False),
    Column("doctor_id", Integer, ForeignKey("doctors.id")),
    Column("pharmacy_id", Integer, ForeignKey("pharmacies.id")),
    Column("lab_id", Integer, ForeignKey("labs.id")),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _utc("created_at", nullable=False),
    CheckConstraint("role IN ('doctor', 'lab_technician', 'pharmacist', 'admin')", name="role"),
)

clinics = Table(
    "clinics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("timezone", String(64), nullable=False),
)

pharmacies = Table(
    "pharmacies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("location", String(120), nullable=False),
    Column("phone", String(20)),
)

labs = Table(
    "labs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("location", String(120), nullable=False),
    Column("phone", String(20)),
)

specialties = Table(
    "specialties",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("name_en", String(80), nullable=False),
    Column("name_sw", String(80), nullable=False),
    Column("position", Integer, nullable=False, server_default=text("0")),
)

doctors = Table(
    "doctors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("clinic_id", Integer, ForeignKey("clinics.id"), nullable=False),
    Column("specialty_id", Integer, ForeignKey("specialties.id"), nullable=False),
    Column("name", String(120), nullable=False),
    Column("fee_kes", Integer, nullable=False),
    Column("slot_minutes", Integer, nullable=False, server_default=text("30")),
    # Time zone the weekly schedule is written in; NULL means the clinic's.
    Column("timezone", String(64)),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    CheckConstraint("fee_kes >= 0", name="fee_not_negative"),
    CheckConstraint("slot_minutes BETWEEN 5 AND 240", name="slot_minutes_range"),
)

weekly_schedules = Table(
    "weekly_schedules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("doctor_id", Integer, ForeignKey("doctors.id"), nullable=False),
    Column("weekday", Integer, nullable=False),  # 0 = Monday, as in datetime.weekday()
    Column("starts", String(5), nullable=False),  # HH:MM local time
    Column("ends", String(5), nullable=False),
    CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
    CheckConstraint("starts < ends", name="window_order"),
)

schedule_exceptions = Table(
    "schedule_exceptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("doctor_id", Integer, ForeignKey("doctors.id"), nullable=False),
    Column("on_date", Date, nullable=False),
    # available = false with no times: the whole day off; with times: that window blocked.
    # available = true with times: extra hours on that date.
    Column("available", Boolean, nullable=False),
    Column("starts", String(5)),
    Column("ends", String(5)),
    Column("reason", String(120)),
    CheckConstraint("(starts IS NULL) = (ends IS NULL)", name="window_pair"),
)

slots = Table(
    "slots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("doctor_id", Integer, ForeignKey("doctors.id"), nullable=False),
    _utc("starts_at", nullable=False),
    _utc("ends_at", nullable=False),
    UniqueConstraint("doctor_id", "starts_at", name="uq_slots_doctor_start"),
)

appointments = Table(
    "appointments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("reference", String(16), nullable=False, unique=True),
    Column("patient_id", Integer, ForeignKey("patients.id"), nullable=False),
    Column("doctor_id", Integer, ForeignKey("doctors.id"), nullable=False),
    Column("slot_id", Integer, ForeignKey("slots.id"), nullable=False),
    _utc("starts_at", nullable=False),
    Column("status", String(12), nullable=False),
    Column("channel", String(20), nullable=False),
    _utc("hold_expires_at"),
    _utc("created_at", nullable=False),
    _utc("updated_at", nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    CheckConstraint(
        "status IN ('held', 'booked', 'cancelled', 'completed', 'no_show')", name="status"
    ),
    # At most one live appointment per slot, on SQLite and PostgreSQL alike.
    Index(
        "uq_appointments_live_slot",
        "slot_id",
        unique=True,
        sqlite_where=text(LIVE_STATUS_SQL),
        postgresql_where=text(LIVE_STATUS_SQL),
    ),
    Index("ix_appointments_patient_starts", "patient_id", "starts_at"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("phone", String(20), nullable=False, unique=True),
    Column("patient_id", Integer, ForeignKey("patients.id")),
    Column("language", String(2)),
    Column("flow", String(40), nullable=False),
    Column("state", String(40), nullable=False),
    Column("data", Text, nullable=False),  # JSON object collected by the current flow
    Column("back_stack", Text, nullable=False),  # JSON list of [flow, state] pairs
    Column("channel", String(20), nullable=False),
    # Channel session (USSD sessionId) and the input already applied in it.
    Column("session_id", String(100)),
    Column("session_input", Text),
    Column("last_reply", Text),
    Column("last_reply_end", Boolean, nullable=False, server_default=text("false")),
    Column("version", Integer, nullable=False),
    _utc("expires_at"),
    _utc("created_at", nullable=False),
    _utc("updated_at", nullable=False),
)

ussd_session_events = Table(
    "ussd_session_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", String(100), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("network_code", String(10)),
    Column("hops", Integer),
    Column("duration_ms", Integer),
    Column("cost", String(20)),
    Column("error_message", Text),
    _utc("ended_at"),
    _utc("received_at", nullable=False),
)

outbox_messages = Table(
    "outbox_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    # Makes a second write of the same logical message a no-op, e.g. "booking:42:confirmation".
    Column("dedupe_key", String(120), nullable=False, unique=True),
    Column("patient_id", Integer, ForeignKey("patients.id")),
    Column("recipient", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("template", String(80), nullable=False),
    Column("variables", Text, nullable=False),  # JSON object
    Column("language", String(2), nullable=False),
    Column("body", Text, nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("5")),
    _utc("not_before", nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("provider_message_id", String(100)),
    Column("provider_status", String(40)),
    Column("last_error", Text),
    _utc("created_at", nullable=False),
    _utc("updated_at", nullable=False),
    _utc("sent_at"),
    # Added in revision 0002 for the delivery pipeline and reminders.
    Column("kind", String(40)),  # e.g. "booked", "reminder"; see core.notify.policy
    Column("appointment_id", Integer, ForeignKey("appointments.id")),
    # The appointment start a reminder announces; the sender skips it when the start changed.
    _utc("appointment_starts_at"),
    Column("status_reason", String(60)),  # why a row is suppressed, expired or failed
    _utc("enqueued_at"),  # last hand-over to the broker; NULL while not handed over
    _utc("lease_expires_at"),  # while `sending`: when the row counts as abandoned
    _utc("delivered_at"),
    # Added in revision 0004. The provider that sends the row where a channel has several, e.g.
    # "twilio" for an SMS reply to our Twilio number; NULL sends through the channel's default.
    Column("provider", String(20)),
    # Rows with the same key are sent one at a time, in id order; NULL rows are not ordered.
    Column("ordering_key", String(80)),
    CheckConstraint(
        "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'suppressed', 'expired')",
        name="status",
    ),
    Index("ix_outbox_messages_status_not_before", "status", "not_before"),
    Index("ix_outbox_messages_provider_message_id", "provider_message_id"),
    Index("ix_outbox_messages_appointment_id", "appointment_id"),
    Index("ix_outbox_messages_ordering_key", "ordering_key", "id"),
)

# Opt-outs from non-essential messages. `scope` is "all" for the whole number, or
# "patient:<id>" to mute one patient's reminders on a phone that several patients share.
opt_outs = Table(
    "opt_outs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("phone", String(20), nullable=False),
    Column("scope", String(40), nullable=False),
    Column("patient_id", Integer, ForeignKey("patients.id")),
    Column("source", String(40), nullable=False),  # e.g. "sms:STOP"
    _utc("created_at", nullable=False),
    UniqueConstraint("phone", "scope", name="uq_opt_outs_phone_scope"),
)

# Provider delivery reports as received. The unique key makes a repeated report a no-op.
delivery_reports = Table(
    "delivery_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(20), nullable=False),
    Column("provider_message_id", String(100), nullable=False),
    Column("provider_status", String(40), nullable=False),
    Column("failure_reason", String(80)),
    Column("outbox_message_id", Integer, ForeignKey("outbox_messages.id")),
    _utc("received_at", nullable=False),
    UniqueConstraint(
        "provider_message_id",
        "provider",
        "provider_status",
        name="uq_delivery_reports_provider_message_status",
    ),
)

# Inbound provider messages already applied (WhatsApp MessageSid, Telegram update_id, Africa's
# Talking SMS id). The insert happens in the transaction that applies the message, so a retry
# or a concurrent copy finds the row and changes nothing.
inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(20), nullable=False),
    Column("provider_message_id", String(100), nullable=False),
    Column("channel", String(20), nullable=False),
    _utc("received_at", nullable=False),
    UniqueConstraint(
        "provider", "provider_message_id", name="uq_inbound_messages_provider_message"
    ),
    Index("ix_inbound_messages_received_at", "received_at"),
)

# A patient's address on a chat channel: a WhatsApp number, a Telegram user (whose phone is
# known only once they share their contact). `last_inbound_at` drives WhatsApp's 24-hour window.
channel_identities = Table(
    "channel_identities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(20), nullable=False),
    Column("address", String(64), nullable=False),
    Column("phone", String(20)),
    Column("chat_id", String(64)),
    _utc("last_inbound_at"),
    _utc("created_at", nullable=False),
    UniqueConstraint("channel", "address", name="uq_channel_identities_channel_address"),
    Index("ix_channel_identities_phone", "phone"),
)

# Twilio Content API resources the WhatsApp sender created for interactive replies, one per
# account and `content_key` (shape, option count, language and a hash of the definition), so
# each is created once rather than once per message.
whatsapp_contents = Table(
    "whatsapp_contents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("account_sid", String(34), nullable=False),
    Column("content_key", String(100), nullable=False),
    Column("content_sid", String(34), nullable=False),
    _utc("created_at", nullable=False),
    UniqueConstraint("account_sid", "content_key", name="uq_whatsapp_contents_account_key"),
)
