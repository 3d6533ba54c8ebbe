"""The local stack as Cloud Run would run it, for load and chaos runs: every function in its own process.

`Fleet` starts the emulators (one process, with the embedded Postgres and Redis) and each function of the
roster in its own functions-framework process on loopback, creates the sweeper's QStash schedule, and can
SIGKILL a function or the whole fleet and bring it back on the same ports and data. `Marketer` plays the
users: creates campaigns through the API, approves what waits on a decision and pays through the PhonePe
emulator's pay page.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from infra.local.processes import FUNCTIONS, EmulatorProcess, FunctionProcess, free_port, start_emulators
from infra.local.seed import ensure_local_workspace
from infra.local.stack import LocalSecrets
from infra.local.token import mint

TERMINAL = ("completed", "failed", "expired", "cancelled")
ACT_AGAIN_SECONDS = 10.0
"""A decision or payment the marketer acted on but still pending after this long is acted on again."""


class Fleet:
    """The emulators and every function in their own processes, restartable in place."""

    def __init__(self, data_dir: Path, *, cron_seconds: float, **env: str) -> None:
        self.data_dir = data_dir
        self.cron_seconds = cron_seconds
        self.ports = {name: free_port() for name in FUNCTIONS}
        self.urls = {name: f"http://127.0.0.1:{port}/" for name, port in self.ports.items()}
        self.functions: dict[str, FunctionProcess] = {}
        self.emulators: EmulatorProcess = self._start_emulators(None)
        self.http = httpx.Client(timeout=15)
        try:
            self.env = self.emulators.function_env(self.urls, WORKERS="1", THREADS="8", **env)
            self.functions = {name: FunctionProcess(name, self.ports[name], self.env, data_dir / f"{name}.log")
                              for name in FUNCTIONS}
            for fn in self.functions.values():
                fn.start()
            self.local = LocalSecrets.load_or_create(data_dir)
            self._schedule_sweeper()
        except BaseException:
            self.stop()
            raise

    def _start_emulators(self, port: int | None) -> EmulatorProcess:
        return start_emulators(self.data_dir, webhook_url=self.urls["phonepe_webhook"],
                               functions_url=f"http://127.0.0.1:{self.ports['api']}", backoff_scale=0.05,
                               cron_seconds=self.cron_seconds, port=port)

    def _schedule_sweeper(self) -> None:
        """The sweeper's QStash schedule, created through the official SDK as `python -m infra.schedules` does."""
        from qstash import QStash

        from shared.runtime.sweeper import ensure_schedule
        from shared.settings import Settings

        settings = Settings(**self.env)  # type: ignore[arg-type]
        ensure_schedule(settings, QStash(settings.qstash_token.get_secret_value(), base_url=settings.qstash_url))

    @property
    def api(self) -> str:
        return self.urls["api"].rstrip("/")

    def duplicates(self, times: int) -> None:
        """Have the QStash emulator deliver every message `times` times."""
        self.http.post(f"{self.emulators.url}/qstash/_emulator/duplicates", json={"times": times}).raise_for_status()

    def kill_function(self, name: str) -> None:
        """SIGKILL one function's process group, then start it again."""
        fn = self.functions[name]
        fn.kill()
        fn.start()

    def kill_everything(self) -> None:
        """SIGKILL the emulators and every function, then bring them back on the same ports and data."""
        port = self.emulators.port
        self.emulators.proc.kill()
        self.emulators.proc.wait(timeout=10)
        for fn in self.functions.values():
            fn.kill()
        self.emulators = self._start_emulators(port)
        for fn in self.functions.values():
            fn.start()

    def db(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        from shared.db.pool import connect

        with connect(self.env["DATABASE_URL"]) as conn:
            return conn.execute(sql, params).fetchall()

    def stop(self) -> None:
        self.http.close()
        for fn in self.functions.values():
            fn.stop()
        self.emulators.stop()


class Marketer:
    """Plays the users of one new workspace: creates campaigns, approves decisions, pays checkouts.

    It reads every campaign's state in one query per tick and acts through the API like a user would.
    """

    def __init__(self, fleet: Fleet, channels: tuple[str, ...], *, prefix: str) -> None:
        self.fleet = fleet
        self.channels = channels
        workspace = f"{prefix}-{uuid.uuid4().hex[:8]}"
        workspace_id, user_id = ensure_local_workspace(fleet.env["DATABASE_URL"], workspace)
        token = mint(fleet.local.jwt_secret, user_id=user_id, workspace_id=workspace_id, slug=workspace,
                     issuer="http://127.0.0.1/auth/v1")
        self.auth = {"Authorization": f"Bearer {token}"}
        self.campaigns: list[str] = []
        self.acted: dict[str, float] = {}
        """Pending decision id (or campaign id awaiting payment) → when the marketer last acted on it."""

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        try:
            return self.fleet.http.request(method, url, **kwargs)
        except httpx.HTTPError:
            return None

    def create(self, n: int, deadline: float) -> None:
        """Create `n` campaigns (retrying each with its Idempotency-Key while the API is down)."""
        for i in range(n):
            key = uuid.uuid4().hex
            body = {"kind": "campaign", "brief": {"title": f"Campaign {len(self.campaigns) + 1}",
                                                  "objective": "Sell gift boxes", "channels": list(self.channels),
                                                  "budget_inr": 2000 + i}}
            while time.monotonic() < deadline:
                response = self._request("POST", f"{self.fleet.api}/api/v1/campaigns", json=body,
                                         headers={**self.auth, "Idempotency-Key": key})
                if response is not None and response.status_code in (200, 201, 202):
                    self.campaigns.append(response.json()["id"])
                    break
                time.sleep(0.3)

    def tick(self) -> dict[str, int]:
        """Act on every campaign waiting for its marketer; returns how many campaigns are in each status."""
        rows = self.fleet.db("SELECT id, status, pending_decision FROM public.campaigns WHERE id = ANY(%s::uuid[])",
                             self.campaigns)
        counts: dict[str, int] = {}
        now = time.monotonic()
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
            campaign_id, pending = str(row["id"]), row["pending_decision"] or {}
            if row["status"] == "awaiting_decision" and pending:
                if now - self.acted.get(pending["id"], -ACT_AGAIN_SECONDS) >= ACT_AGAIN_SECONDS:
                    answered = self._request("POST", f"{self.fleet.api}/api/v1/campaigns/{campaign_id}/decisions",
                                             headers=self.auth,
                                             json={"decision_id": pending["id"], "action": "approve"})
                    if answered is not None and answered.status_code < 500:
                        self.acted[pending["id"]] = now
            elif row["status"] == "awaiting_payment":
                if now - self.acted.get(campaign_id, -ACT_AGAIN_SECONDS) >= ACT_AGAIN_SECONDS and \
                        self._pay(campaign_id):
                    self.acted[campaign_id] = now
        return counts

    def open_campaigns(self, counts: dict[str, int]) -> int:
        """Campaigns not yet in a terminal status (including any the last query did not see)."""
        return len(self.campaigns) - sum(n for status, n in counts.items() if status in TERMINAL)

    def _pay(self, campaign_id: str) -> bool:
        """Check out and pay on the pay page; False when the API or the pay page could not be reached."""
        response = self._request("POST", f"{self.fleet.api}/api/v1/campaigns/{campaign_id}/checkout",
                                 headers=self.auth)
        if response is None or response.status_code != 200:
            return False
        paid = self._request("POST", response.json()["redirect_url"], data={"outcome": "success"},
                             follow_redirects=False)
        return paid is not None and paid.status_code < 500
