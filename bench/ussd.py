"""USSD throughput and latency of `myafya serve` against a bare aiohttp server, in one run.

wrk (one thread per connection, bench/ussd_walk.lua) walks fresh sessions of registered patients
through home, specialty, doctor, day and the list of times on the real webhook, at each
concurrency. The same requests go to bench/bare_ussd_server.py, which parses the form and
replies with a constant screen. Every rep measures both servers at every concurrency, and reps
are the outer loop, so a slow phase of the machine hits both servers alike. Tables show the
median of the reps.

    .venv/bin/python bench/ussd.py                         # SQLite, about 2 minutes
    .venv/bin/python bench/ussd.py --database postgresql   # a throwaway database on 127.0.0.1
    .venv/bin/python bench/ussd.py --database both --duration 10 --reps 5   # longer
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from support import (
    CLOCK_TICKS,
    DEFAULT_POSTGRES_URL,
    USSD_PATH,
    BenchDatabase,
    ServerProcess,
    free_port,
    machine_summary,
    median,
    postgres_cpu_seconds,
    postgres_reachable,
    process_cpu_seconds,
    register_patients,
    seed_demo_database,
    spread,
    start_service,
    steal_and_busy,
    throwaway_database,
)

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "ussd_walk.lua"
CONCURRENCIES = (1, 16, 64)
# Targets for SQLite in one process at 64 concurrent sessions.
TARGET_RATIO = 0.25
TARGET_P99_MS = 100.0
RESULT_LINE = re.compile(r"^RESULT (.*)$", re.MULTILINE)


@dataclass
class Sample:
    """One wrk run against one server."""

    requests: int
    seconds: float
    p50_ms: float  # this and p99 leave out each connection's first request (bench/ussd_walk.lua)
    p99_ms: float
    first_max_ms: float  # the slowest first request of a connection: the ramp-up
    wrk_p99_ms: float  # wrk's own p99, which adds synthetic samples for slow requests
    errors: int
    mismatches: int
    server_cpu_us: float  # per request
    wrk_cpu_us: float  # per request
    db_cpu_us: float  # per request, PostgreSQL server processes only
    steal_percent: float
    # Share of the machine's CPU that other processes used during the run: the host is shared.
    other_percent: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)

    def med(self, name: str) -> float:
        values = [getattr(sample, name) for sample in self.samples]
        return median(values)

    def values(self, name: str) -> list[float]:
        return [getattr(sample, name) for sample in self.samples]


def run_wrk(
    server: ServerProcess,
    *,
    connections: int,
    seconds: int,
    tag: str,
    check: str,
    count_postgres: bool,
) -> Sample:
    """Run wrk against one server and return its numbers, with the CPU each side used."""
    command = [
        "wrk",
        f"-t{connections}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        server.base_url + USSD_PATH,
        "--",
        tag,
        check,
        "0",
    ]
    server_cpu = process_cpu_seconds(server.pid)
    db_cpu = postgres_cpu_seconds() if count_postgres else 0.0
    wrk_cpu = _children_cpu_seconds()
    busy, steal, total = steal_and_busy()
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    busy2, steal2, total2 = steal_and_busy()
    wrk_cpu = _children_cpu_seconds() - wrk_cpu
    server_cpu = process_cpu_seconds(server.pid) - server_cpu
    db_cpu = (postgres_cpu_seconds() - db_cpu) if count_postgres else 0.0
    wall_cpu = (total2 - total) / CLOCK_TICKS
    other_cpu = (busy2 - busy) / CLOCK_TICKS - server_cpu - wrk_cpu - db_cpu

    found = RESULT_LINE.search(output)
    if found is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{output}")
    values = {key: int(value) for key, value in (pair.split("=") for pair in found[1].split())}
    mismatch = re.search(r"^FIRST_MISMATCH (.*)$", output, re.MULTILINE)
    if mismatch:
        print(f"    wrong reply from {server.name}: {mismatch[1]}")
    requests = max(values["requests"], 1)
    errors = sum(values[key] for key in ("connect", "read", "write", "status", "timeout"))
    return Sample(
        requests=values["requests"],
        seconds=values["duration_us"] / 1e6,
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        first_max_ms=values["first_max_us"] / 1000,
        wrk_p99_ms=values["wrk_p99_us"] / 1000,
        errors=errors,
        mismatches=values["mismatches"],
        server_cpu_us=server_cpu * 1e6 / requests,
        wrk_cpu_us=wrk_cpu * 1e6 / requests,
        db_cpu_us=db_cpu * 1e6 / requests,
        steal_percent=100 * (steal2 - steal) / max(total2 - total, 1),
        other_percent=max(0.0, 100 * other_cpu / max(wall_cpu, 1e-9)),
    )


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_bare_server(workdir: Path) -> ServerProcess:
    port = free_port()
    server = ServerProcess(
        [sys.executable, str(BENCH_DIR / "bare_ussd_server.py"), "--port", str(port)],
        port=port,
        env={"PATH": "/usr/bin:/bin"},
        cwd=workdir,
        name="bare",
    )
    server.wait_ready()
    return server


def measure(database: BenchDatabase, args: argparse.Namespace) -> dict[str, dict[int, Cell]]:
    """Measure both servers at every concurrency, `args.reps` times, on one database."""
    print(f"  preparing {database.dialect} database")
    seed_demo_database(database)
    register_patients(database, max(CONCURRENCIES))
    cells: dict[str, dict[int, Cell]] = {
        "ours": {c: Cell() for c in CONCURRENCIES},
        "bare": {c: Cell() for c in CONCURRENCIES},
    }
    count_postgres = database.dialect == "postgresql"
    with start_service(database) as ours, start_bare_server(database.workdir) as bare:
        servers = {"ours": ours, "bare": bare}
        checks = {"ours": "markers", "bare": "con"}
        for name, server in servers.items():
            run_wrk(
                server,
                connections=16,
                seconds=args.warmup,
                tag=f"warm-{name}",
                check=checks[name],
                count_postgres=False,
            )
        for rep in range(args.reps):
            order = ["bare", "ours"] if rep % 2 == 0 else ["ours", "bare"]
            for connections in CONCURRENCIES:
                for name in order:
                    sample = run_wrk(
                        servers[name],
                        connections=connections,
                        seconds=args.duration,
                        tag=f"r{rep}c{connections}",
                        check=checks[name],
                        count_postgres=count_postgres and name == "ours",
                    )
                    cells[name][connections].samples.append(sample)
                    print(
                        f"  rep {rep + 1}/{args.reps} c={connections:<2} {name:<4}"
                        f" {sample.rate:8,.0f} req/s  p50 {sample.p50_ms:6.2f} ms"
                        f"  p99 {sample.p99_ms:6.2f} ms  first request max"
                        f" {sample.first_max_ms:6.1f} ms  wrk's p99 {sample.wrk_p99_ms:6.1f} ms"
                        f"  errors {sample.errors}"
                        f"  wrong replies {sample.mismatches}",
                        flush=True,
                    )
        if ours.process.poll() is not None:
            raise RuntimeError(f"myafya serve died during the run:\n{ours.log_tail()}")
    return cells


def print_table(dialect: str, cells: dict[str, dict[int, Cell]]) -> list[str]:
    """Print the medians as a Markdown table and return the verdicts at the top concurrency."""
    postgres = dialect == "postgresql"
    print(f"\n### {dialect}: median of {len(cells['ours'][1].samples)} reps (min-max)\n")
    headers = [
        "conns",
        "bare req/s",
        "ours req/s",
        "ratio ours/bare",
        "bare p50 / p99 ms",
        "ours p50 / p99 ms",
        "ours first request max ms",
        "server CPU µs/req bare / ours",
        "wrk CPU µs/req bare / ours",
        *(["PostgreSQL CPU µs/req"] if postgres else []),
        "other processes' CPU %",
        "errors + wrong replies",
    ]
    print("| " + " | ".join(headers) + " |")
    print("|" + " ---: |" * len(headers))
    verdicts: list[str] = []
    for connections in CONCURRENCIES:
        bare, ours = cells["bare"][connections], cells["ours"][connections]
        ratios = [o.rate / b.rate for o, b in zip(ours.samples, bare.samples, strict=True)]
        failures = sum(s.errors + s.mismatches for s in bare.samples + ours.samples)
        other = bare.values("other_percent") + ours.values("other_percent")
        columns = [
            str(connections),
            f"{bare.med('rate'):,.0f} ({spread(bare.values('rate'))})",
            f"{ours.med('rate'):,.0f} ({spread(ours.values('rate'))})",
            f"**{median(ratios):.3f}** ({spread(ratios, '{:.3f}')})",
            f"{bare.med('p50_ms'):.2f} / {bare.med('p99_ms'):.1f}",
            f"{ours.med('p50_ms'):.2f} / **{ours.med('p99_ms'):.1f}**"
            f" ({spread(ours.values('p99_ms'), '{:.1f}')})",
            f"{ours.med('first_max_ms'):,.0f}",
            f"{bare.med('server_cpu_us'):,.0f} / {ours.med('server_cpu_us'):,.0f}",
            f"{bare.med('wrk_cpu_us'):,.0f} / {ours.med('wrk_cpu_us'):,.0f}",
            *([f"{ours.med('db_cpu_us'):,.0f}"] if postgres else []),
            f"{median(other):.0f} ({spread(other)})",
            str(failures),
        ]
        print("| " + " | ".join(columns) + " |")
        if connections == max(CONCURRENCIES):
            ratio, p99 = median(ratios), ours.med("p99_ms")
            verdicts.append(
                f"{dialect} c={connections}: ratio {ratio:.3f}"
                f" ({'met' if ratio >= TARGET_RATIO else 'NOT met'}, target >= {TARGET_RATIO}),"
                f" p99 {p99:.1f} ms"
                f" ({'met' if p99 < TARGET_P99_MS else 'NOT met'}, target < {TARGET_P99_MS:.0f} ms)"
            )
    steal = [s.steal_percent for row in cells.values() for c in row.values() for s in c.samples]
    print(f"\nCPU steal during the runs: median {median(steal):.1f} %, max {max(steal):.1f} %")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql", "both"],
        default="sqlite",
        help="database of the service (default: sqlite)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server and admin database where the throwaway database is created",
    )
    parser.add_argument("--duration", type=int, default=5, help="whole seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="whole seconds of warm-up per server")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every cell")
    args = parser.parse_args()
    if not 1 <= args.duration <= 120 or not 0 < args.warmup <= 60 or not 1 <= args.reps <= 20:
        parser.error("expected --duration 1..120 s, --warmup 1..60 s and --reps 1..20")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed; on Debian: apt-get install -y wrk")

    print(f"Machine: {machine_summary()}")
    print(
        subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    )
    dialects = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in dialects and not postgres_reachable(args.postgres_url):
        sys.exit(1)

    started = time.monotonic()
    results = {}
    for dialect in dialects:
        with throwaway_database(dialect, args.postgres_url) as database:
            results[dialect] = measure(database, args)
    verdicts = []
    for dialect, cells in results.items():
        verdicts += print_table(dialect, cells)
    print("\nTargets (SQLite is the one with targets; PostgreSQL is shown for comparison):")
    for verdict in verdicts:
        print(f"- {verdict}")
    print(f"\nTotal time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
