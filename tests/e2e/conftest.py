"""Fixtures for end-to-end tests: the real `myafya serve` process and a headless Chromium.

The server runs in sandbox mode on a free loopback port with a fresh SQLite database and its
working directory in a temporary folder, so no developer `.env` file is read. Browser tests need
Debian's Chromium at /usr/bin/chromium; they skip without it, unless MYAFYA_REQUIRE_SERVICES=1
makes that a failure. Playwright never downloads a browser of its own here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import service_unavailable

CHECKOUT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
DEMO_PASSWORD = "e2e-demo-password"

# Keep Chromium from contacting any host but the test server: no updates, sync, QUIC or proxy.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-proxy-server",
]

# Bypass any HTTP proxy from the environment: every request goes to our own loopback server.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Store each phase's report on the test item, so fixtures can tell whether it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def item_failed(node: pytest.Item) -> bool:
    reports = (getattr(node, f"report_{phase}", None) for phase in ("setup", "call"))
    return any(report is not None and report.failed for report in reports)


def free_port() -> int:
    # NOTE: another process could take the port between this check and the server's bind.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def myafya_command() -> list[str]:
    """Return the command that runs the `myafya` CLI of the interpreter running the tests."""
    if (CHECKOUT / "myafya" / "__main__.py").exists():
        return [sys.executable, "-m", "myafya"]
    return [str(Path(sys.executable).parent / "myafya")]


def server_environment(database_path: Path) -> dict[str, str]:
    # Settings from the developer's shell would change what the server does, so drop them.
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("MYAFYA_")
    }
    environment.update(
        MYAFYA_DATABASE_URL=f"sqlite:///{database_path}",
        MYAFYA_DEMO_PASSWORD=DEMO_PASSWORD,
        MYAFYA_SANDBOX="1",
    )
    # Import the service from this checkout even if the virtualenv contains another copy.
    paths = [str(CHECKOUT), os.environ.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return environment


def wait_until_healthy(server: RunningServer) -> None:
    """Poll `GET /healthz` until it returns 200, and fail with the server's stderr otherwise."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_problem = "no response yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"myafya serve exited with code {server.process.returncode} before it was "
                f"healthy. Its stderr:\n{read_log(server.stderr_path)}"
            )
        try:
            with _DIRECT.open(f"{server.base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
                last_problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last_problem = f"HTTP {exc.code}"
        except OSError as exc:
            last_problem = str(exc)
        time.sleep(0.2)
    pytest.fail(
        f"GET {server.base_url}/healthz did not return 200 within {STARTUP_TIMEOUT_S:.0f} s "
        f"(last: {last_problem}). Server stderr:\n{read_log(server.stderr_path)}"
    )


def read_log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """Start `myafya serve` in sandbox mode, wait until it is healthy, stop it afterwards.

    When the test fails, the server's stderr is printed, so its log appears in the report.
    """
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    port = free_port()
    stdout_path = tmp_path / "server.stdout"
    stderr_path = tmp_path / "server.stderr"
    command = [*myafya_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]

    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=server_environment(tmp_path / "e2e.db"),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    running = RunningServer(f"http://127.0.0.1:{port}", process, stdout_path, stderr_path)
    try:
        wait_until_healthy(running)
        yield running
    finally:
        stop(process)
        if item_failed(request.node):
            print(f"--- stderr of {' '.join(command)} ---")
            print(read_log(stderr_path))


@pytest.fixture
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        service_unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
def browser_page(chromium_path: Path, tmp_path: Path) -> Iterator[Page]:
    """Open a Playwright page in a fresh headless Chromium profile, and close it afterwards."""
    profile = tmp_path / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(chromium_path),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 900},
        )
        try:
            page = context.new_page()
            yield page
        finally:
            context.close()
