from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.booking import appointments as appointments_module
from core.booking.model import AppointmentStatus
from core.booking.schedules import sync_slots
from core.booking.service import (
    book_appointment,
    cancel_appointment,
    get_doctor,
    get_patient_appointment,
    get_slot,
    list_doctors,
    list_free_slots,
    list_open_days,
    list_specialties,
    list_upcoming_appointments,
    next_free_slots,
    reschedule_appointment,
)
from core.db.database import Sql, UniqueViolation
from core.errors import ChangeTooLate, InvalidTransition, NotFound, SlotUnavailable
from tests.integration.booking_setup import (
    CUTOFF,
    LEAD,
    NAIROBI,
    add_clinic,
    add_doctor,
    add_patients,
    add_specialty,
    add_window,
    nairobi,
    setup_kamau,
    slot_id_at,
)

SELECT_APPOINTMENT_ROW = Sql(
    "SELECT reference, slot_id, status, version, updated_at, starts_at, channel"
    " FROM appointments WHERE id = :id"
)
COUNT_LIVE_FOR_SLOT = Sql(
    "SELECT COUNT(*) FROM appointments WHERE slot_id = :slot_id AND status IN ('held', 'booked')"
)
INSERT_RAW_APPOINTMENT = Sql(
    "INSERT INTO appointments (reference, patient_id, doctor_id, slot_id, starts_at, status,"
    " channel, created_at, updated_at)"
    " VALUES (:reference, :patient_id, :doctor_id, :slot_id, :starts_at, :status, 'sms',"
    " :now, :now)"
)


def eat(slots) -> list[str]:
    return [f"{slot.starts_at.astimezone(NAIROBI):%a %H:%M}" for slot in slots]


async def book(database, clock, *, patient_id: int, slot_id: int, channel: str = "ussd"):
    async with database.unit_of_work() as uow:
        return await book_appointment(
            uow, patient_id=patient_id, slot_id=slot_id, channel=channel, now=clock.now(), lead=LEAD
        )


async def slot_at(database, doctor_id: int, *wall_time: int) -> int:
    async with database.unit_of_work() as uow:
        return await slot_id_at(uow, doctor_id, nairobi(*wall_time))


async def appointment_row(database, appointment_id: int) -> dict:
    async with database.unit_of_work() as uow:
        return dict(await uow.one(SELECT_APPOINTMENT_ROW, id=appointment_id))


# --- catalogue --------------------------------------------------------------------------------


async def test_list_specialties_with_active_doctors(database) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        maternal = await add_specialty(uow, "maternal", position=2)
        general = await add_specialty(uow, "general", position=1)
        idle = await add_specialty(uow, "idle", position=0)
        empty = await add_specialty(uow, "empty", position=0)
        await add_doctor(uow, clinic_id=clinic_id, specialty_id=maternal)
        await add_doctor(uow, clinic_id=clinic_id, specialty_id=general)
        await add_doctor(uow, clinic_id=clinic_id, specialty_id=idle, active=False)
        specialties = await list_specialties(uow)
    assert [specialty.id for specialty in specialties] == [general, maternal]
    assert empty not in [specialty.id for specialty in specialties]
    assert specialties[0].name("sw") == "general (sw)"
    assert specialties[0].name("en") == "general (en)"


async def test_list_doctors_active_by_name(database) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        specialty_id = await add_specialty(uow)
        other_specialty = await add_specialty(uow, "maternal")
        for name, active in [
            ("Dr. Test Otieno", True),
            ("Dr. Test Away", False),
            ("Dr. Test Kamau", True),
        ]:
            await add_doctor(
                uow, clinic_id=clinic_id, specialty_id=specialty_id, name=name, active=active
            )
        await add_doctor(uow, clinic_id=clinic_id, specialty_id=other_specialty, name="Dr. Test B")
        doctors = await list_doctors(uow, specialty_id=specialty_id)
    assert [doctor.name for doctor in doctors] == ["Dr. Test Kamau", "Dr. Test Otieno"]


