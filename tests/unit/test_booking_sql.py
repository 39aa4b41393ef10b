"""Checks that the booking SQL names the same live statuses as the schema's partial index."""

from __future__ import annotations

from core.booking import appointments, availability
from core.db.schema import LIVE_APPOINTMENT_STATUSES, LIVE_STATUS_SQL

LIVE_LIST = ", ".join(f"'{status}'" for status in LIVE_APPOINTMENT_STATUSES)


def test_on_conflict_predicate_matches_index() -> None:
    assert f"ON CONFLICT (slot_id) WHERE {LIVE_STATUS_SQL} DO NOTHING" in (
        appointments._INSERT_APPOINTMENT.source
    )


def test_free_slot_query_uses_live_statuses() -> None:
    assert f"a.status IN ({LIVE_LIST})" in availability._SELECT_FREE_BETWEEN.source
    assert f"a.status IN ({LIVE_LIST})" in availability._SELECT_FREE_AFTER.source


def test_upcoming_query_uses_live_statuses() -> None:
    assert f"a.status IN ({LIVE_LIST})" in appointments._SELECT_UPCOMING.source


def test_new_reference_shape() -> None:
    references = {appointments.new_reference() for _ in range(200)}
    assert len(references) > 190
    for reference in references:
        assert reference.startswith("MA-")
        assert len(reference) == 9
        assert set(reference[3:]) <= set(appointments.REFERENCE_ALPHABET)
