"""End-to-end fixtures: the emulators in one process and every function in its own process, over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.seed import ensure_local_workspace
from infra.local.stack import REPO_ROOT, LocalSecrets
from infra.local.token import mint

FUNCTIONS = ("api", "planner", "research", "content", "qa", "payments", "execution", "phonepe_webhook")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@dataclass
class FunctionProcess:
    """One function served by functions-framework in its own process, as on Cloud Run."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> float:
        """Start the process; returns seconds from spawn until the port accepts connections."""
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "functions_framework", "--target", self.name,
                 "--source", str(REPO_ROOT / "functions" / self.name / "main.py"),
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO_ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True)
        wait_for_port(self.port, proc=self.proc)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the process group (gunicorn master and workers) and wait."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Stack:
    """The running system under test."""

    emulators_url: str
    data_dir: Path
    env: dict[str, str]
    functions: dict[str, FunctionProcess]
    local: LocalSecrets
    emulators: subprocess.Popen[bytes]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.functions['api'].port}"

    def token(self, workspace: str, settings: dict[str, Any] | None = None) -> str:
        workspace_id, user_id = ensure_local_workspace(self.env["DATABASE_URL"], workspace, settings=settings)
        return mint(self.local.jwt_secret, user_id=user_id, workspace_id=workspace_id, slug=workspace,
                    issuer="http://127.0.0.1/auth/v1")

    def new_workspace(self, settings: dict[str, Any] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token('e2e-' + uuid.uuid4().hex[:8], settings)}"}

    def create(self, auth: dict[str, str], **brief: Any) -> str:
        body = {"kind": brief.pop("kind", "campaign"),
                "brief": {"title": "Diwali gifting", "objective": "Sell 3,000 gift boxes", **brief}}
        response = self.http.post(f"{self.api}/api/v1/campaigns", json=body, headers=auth)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def campaign(self, auth: dict[str, str], campaign_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.api}/api/v1/campaigns/{campaign_id}", headers=auth)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, auth: dict[str, str], campaign_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = self.campaign(auth, campaign_id)
            if view["status"] in statuses:
                return view
            if view["status"] in ("failed", "expired") and view["status"] not in statuses:
                raise AssertionError(f"campaign ended {view['status']}: {view.get('failure_reason')}")
            time.sleep(0.1)
        raise AssertionError(f"campaign still {view.get('status')!r} at {view.get('current_step')} after {timeout}s")

    def decide(self, auth: dict[str, str], campaign_id: str, action: str = "approve", **extra: Any) -> None:
        pending = self.campaign(auth, campaign_id)["pending_decision"]
        response = self.http.post(f"{self.api}/api/v1/campaigns/{campaign_id}/decisions", headers=auth,
                                  json={"decision_id": pending["id"], "action": action, **extra})
        assert response.status_code == 202, response.text

    def checkout(self, auth: dict[str, str], campaign_id: str) -> dict[str, Any]:
        response = self.http.post(f"{self.api}/api/v1/campaigns/{campaign_id}/checkout", headers=auth)
        assert response.status_code == 200, response.text
        return response.json()

    def emulator(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.emulators_url}{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def db(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        from shared.db.pool import connect

        with connect(self.env["DATABASE_URL"]) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("muse-e2e")
    ports = {name: free_port() for name in FUNCTIONS}
    urls = {name: f"http://127.0.0.1:{port}/" for name, port in ports.items()}
    emulator_port = free_port()
    log = (data_dir / "emulators.log").open("ab")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSE_", "QSTASH_", "GEMINI_"))}
    base_env["PYTHONPATH"] = str(REPO_ROOT)
    emulators = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack", "--emulators-only", "--port", str(emulator_port),
         "--data-dir", str(data_dir), "--webhook-url", urls["phonepe_webhook"], "--functions-url",
         f"http://127.0.0.1:{ports['api']}", "--qstash-backoff-scale", "0.05", "--no-seed"],
        cwd=REPO_ROOT, env=base_env, stdout=log, stderr=log)
    try:
        wait_for_port(emulator_port, proc=emulators, timeout=120)
        env = {**base_env, **json.loads((data_dir / "env.json").read_text())}
        env.update({
            "MUSE_FUNCTION_URLS": json.dumps(urls),
            "MUSE_LEASE_SECONDS": "4",
            "MUSE_BUSY_RETRY_AFTER_SECONDS": "1",
            "MUSE_QSTASH_RETRIES": "12",
            "MUSE_SSE_MAX_SECONDS": "3",
            "MUSE_PAYMENT_RECHECK_SECONDS": ",".join(["1"] * 20),
            "WORKERS": "1",
            "THREADS": "8",
        })
        functions = {name: FunctionProcess(name, ports[name], env, data_dir / f"{name}.log") for name in FUNCTIONS}
        for fn in functions.values():
            fn.start()
        running = Stack(emulators_url=f"http://127.0.0.1:{emulator_port}", data_dir=data_dir, env=env,
                        functions=functions, local=LocalSecrets.load_or_create(data_dir), emulators=emulators)
        yield running
        running.http.close()
        for fn in functions.values():
            fn.stop()
    finally:
        emulators.terminate()
        try:
            emulators.wait(timeout=20)
        except subprocess.TimeoutExpired:
            emulators.kill()
        log.close()