async def test_get_doctor_and_unknown(database) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        doctor_id = await add_doctor(
            uow,
            clinic_id=clinic_id,
            specialty_id=await add_specialty(uow),
            name="Dr. Wanjirũ Testname-Kariuki",
            fee_kes=1500,
        )
        doctor = await get_doctor(uow, doctor_id=doctor_id)
        with pytest.raises(NotFound, match="doctor 999 not found"):
            await get_doctor(uow, doctor_id=999)
    assert doctor.name == "Dr. Wanjirũ Testname-Kariuki"
    assert doctor.fee_kes == 1500
    assert doctor.slot_minutes == 30
    assert doctor.active is True


# --- availability ----------------------------------------------------------------------------


async def test_list_open_days_skips_full_and_closed_days(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=7)
    patient_ids = await add_patients(database, 6, clock.now())
    tuesday_slots = [await slot_at(database, doctor_id, 2, 9, minute) for minute in (0, 30)]
    tuesday_slots += [
        await slot_at(database, doctor_id, 2, hour, minute)
        for hour in (10, 11)
        for minute in (0, 30)
    ]
    for patient_id, slot_id in zip(patient_ids, tuesday_slots, strict=True):
        await book(database, clock, patient_id=patient_id, slot_id=slot_id)
    async with database.unit_of_work() as uow:
        days = await list_open_days(
            uow, doctor_id=doctor_id, now=clock.now(), zone=NAIROBI, lead=LEAD, horizon_days=7
        )
        three_days = await list_open_days(
            uow, doctor_id=doctor_id, now=clock.now(), zone=NAIROBI, lead=LEAD, horizon_days=3
        )
    # Tuesday is fully booked and the weekend has no schedule.
    assert days == [date(2027, 2, day) for day in (1, 3, 4, 5)]
    assert three_days == [date(2027, 2, 1), date(2027, 2, 3)]


async def test_list_open_days_respects_lead(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=2)
    async with database.unit_of_work() as uow:
        days = await list_open_days(
            uow,
            doctor_id=doctor_id,
            now=clock.now(),
            zone=NAIROBI,
            lead=timedelta(hours=3),
            horizon_days=2,
        )
    assert days == [date(2027, 2, 2)]


async def test_list_free_slots_excludes_booked_and_lead(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 1, 10)
    )
    async with database.unit_of_work() as uow:
        slots = await list_free_slots(
            uow,
            doctor_id=doctor_id,
            day=date(2027, 2, 1),
            zone=NAIROBI,
            now=clock.now(),
            lead=timedelta(minutes=45),
        )
    assert eat(slots) == ["Mon 10:30", "Mon 11:00", "Mon 11:30"]


async def test_list_free_slots_inactive_doctor_empty(database, clock) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        doctor_id = await add_doctor(
            uow, clinic_id=clinic_id, specialty_id=await add_specialty(uow), active=False
        )
        await add_window(uow, doctor_id, 1, "09:00", "12:00")
        await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=date(2027, 2, 2),
            days=1,
            now=clock.now(),
            clinic_zone=NAIROBI,
        )
        slots = await list_free_slots(
            uow, doctor_id=doctor_id, day=date(2027, 2, 2), zone=NAIROBI, now=clock.now(), lead=LEAD
        )
    assert slots == []


async def test_next_free_slots_after_time(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 1, 11)
    )
    async with database.unit_of_work() as uow:
        slots = await next_free_slots(
            uow, doctor_id=doctor_id, after=nairobi(1, 10, 30), now=clock.now(), lead=LEAD
        )
        two = await next_free_slots(
            uow, doctor_id=doctor_id, after=nairobi(1, 9), now=clock.now(), lead=LEAD, limit=2
        )
    assert eat(slots) == ["Mon 11:30", "Tue 09:00", "Tue 09:30"]
    assert eat(two) == ["Mon 09:30", "Mon 10:00"]


async def test_get_slot_booked_or_free(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 10)
    await book(database, clock, patient_id=patient_id, slot_id=slot_id)
    async with database.unit_of_work() as uow:
        slot = await get_slot(uow, slot_id=slot_id)
        missing = await get_slot(uow, slot_id=999)
    assert slot is not None
    assert slot.doctor_id == doctor_id
    assert slot.starts_at == nairobi(1, 10)
    assert slot.ends_at == nairobi(1, 10, 30)
    assert missing is None


