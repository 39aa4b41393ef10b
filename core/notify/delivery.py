"""Provider delivery reports applied to outbox rows.

Each report is stored once, keyed on (provider message id, provider, provider status), so a
repeated callback changes nothing. A report can arrive before the send that it reports on is
recorded. It then waits in `delivery_reports` until `apply_stored_reports` applies it.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime

from core.db.database import Sql, UnitOfWork
from core.notify.outbox import MessageStatus
from core.notify.statuses import STATUS_RANK, map_provider_status, moves_forward

log = logging.getLogger(__name__)


class ReportOutcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"  # the row is already at this status or further along
    UNMATCHED = "unmatched"  # no sent row has this provider id yet
    UNKNOWN_STATUS = "unknown_status"


_INSERT_REPORT = Sql(
    """
    INSERT INTO delivery_reports (
        provider, provider_message_id, provider_status, failure_reason, received_at
    ) VALUES (:provider, :provider_message_id, :provider_status, :failure_reason, :now)
    ON CONFLICT (provider_message_id, provider, provider_status) DO NOTHING
    RETURNING id
    """
)
_FIND_MESSAGE = Sql(
    "SELECT id, status FROM outbox_messages WHERE provider_message_id = :provider_message_id"
    " ORDER BY id LIMIT 1{for_update}"
)
_LINK_REPORT = Sql("UPDATE delivery_reports SET outbox_message_id = :message_id WHERE id = :id")
_SELECT_REPORTS = Sql(
    "SELECT id, provider, provider_status, failure_reason FROM delivery_reports"
    " WHERE provider_message_id = :provider_message_id ORDER BY id"
)
_ADVANCE = Sql(
    """
    UPDATE outbox_messages
    SET status = :status, provider_status = :provider_status,
        delivered_at = COALESCE(:delivered_at, delivered_at),
        last_error = COALESCE(:failure_reason, last_error),
        status_reason = COALESCE(:reason, status_reason),
        updated_at = :now
    WHERE id = :id AND status = :current
    """
)


async def record_delivery_report(
    uow: UnitOfWork,
    *,
    provider: str,
    provider_message_id: str,
    provider_status: str,
    failure_reason: str | None,
    now: datetime,
) -> ReportOutcome:
    """Store one delivery report and move its outbox row forward if the report is newer."""
    status = map_provider_status(provider, provider_status)
    if status is None:
        log.warning("delivery report with unknown status %r from %s", provider_status, provider)
        return ReportOutcome.UNKNOWN_STATUS
    report_id = await uow.scalar(
        _INSERT_REPORT,
        provider=provider,
        provider_message_id=provider_message_id,
        provider_status=provider_status,
        failure_reason=failure_reason,
        now=now,
    )
    if report_id is None:
        return ReportOutcome.DUPLICATE
    row = await uow.one(_FIND_MESSAGE, provider_message_id=provider_message_id)
    if row is None:
        log.info("delivery report for unknown provider message id from %s", provider)
        return ReportOutcome.UNMATCHED
    await uow.execute(_LINK_REPORT, message_id=row["id"], id=report_id)
    moved = await _advance(
        uow,
        message_id=row["id"],
        current=MessageStatus(row["status"]),
        new=status,
        provider_status=provider_status,
        failure_reason=failure_reason,
        now=now,
    )
    return ReportOutcome.APPLIED if moved else ReportOutcome.STALE


async def apply_stored_reports(
    uow: UnitOfWork, *, message_id: int, provider_message_id: str, now: datetime
) -> MessageStatus:
    """Apply reports that arrived before the send was recorded; return the row's status."""
    current = MessageStatus.SENT
    reports = await uow.all(_SELECT_REPORTS, provider_message_id=provider_message_id)
    mapped = [
        (map_provider_status(report["provider"], report["provider_status"]), report)
        for report in reports
    ]
    known = [(status, report) for status, report in mapped if status is not None]
    # Apply the furthest-along report; on a tie the first one received wins.
    known.sort(key=lambda item: -STATUS_RANK[item[0]])
    for status, report in known[:1]:
        await uow.execute(_LINK_REPORT, message_id=message_id, id=report["id"])
        if await _advance(
            uow,
            message_id=message_id,
            current=current,
            new=status,
            provider_status=report["provider_status"],
            failure_reason=report["failure_reason"],
            now=now,
        ):
            current = status
    return current


async def _advance(
    uow: UnitOfWork,
    *,
    message_id: int,
    current: MessageStatus,
    new: MessageStatus,
    provider_status: str,
    failure_reason: str | None,
    now: datetime,
) -> bool:
    if not moves_forward(current, new):
        return False
    changed = await uow.execute(
        _ADVANCE,
        id=message_id,
        current=current.value,
        status=new.value,
        provider_status=provider_status,
        failure_reason=failure_reason,
        delivered_at=now if new == MessageStatus.DELIVERED else None,
        reason=(
            f"delivery report: {failure_reason or provider_status}"
            if new == MessageStatus.FAILED
            else None
        ),
        now=now,
    )
    return changed == 1
