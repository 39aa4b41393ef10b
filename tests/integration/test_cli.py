"""The `myafya` command, run as a separate process the way an operator runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def run_cli(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MYAFYA_")}
    environment["MYAFYA_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "myafya", *args],
        cwd=tmp_path,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert (tmp_path / "cli.db").exists()


def test_seed_demo_prints_generated_password_once(tmp_path: Path) -> None:
    first = run_cli(tmp_path, "seed-demo")
    assert first.returncode == 0, first.stderr
    assert "Demo staff password (shown once):" in first.stdout
    second = run_cli(tmp_path, "seed-demo")
    assert "nothing seeded" in second.stdout
    assert "password" not in second.stdout


def test_seed_demo_uses_configured_password(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "seed-demo", MYAFYA_DEMO_PASSWORD="configured-demo-pass")
    assert result.returncode == 0, result.stderr
    assert "password" not in result.stdout
    assert "configured-demo-pass" not in result.stdout + result.stderr


def test_create_user_reads_password_from_stdin(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "create-user",
        "--role",
        "admin",
        "--username",
        "pharm-test",
        stdin="long-enough-password\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Created admin user 'pharm-test'" in result.stdout
    assert "long-enough-password" not in result.stdout + result.stderr

    again = run_cli(
        tmp_path,
        "create-user",
        "--role",
        "admin",
        "--username",
        "pharm-test",
        stdin="another-long-password\n",
    )
    assert again.returncode == 1
    assert "pharm-test" in again.stderr


def test_create_user_links_doctor(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "seed-demo", MYAFYA_DEMO_PASSWORD="demo-password-1").returncode == 0
    missing = run_cli(
        tmp_path,
        "create-user",
        "--role",
        "doctor",
        "--username",
        "doc-test",
        stdin="long-enough-password\n",
    )
    assert missing.returncode == 2
    assert "--doctor-id" in missing.stderr
    unknown = run_cli(
        tmp_path,
        "create-user",
        "--role",
        "doctor",
        "--username",
        "doc-test",
        "--doctor-id",
        "999",
        stdin="long-enough-password\n",
    )
    assert unknown.returncode == 1
    assert "no doctors record has id 999" in unknown.stderr
    created = run_cli(
        tmp_path,
        "create-user",
        "--role",
        "doctor",
        "--username",
        "doc-test",
        "--doctor-id",
        "1",
        stdin="long-enough-password\n",
    )
    assert created.returncode == 0, created.stderr


def test_create_user_rejects_short_password(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, "create-user", "--role", "admin", "--username", "admin-test", stdin="short\n"
    )
    assert result.returncode == 1
    assert "password" in result.stderr


def test_create_user_rejects_unknown_role(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "create-user", "--role", "nurse", "--username", "x")
    assert result.returncode == 2
    assert "nurse" in result.stderr


def test_unknown_setting_stops_start_up(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", MYAFYA_TIMEZONE_TYPO="x")
    assert result.returncode == 2
    assert "unknown setting MYAFYA_TIMEZONE_TYPO" in result.stderr


def test_invalid_setting_stops_start_up(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "migrate", MYAFYA_TIMEZONE="Nowhere/Atlantis")
    assert result.returncode == 2
    assert "invalid setting MYAFYA_TIMEZONE" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_prints_simulator_and_curl(tmp_path: Path) -> None:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MYAFYA_")}
    environment["MYAFYA_DATABASE_URL"] = f"sqlite:///{tmp_path / 'serve.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "myafya", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("myafya serve did not become healthy in 30 s")
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=15)
    assert f"USSD simulator: http://127.0.0.1:{port}/simulator" in stdout
    assert f"curl -s http://127.0.0.1:{port}/webhooks/africastalking/ussd" in stdout
    assert "Demo staff password (shown once):" in stdout
    assert "sandbox" in stderr  # the start-up log line names the mode


def test_serve_reports_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(tmp_path, "serve", "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "MyAfya is running" not in result.stdout
    assert "job system started" not in result.stdout + result.stderr
    assert not (tmp_path / "cli.db").exists(), "start-up touched the database"


def test_serve_rejects_invalid_port(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--port", "99999")
    assert result.returncode == 2
    assert "invalid port 99999" in result.stderr


def test_live_mode_without_credentials_stops(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", MYAFYA_SANDBOX="0")
    assert result.returncode == 2
    assert "MYAFYA_AT_USERNAME and MYAFYA_AT_API_KEY" in result.stderr


def test_sandbox_worker_rejects_remote_public_url(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "worker",
        MYAFYA_SANDBOX="1",
        MYAFYA_BROKER_URL="redis://127.0.0.1:6379/0",
        MYAFYA_PUBLIC_URL="https://hooks.example.test",
    )

    assert result.returncode == 2
    assert "MYAFYA_PUBLIC_URL" in result.stderr
    assert "hooks.example.test" in result.stderr
    assert "loopback" in result.stderr