# --- booking ---------------------------------------------------------------------------------


async def test_book_appointment_creates_booked_row(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 10)
    appointment = await book(database, clock, patient_id=patient_id, slot_id=slot_id)
    row = await appointment_row(database, appointment.id)
    assert appointment.status is AppointmentStatus.BOOKED
    assert appointment.reference.startswith("MA-")
    assert appointment.doctor_name == "Dr. Test Kamau"
    assert appointment.fee_kes == 1000
    assert appointment.starts_at == nairobi(1, 10)
    assert appointment.ends_at == nairobi(1, 10, 30)
    assert appointment.channel == "ussd"
    assert appointment.version == 1
    assert row["status"] == "booked"
    assert row["slot_id"] == slot_id
    assert row["reference"] == appointment.reference


async def test_book_slot_of_inactive_doctor_refused(database, clock) -> None:
    # The menus' catalogue cache may still list a doctor who was just deactivated; booking
    # reads the doctor's row again.
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 10)
    async with database.unit_of_work() as uow:
        await uow.execute(Sql("UPDATE doctors SET active = false WHERE id = :id"), id=doctor_id)
    with pytest.raises(SlotUnavailable, match="no longer takes bookings"):
        await book(database, clock, patient_id=patient_id, slot_id=slot_id)
    async with database.unit_of_work() as uow:
        assert await uow.scalar(COUNT_LIVE_FOR_SLOT, slot_id=slot_id) == 0


