"""Running functions and the emulators as separate processes (end-to-end tests and benchmarks)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from infra.local.embedded import stop_unowned
from infra.local.stack import REPO_ROOT
from infra.roster import function_names

FUNCTIONS = function_names()
"""Every function of the roster (`infra/functions.toml`)."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on `port` (or `proc` dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@dataclass
class FunctionProcess:
    """One function served by functions-framework (gunicorn) in its own process, as on Cloud Run."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The function's public URL (what QStash signs as `sub`)."""
        return f"http://127.0.0.1:{self.port}/"

    def spawn(self) -> None:
        """Start the process without waiting."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "functions_framework", "--target", self.name,
                 "--source", str(REPO_ROOT / "functions" / self.name / "main.py"),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO_ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True)

    def start(self) -> None:
        """Start the process and wait until its port accepts connections."""
        self.spawn()
        wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn master and workers), like a crashed instance."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate gracefully, killing if it does not exit in 10 s."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class EmulatorProcess:
    """`infra.local.stack --emulators-only` in its own process, and the function environment it wrote."""

    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def function_env(self, function_urls: dict[str, str], **overrides: str) -> dict[str, str]:
        """Environment for function processes: the stack's env plus per-function URLs and overrides."""
        env = {**clean_environ(), **json.loads((self.data_dir / "env.json").read_text())}
        env["MUSE_FUNCTION_URLS"] = json.dumps(function_urls)
        env.update(overrides)
        return env

    def stop(self) -> None:
        """SIGTERM the stack (it stops its databases), SIGKILL it after 30 s, then stop what it left in the data dir."""
        try:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        finally:
            stop_unowned(self.data_dir)


def clean_environ() -> dict[str, str]:
    """This process's environment without Muse/cloud settings that would leak into children."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSE_", "QSTASH_", "GEMINI_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def start_emulators(data_dir: Path, *, webhook_url: str, functions_url: str,
                    backoff_scale: float = 0.05, cron_seconds: float = 60.0,
                    port: int | None = None) -> EmulatorProcess:
    """Start the emulators (and embedded Postgres/Redis) and wait until they serve.

    `cron_seconds` real seconds make one cron minute of QStash schedules (60 = real time). A `port`
    restarts a stack where it served before (same data dir: nothing is lost).
    """
    port = port or free_port()
    log = (data_dir / "emulators.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack", "--emulators-only", "--port", str(port),
         "--data-dir", str(data_dir), "--webhook-url", webhook_url, "--functions-url", functions_url,
         "--qstash-backoff-scale", str(backoff_scale), "--qstash-cron-seconds", str(cron_seconds), "--no-seed",
         "--exit-with-parent"],
        cwd=REPO_ROOT, env=clean_environ(), stdout=log, stderr=log)
    log.close()
    try:
        wait_for_port(port, proc=proc, timeout=120)
    except BaseException:
        EmulatorProcess(port=port, data_dir=data_dir, proc=proc).stop()
        raise
    return EmulatorProcess(port=port, data_dir=data_dir, proc=proc)
