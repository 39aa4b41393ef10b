"""Staff users of the staff API: doctors, lab technicians, pharmacists and admins.

Passwords are hashed with argon2id through argon2-cffi's `PasswordHasher`, with its default
parameters. Hashing and verifying take tens of milliseconds of CPU, so they run in a worker
thread to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.db.database import Sql, UnitOfWork
from core.errors import DuplicateUsername, InvalidPassword, InvalidUsername
from core.identity.model import StaffRole, StaffUser

__all__ = ["StaffRole", "StaffUser", "create_staff_user", "verify_staff_password"]

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
# Bounds the CPU and memory one login attempt can cost; passphrases fit well within it.
MAX_PASSWORD_LENGTH = 1024
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

# The one link each role may carry; admins carry none.
_ROLE_LINKS = {
    StaffRole.DOCTOR: "doctor_id",
    StaffRole.PHARMACIST: "pharmacy_id",
    StaffRole.LAB_TECHNICIAN: "lab_id",
    StaffRole.ADMIN: None,
}

_hasher = PasswordHasher()
_dummy_hash: str | None = None

_INSERT_USER = Sql(
    "INSERT INTO staff_users"
    " (username, password_hash, role, doctor_id, pharmacy_id, lab_id, active, created_at)"
    " VALUES (:username, :password_hash, :role, :doctor_id, :pharmacy_id, :lab_id, true, :now)"
    " ON CONFLICT (username) DO NOTHING RETURNING id"
)
_SELECT_ACTIVE_USER = Sql(
    "SELECT id, username, password_hash, role, doctor_id, pharmacy_id, lab_id"
    " FROM staff_users WHERE username = :username AND active = true"
)
_UPDATE_HASH = Sql("UPDATE staff_users SET password_hash = :password_hash WHERE id = :id")


def _normalize_username(username: str) -> str:
    """Return the username in lower case. Raises InvalidUsername when its shape is invalid."""
    normalized = username.strip().lower()
    if not _USERNAME.fullmatch(normalized):
        raise InvalidUsername(
            f"invalid username {username!r}: use 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit",
            username=username,
        )
    return normalized


def _check_password(password: str) -> None:
    if not password:
        raise InvalidPassword("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidPassword(
            f"the password has {len(password)} characters, fewer than the minimum of"
            f" {MIN_PASSWORD_LENGTH}. Choose a longer password."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidPassword(
            f"the password has {len(password)} characters, more than the max of"
            f" {MAX_PASSWORD_LENGTH}"
        )


def _check_links(
    role: StaffRole, doctor_id: int | None, pharmacy_id: int | None, lab_id: int | None
) -> None:
    links = {"doctor_id": doctor_id, "pharmacy_id": pharmacy_id, "lab_id": lab_id}
    allowed = _ROLE_LINKS[role]
    for name, value in links.items():
        if value is not None and name != allowed:
            raise ValueError(f"a staff user with role {role} cannot have {name}")


async def create_staff_user(
    uow: UnitOfWork,
    *,
    username: str,
    password: str,
    role: StaffRole | str,
    now: datetime,
    doctor_id: int | None = None,
    pharmacy_id: int | None = None,
    lab_id: int | None = None,
) -> int:
    """Insert a staff user and return its id.

    The username is stored in lower case. Raises InvalidUsername, InvalidPassword (empty or
    under 10 characters), DuplicateUsername, and ValueError for an unknown role or a link
    that does not fit the role (only doctors have doctor_id, pharmacists pharmacy_id and lab
    technicians lab_id).
    NOTE: a doctor, pharmacist or lab technician without its link is accepted.
    """
    normalized = _normalize_username(username)
    _check_password(password)
    staff_role = StaffRole(role)
    _check_links(staff_role, doctor_id, pharmacy_id, lab_id)

    password_hash = await asyncio.to_thread(_hasher.hash, password)
    user_id = await uow.scalar(
        _INSERT_USER,
        username=normalized,
        password_hash=password_hash,
        role=staff_role.value,
        doctor_id=doctor_id,
        pharmacy_id=pharmacy_id,
        lab_id=lab_id,
        now=now,
    )
    if user_id is None:
        raise DuplicateUsername(
            f"the username {normalized!r} is already taken. Choose another username.",
            username=normalized,
        )
    return int(user_id)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except VerifyMismatchError:
        return False


def _spend_verify_time(password: str) -> None:
    """Verify against a throwaway hash, so an unknown username costs as much as a known one."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not-a-real-password")
    _verify(_dummy_hash, password)


async def verify_staff_password(
    uow: UnitOfWork, *, username: str, password: str
) -> StaffUser | None:
    """Return the active staff user when the password matches, else None.

    A hash made with older argon2 parameters is replaced by one with the current parameters
    after a successful check.
    """
    try:
        normalized = _normalize_username(username)
    except InvalidUsername:
        return None
    row = await uow.one(_SELECT_ACTIVE_USER, username=normalized)
    if row is None or not password or len(password) > MAX_PASSWORD_LENGTH:
        await asyncio.to_thread(_spend_verify_time, password[:MAX_PASSWORD_LENGTH])
        return None

    try:
        matches = await asyncio.to_thread(_verify, row["password_hash"], password)
    except (InvalidHashError, VerificationError) as exc:
        log.error("staff user %s has an unreadable password hash: %s", row["id"], exc)
        return None
    if not matches:
        return None

    if _hasher.check_needs_rehash(row["password_hash"]):
        new_hash = await asyncio.to_thread(_hasher.hash, password)
        await uow.execute(_UPDATE_HASH, id=row["id"], password_hash=new_hash)
    return StaffUser(
        id=row["id"],
        username=row["username"],
        role=StaffRole(row["role"]),
        doctor_id=row["doctor_id"],
        pharmacy_id=row["pharmacy_id"],
        lab_id=row["lab_id"],
    )