async def test_book_taken_slot_offers_next_three(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    patient_ids = await add_patients(database, 3, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 10)
    await book(database, clock, patient_id=patient_ids[0], slot_id=slot_id)
    await book(
        database,
        clock,
        patient_id=patient_ids[1],
        slot_id=await slot_at(database, doctor_id, 1, 11),
    )
    with pytest.raises(SlotUnavailable, match="already taken") as caught:
        await book(database, clock, patient_id=patient_ids[2], slot_id=slot_id)
    assert eat(caught.value.alternatives) == ["Mon 10:30", "Mon 11:30", "Tue 09:00"]
    async with database.unit_of_work() as uow:
        assert await uow.scalar(COUNT_LIVE_FOR_SLOT, slot_id=slot_id) == 1


async def test_book_cancel_rebook_same_slot(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    patient_ids = await add_patients(database, 2, clock.now())
    slot_id = await slot_at(database, doctor_id, 2, 10)
    first = await book(database, clock, patient_id=patient_ids[0], slot_id=slot_id)
    async with database.unit_of_work() as uow:
        cancelled = await cancel_appointment(
            uow, patient_id=patient_ids[0], appointment_id=first.id, now=clock.now(), cutoff=CUTOFF
        )
        free = await list_free_slots(
            uow, doctor_id=doctor_id, day=date(2027, 2, 2), zone=NAIROBI, now=clock.now(), lead=LEAD
        )
    second = await book(database, clock, patient_id=patient_ids[1], slot_id=slot_id)
    assert cancelled.status is AppointmentStatus.CANCELLED
    assert cancelled.version == 2
    assert slot_id in [slot.id for slot in free]
    assert second.status is AppointmentStatus.BOOKED
    assert second.reference != first.reference
    assert (await appointment_row(database, first.id))["status"] == "cancelled"


async def test_book_past_slot_unavailable(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 9, 30)
    clock.advance(3600)
    with pytest.raises(SlotUnavailable, match="too soon") as caught:
        await book(database, clock, patient_id=patient_id, slot_id=slot_id)
    assert eat(caught.value.alternatives) == ["Mon 10:30", "Mon 11:00", "Mon 11:30"]


async def test_book_within_lead_unavailable(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 9, 30)
    clock.advance(20 * 60)  # 09:20: the 09:30 slot is 10 minutes away, inside the lead
    with pytest.raises(SlotUnavailable, match="too soon"):
        await book(database, clock, patient_id=patient_id, slot_id=slot_id)


async def test_book_unknown_slot_unavailable(database, clock) -> None:
    [patient_id] = await add_patients(database, 1, clock.now())
    with pytest.raises(SlotUnavailable, match="slot 999 not found") as caught:
        await book(database, clock, patient_id=patient_id, slot_id=999)
    assert caught.value.alternatives == []


async def test_book_unknown_patient_not_found(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 10)
    with pytest.raises(NotFound, match="patient 999 not found"):
        await book(database, clock, patient_id=999, slot_id=slot_id)


async def test_book_retries_reference_collision(database, clock, monkeypatch) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    patient_ids = await add_patients(database, 2, clock.now())
    references = iter(["MA-AAAAAA", "MA-AAAAAA", "MA-AAAAAA", "MA-BBBBBB"])
    monkeypatch.setattr(appointments_module, "new_reference", lambda: next(references))
    first = await book(
        database,
        clock,
        patient_id=patient_ids[0],
        slot_id=await slot_at(database, doctor_id, 1, 10),
    )
    second = await book(
        database,
        clock,
        patient_id=patient_ids[1],
        slot_id=await slot_at(database, doctor_id, 1, 11),
    )
    assert first.reference == "MA-AAAAAA"
    assert second.reference == "MA-BBBBBB"


async def test_raw_second_live_appointment_rejected(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    patient_ids = await add_patients(database, 3, clock.now())
    slot_id = await slot_at(database, doctor_id, 1, 10)
    values = {"doctor_id": doctor_id, "slot_id": slot_id, "starts_at": nairobi(1, 10)}
    async with database.unit_of_work() as uow:
        await uow.execute(
            INSERT_RAW_APPOINTMENT,
            reference="MA-RAW222",
            patient_id=patient_ids[0],
            status="cancelled",
            now=clock.now(),
            **values,
        )
        await uow.execute(
            INSERT_RAW_APPOINTMENT,
            reference="MA-RAW333",
            patient_id=patient_ids[1],
            status="booked",
            now=clock.now(),
            **values,
        )
    with pytest.raises(UniqueViolation):
        async with database.unit_of_work() as uow:
            await uow.execute(
                INSERT_RAW_APPOINTMENT,
                reference="MA-RAW444",
                patient_id=patient_ids[2],
                status="held",
                now=clock.now(),
                **values,
            )
    async with database.unit_of_work() as uow:
        assert await uow.scalar(COUNT_LIVE_FOR_SLOT, slot_id=slot_id) == 1


# --- patient's appointments -------------------------------------------------------------------


async def test_list_upcoming_appointments(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id, other_id] = await add_patients(database, 2, clock.now())
    later = await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 3, 9)
    )
    sooner = await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 1, 11)
    )
    dropped = await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 2, 9)
    )
    await book(
        database, clock, patient_id=other_id, slot_id=await slot_at(database, doctor_id, 2, 10)
    )
    async with database.unit_of_work() as uow:
        await cancel_appointment(
            uow, patient_id=patient_id, appointment_id=dropped.id, now=clock.now(), cutoff=CUTOFF
        )
        upcoming = await list_upcoming_appointments(uow, patient_id=patient_id, now=clock.now())
        after_first = await list_upcoming_appointments(
            uow, patient_id=patient_id, now=nairobi(1, 11)
        )
    assert [appointment.id for appointment in upcoming] == [sooner.id, later.id]
    assert upcoming[0].doctor_name == "Dr. Test Kamau"
    assert upcoming[0].fee_kes == 1000
    assert [appointment.id for appointment in after_first] == [later.id]


