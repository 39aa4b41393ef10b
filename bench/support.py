"""Helpers shared by the benchmark scripts: throwaway databases, the service as a subprocess,
fake patients, and CPU and memory readings from /proc.

Every server these helpers start listens on 127.0.0.1, and every request goes there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
MYAFYA = BIN / "myafya"

# The server that every PostgreSQL run creates its throwaway database on.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
USSD_PATH = "/webhooks/africastalking/ussd"
SERVICE_CODE = "*384*12345#"
NETWORK_CODE = "63902"
# Fake numbers in the +25470000xxxx test range: index 0 is +254700000000, 9999 is +254700009999.
MAX_FAKE_PHONES = 10_000
BENCH_DEMO_PASSWORD = "bench-demo-password-not-secret"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def fake_phone(index: int) -> str:
    if not 0 <= index < MAX_FAKE_PHONES:
        raise ValueError(f"fake phone index {index} is outside 0..{MAX_FAKE_PHONES - 1}")
    return f"+25470000{index:04d}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- machine facts and statistics -------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as "1.23 / 0.98 / 0.50"."""
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_summary() -> str:
    """Describe the machine, with its load average, because other processes share this host."""
    load = load_average()
    return (
        f"nproc {os.cpu_count()}, CPU {cpu_model()}, Python {platform.python_version()}"
        f" ({platform.python_implementation()}), kernel {platform.release()},"
        f" load average 1/5/15 min {load}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """Format min-max of the repetitions, to show the noise beside a median."""
    if not values:
        return "-"
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


# --- /proc readings -----------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """Return user + system CPU time of one process, from /proc/<pid>/stat (10 ms resolution)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name in field 2 may contain spaces, so split after its closing bracket.
    fields = raw.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def postgres_cpu_seconds() -> float:
    """Return the CPU time of every process named `postgres` on this machine, 0 when none."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            total += process_cpu_seconds(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # the process exited while we read it
    return total


def memory_kib(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM (peak resident set) of a process in KiB, from /proc/<pid>/status."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def steal_and_busy() -> tuple[int, int, int]:
    """Return the machine's (busy, steal, total) CPU jiffies from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return total - idle - steal, steal, total


# --- databases ----------------------------------------------------------------------------------


@dataclass
class BenchDatabase:
    """A database that exists only for one benchmark run."""

    dialect: str
    url: str
    workdir: Path


async def _admin_execute(admin_url: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def throwaway_database(
    dialect: str, postgres_url: str = DEFAULT_POSTGRES_URL
) -> Iterator[BenchDatabase]:
    """Yield an empty database: a SQLite file in a temporary folder, or `CREATE DATABASE
    bench_<random>` on the server of `postgres_url`, dropped on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="myafya-bench-"))
    try:
        if dialect == "sqlite":
            yield BenchDatabase("sqlite", f"sqlite:///{workdir / 'myafya.db'}", workdir)
            return
        if dialect != "postgresql":
            raise ValueError(f"unknown database {dialect!r}: expected sqlite or postgresql")
        name = f"bench_{secrets.token_hex(4)}"
        base, _, _ = postgres_url.rpartition("/")
        asyncio.run(_admin_execute(postgres_url, f"CREATE DATABASE {name}"))
        try:
            yield BenchDatabase("postgresql", f"{base}/{name}", workdir)
        finally:
            asyncio.run(
                _admin_execute(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def postgres_reachable(postgres_url: str = DEFAULT_POSTGRES_URL) -> bool:
    try:
        asyncio.run(_admin_execute(postgres_url, "SELECT 1"))
    except Exception as exc:  # asyncpg raises OSError, timeouts and its own errors
        print(f"PostgreSQL at {postgres_url} is not reachable: {type(exc).__name__}: {exc}")
        return False
    return True


def service_environment(database_url: str, log_level: str = "WARNING") -> dict[str, str]:
    """Return this process's environment with every MYAFYA_ variable replaced by the bench's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MYAFYA_")}
    env.update(
        MYAFYA_DATABASE_URL=database_url,
        MYAFYA_LOG_LEVEL=log_level,
        MYAFYA_DEMO_PASSWORD=BENCH_DEMO_PASSWORD,
        MYAFYA_SANDBOX="true",
    )
    return env


def seed_demo_database(database: BenchDatabase) -> None:
    """Migrate the database and add the demo clinic with `myafya seed-demo`, as `serve` would."""
    subprocess.run(
        [str(MYAFYA), "seed-demo"],
        cwd=database.workdir,  # away from any developer's .env in the repository
        env=service_environment(database.url),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )


async def _register_patients(url: str, phones: Sequence[str]) -> list[int]:
    from core.clock import SystemClock
    from core.db.database import open_database
    from core.identity.patients import get_or_create_patient, register_patient

    now = SystemClock().now()
    database = await open_database(url)
    ids: list[int] = []
    try:
        async with database.unit_of_work() as uow:
            for phone in phones:
                patient = await get_or_create_patient(uow, phone=phone, now=now)
                await register_patient(
                    uow,
                    patient_id=patient.id,
                    name="Bench Patient",
                    language="en",
                    consented_at=now,
                )
                ids.append(patient.id)
    finally:
        await database.close()
    return ids


def register_patients(database: BenchDatabase, count: int) -> list[int]:
    """Register fake patients 0..count-1 (English, consented), so USSD opens on the home menu."""
    phones = [fake_phone(index) for index in range(count)]
    return asyncio.run(_register_patients(database.url, phones))


# --- processes ----------------------------------------------------------------------------------


class ServerProcess:
    """A server subprocess on 127.0.0.1 with its output in a log file, stopped on exit."""

    def __init__(
        self, command: Sequence[str], *, port: int, env: dict[str, str], cwd: Path, name: str
    ) -> None:
        self.port = port
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str = "/healthz", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.process.returncode} before it was ready;"
                    f" see {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} was not ready on {self.base_url}{path} after {timeout} s")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_service(database: BenchDatabase, *, log_level: str = "WARNING") -> ServerProcess:
    """Start `myafya serve` on a free port of 127.0.0.1 and wait until /healthz answers."""
    return start_serve(database.workdir, service_environment(database.url, log_level))


def start_serve(workdir: Path, env: dict[str, str], name: str = "myafya") -> ServerProcess:
    """Start `myafya serve` with `env` on a free port of 127.0.0.1 and wait until it is ready."""
    port = free_port()
    server = ServerProcess(
        [str(MYAFYA), "serve", "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        env=env,
        cwd=workdir,
        name=name,
    )
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server
