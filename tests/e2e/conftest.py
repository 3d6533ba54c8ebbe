"""End-to-end fixtures: the emulators in one process and every function in its own process, over HTTP."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from qstash import QStash

from infra.local.processes import FUNCTIONS, FunctionProcess, free_port, start_emulators
from infra.local.seed import ensure_local_workspace
from infra.local.stack import LocalSecrets
from infra.local.token import mint
from shared.runtime.sweeper import ensure_schedule
from shared.settings import Settings


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

    def env_url(self, function: str) -> str:
        """The public URL of `function` (what QStash signs)."""
        return self.functions[function].url

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
    emulators = start_emulators(data_dir, webhook_url=urls["phonepe_webhook"],
                                functions_url=f"http://127.0.0.1:{ports['api']}", cron_seconds=5)
    try:
        env = emulators.function_env(
            urls, MUSE_LEASE_SECONDS="4", MUSE_BUSY_RETRY_AFTER_SECONDS="1", MUSE_QSTASH_RETRIES="12",
            MUSE_SSE_MAX_SECONDS="3", MUSE_PAYMENT_RECHECK_SECONDS=",".join(["1"] * 20), WORKERS="1", THREADS="8")
        functions = {name: FunctionProcess(name, ports[name], env, data_dir / f"{name}.log") for name in FUNCTIONS}
        try:
            for fn in functions.values():
                fn.start()
            settings = Settings(**env)  # type: ignore[arg-type]
            ensure_schedule(settings, QStash(settings.qstash_token.get_secret_value(), base_url=settings.qstash_url))
            running = Stack(emulators_url=emulators.url, data_dir=data_dir, env=env, functions=functions,
                            local=LocalSecrets.load_or_create(data_dir), emulators=emulators.proc)
            yield running
            running.http.close()
        finally:
            for fn in functions.values():
                fn.stop()
    finally:
        emulators.stop()