async def test_get_patient_appointment_other_patient(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [owner_id, other_id] = await add_patients(database, 2, clock.now())
    appointment = await book(
        database, clock, patient_id=owner_id, slot_id=await slot_at(database, doctor_id, 2, 10)
    )
    async with database.unit_of_work() as uow:
        found = await get_patient_appointment(
            uow, patient_id=owner_id, appointment_id=appointment.id
        )
        with pytest.raises(NotFound):
            await get_patient_appointment(uow, patient_id=other_id, appointment_id=appointment.id)
        with pytest.raises(NotFound):
            await get_patient_appointment(uow, patient_id=owner_id, appointment_id=999)
        with pytest.raises(NotFound):
            await cancel_appointment(
                uow,
                patient_id=other_id,
                appointment_id=appointment.id,
                now=clock.now(),
                cutoff=CUTOFF,
            )
        with pytest.raises(NotFound):
            await reschedule_appointment(
                uow,
                patient_id=other_id,
                appointment_id=appointment.id,
                new_slot_id=await slot_id_at(uow, doctor_id, nairobi(2, 11)),
                now=clock.now(),
                cutoff=CUTOFF,
                lead=LEAD,
            )
    assert found == appointment
    assert (await appointment_row(database, appointment.id))["status"] == "booked"


# --- cancel ----------------------------------------------------------------------------------


async def test_cancel_after_cutoff_changes_nothing(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    appointment = await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 1, 10)
    )
    before = await appointment_row(database, appointment.id)
    clock.advance(60)
    with pytest.raises(ChangeTooLate):
        async with database.unit_of_work() as uow:
            await cancel_appointment(
                uow,
                patient_id=patient_id,
                appointment_id=appointment.id,
                now=clock.now(),
                cutoff=CUTOFF,
            )
    assert await appointment_row(database, appointment.id) == before


async def test_cancel_twice_invalid_transition(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    appointment = await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 2, 10)
    )
    clock.advance(60)
    async with database.unit_of_work() as uow:
        cancelled = await cancel_appointment(
            uow,
            patient_id=patient_id,
            appointment_id=appointment.id,
            now=clock.now(),
            cutoff=CUTOFF,
        )
        with pytest.raises(InvalidTransition, match="is cancelled"):
            await cancel_appointment(
                uow,
                patient_id=patient_id,
                appointment_id=appointment.id,
                now=clock.now(),
                cutoff=CUTOFF,
            )
    row = await appointment_row(database, appointment.id)
    assert cancelled.version == 2
    assert row["version"] == 2
    assert row["updated_at"] == clock.now()


# --- reschedule ------------------------------------------------------------------------------


async def reschedule(database, clock, *, patient_id: int, appointment_id: int, new_slot_id: int):
    async with database.unit_of_work() as uow:
        return await reschedule_appointment(
            uow,
            patient_id=patient_id,
            appointment_id=appointment_id,
            new_slot_id=new_slot_id,
            now=clock.now(),
            cutoff=CUTOFF,
            lead=LEAD,
        )


