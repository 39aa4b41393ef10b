"""Profile `myafya serve` with py-spy while wrk walks USSD sessions, as bench/ussd.py does.

Prints the functions with the largest share of the server's samples, by own time and by
total time (the function and everything it calls), and keeps the raw py-spy output.

    .venv/bin/python bench/profile_ussd.py                      # SQLite, 16 sessions, 10 s
    .venv/bin/python bench/profile_ussd.py --connections 64 --log-level INFO
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from support import (
    USSD_PATH,
    register_patients,
    seed_demo_database,
    start_service,
    throwaway_database,
)

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "ussd_walk.lua"
PY_SPY = Path(sys.executable).parent / "py-spy"
LINE_NUMBER = re.compile(r":\d+\)$")


def summarize(raw: Path, top: int) -> None:
    """Print the top functions of py-spy's raw (collapsed stack) output, by own and total share.

    Only stacks of the event loop (those through aiohttp's `run_app`) count: py-spy on this VM
    also samples the dramatiq worker threads while they wait on a queue. Frames are grouped by
    function, without py-spy's line numbers.
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = other = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        if "run_app (" not in stack:
            other += count
            continue
        samples += count
        functions = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        own[functions[-1]] += count
        for function in set(functions):
            total[function] += count
    print(f"\n{samples} samples of the event loop ({other} of other threads left out)")
    print("\nown time:")
    for function, count in own.most_common(top):
        print(f"  {100 * count / samples:5.1f} %  {function}")
    print("\ntotal time (with callees):")
    for function, count in total.most_common(top * 2):
        print(f"  {100 * count / samples:5.1f} %  {function}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16, help="concurrent USSD sessions")
    parser.add_argument("--duration", type=int, default=10, help="seconds of profiling")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--log-level", default="WARNING", help="MYAFYA_LOG_LEVEL of the service")
    parser.add_argument("--top", type=int, default=25, help="frames to print per list")
    parser.add_argument("--output", type=Path, help="where to keep the raw py-spy output")
    parser.add_argument(
        "--native",
        action="store_true",
        help="sample C frames too (py-spy --native); pauses the server for each sample",
    )
    args = parser.parse_args()
    if not 1 <= args.connections <= 64 or not 1 <= args.duration <= 60:
        parser.error("expected --connections 1..64 and --duration 1..60 s")
    if shutil.which("wrk") is None or not PY_SPY.exists():
        parser.error("needs wrk (apt-get install -y wrk) and py-spy in the virtualenv")

    with throwaway_database("sqlite") as database:
        seed_demo_database(database)
        register_patients(database, args.connections)
        raw = args.output or database.workdir / "profile.txt"
        with start_service(database, log_level=args.log_level) as server:
            wrk = subprocess.Popen(
                [
                    "wrk",
                    f"-t{args.connections}",
                    f"-c{args.connections}",
                    f"-d{args.duration + 4}s",
                    "-s",
                    str(LUA_SCRIPT),
                    server.base_url + USSD_PATH,
                    "--",
                    "profile",
                    "markers",
                    "0",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(2)  # past the connection ramp-up
            subprocess.run(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(args.duration),
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    *(["--native"] if args.native else []),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=args.duration + 60,
            )
            wrk.communicate(timeout=args.duration + 60)
        summarize(raw, args.top)
        if args.output is None:
            print("\n(raw output removed with the temporary folder; keep it with --output)")


if __name__ == "__main__":
    main()