async def test_reschedule_moves_slot_keeps_reference(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    patient_ids = await add_patients(database, 2, clock.now())
    old_slot = await slot_at(database, doctor_id, 2, 10)
    new_slot = await slot_at(database, doctor_id, 3, 11)
    appointment = await book(database, clock, patient_id=patient_ids[0], slot_id=old_slot)
    clock.advance(60)
    moved = await reschedule(
        database,
        clock,
        patient_id=patient_ids[0],
        appointment_id=appointment.id,
        new_slot_id=new_slot,
    )
    row = await appointment_row(database, appointment.id)
    assert moved.id == appointment.id
    assert moved.reference == appointment.reference
    assert moved.slot_id == new_slot
    assert moved.starts_at == nairobi(3, 11)
    assert moved.status is AppointmentStatus.BOOKED
    assert moved.version == 2
    assert row["slot_id"] == new_slot
    assert row["starts_at"] == nairobi(3, 11)
    assert row["updated_at"] == clock.now()
    # The old slot is free again.
    await book(database, clock, patient_id=patient_ids[1], slot_id=old_slot)


async def test_reschedule_to_taken_slot_unchanged(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    patient_ids = await add_patients(database, 2, clock.now())
    appointment = await book(
        database,
        clock,
        patient_id=patient_ids[0],
        slot_id=await slot_at(database, doctor_id, 2, 10),
    )
    taken_slot = await slot_at(database, doctor_id, 3, 9)
    await book(database, clock, patient_id=patient_ids[1], slot_id=taken_slot)
    before = await appointment_row(database, appointment.id)
    with pytest.raises(SlotUnavailable, match="already taken") as caught:
        await reschedule(
            database,
            clock,
            patient_id=patient_ids[0],
            appointment_id=appointment.id,
            new_slot_id=taken_slot,
        )
    assert eat(caught.value.alternatives) == ["Wed 09:30", "Wed 10:00", "Wed 10:30"]
    assert await appointment_row(database, appointment.id) == before


async def test_reschedule_taken_slot_keeps_transaction_usable(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    patient_ids = await add_patients(database, 2, clock.now())
    appointment = await book(
        database,
        clock,
        patient_id=patient_ids[0],
        slot_id=await slot_at(database, doctor_id, 2, 10),
    )
    taken_slot = await slot_at(database, doctor_id, 3, 9)
    await book(database, clock, patient_id=patient_ids[1], slot_id=taken_slot)
    async with database.unit_of_work() as uow:
        with pytest.raises(SlotUnavailable) as caught:
            await reschedule_appointment(
                uow,
                patient_id=patient_ids[0],
                appointment_id=appointment.id,
                new_slot_id=taken_slot,
                now=clock.now(),
                cutoff=CUTOFF,
                lead=LEAD,
            )
        # The caller can take an offered alternative in the same unit of work.
        moved = await reschedule_appointment(
            uow,
            patient_id=patient_ids[0],
            appointment_id=appointment.id,
            new_slot_id=caught.value.alternatives[0].id,
            now=clock.now(),
            cutoff=CUTOFF,
            lead=LEAD,
        )
    assert moved.starts_at == nairobi(3, 9, 30)


async def test_reschedule_other_doctor_slot_rejected(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    async with database.unit_of_work() as uow:
        other_doctor = await add_doctor(
            uow,
            clinic_id=await add_clinic(uow, "Other Clinic"),
            specialty_id=await add_specialty(uow, "maternal"),
            name="Dr. Test Otieno",
        )
        await add_window(uow, other_doctor, 2, "09:00", "12:00")
        await sync_slots(
            uow,
            doctor_id=other_doctor,
            start=date(2027, 2, 3),
            days=1,
            now=clock.now(),
            clinic_zone=NAIROBI,
        )
        other_slot = await slot_id_at(uow, other_doctor, nairobi(3, 9))
    appointment = await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 2, 10)
    )
    before = await appointment_row(database, appointment.id)
    with pytest.raises(SlotUnavailable, match="another doctor") as caught:
        await reschedule(
            database,
            clock,
            patient_id=patient_id,
            appointment_id=appointment.id,
            new_slot_id=other_slot,
        )
    assert {slot.doctor_id for slot in caught.value.alternatives} == {doctor_id}
    assert eat(caught.value.alternatives) == ["Wed 09:30", "Wed 10:00", "Wed 10:30"]
    assert await appointment_row(database, appointment.id) == before


async def test_reschedule_after_cutoff_rejected(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    appointment = await book(
        database,
        clock,
        patient_id=patient_id,
        slot_id=await slot_at(database, doctor_id, 1, 10, 30),
    )
    before = await appointment_row(database, appointment.id)
    with pytest.raises(ChangeTooLate):
        await reschedule(
            database,
            clock,
            patient_id=patient_id,
            appointment_id=appointment.id,
            new_slot_id=await slot_at(database, doctor_id, 2, 10),
        )
    assert await appointment_row(database, appointment.id) == before


async def test_reschedule_unknown_or_past_slot(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now())
    [patient_id] = await add_patients(database, 1, clock.now())
    appointment = await book(
        database, clock, patient_id=patient_id, slot_id=await slot_at(database, doctor_id, 3, 10)
    )
    soon_slot = await slot_at(database, doctor_id, 1, 9, 30)
    with pytest.raises(SlotUnavailable, match="slot 999 not found") as unknown:
        await reschedule(
            database, clock, patient_id=patient_id, appointment_id=appointment.id, new_slot_id=999
        )
    clock.advance(25 * 60)
    with pytest.raises(SlotUnavailable, match="too soon"):
        await reschedule(
            database,
            clock,
            patient_id=patient_id,
            appointment_id=appointment.id,
            new_slot_id=soon_slot,
        )
    assert eat(unknown.value.alternatives) == ["Mon 09:30", "Mon 10:00", "Mon 10:30"]
    assert (await appointment_row(database, appointment.id))["version"] == 1
