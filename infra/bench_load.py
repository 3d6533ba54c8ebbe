"""Load figure: many campaigns through completion on the local stack, every function in its own process.

The emulators (QStash, Gemini, Tavily, PhonePe, Supabase auth) run in one process on loopback and each
function in its own functions-framework process, as in the end-to-end tests and `make chaos`. A driver
creates the campaigns through the API, approves each decision through the API and pays each checkout
through the PhonePe emulator's pay page (whose webhook resumes the campaign), until every campaign
completed or the deadline passed.

Prints `name: value unit` lines (`make bench`):
- `load_campaigns`: campaigns created;
- `load_steps_per_second`: step deliveries that advanced a campaign, per second of wall time from the
  first create to the last completion (human turns included: the driver acts within a tick);
- `load_step_p50_ms` / `load_step_p95_ms`: per step latency as QStash sees it: from the emulator's
  `ACTIVE` event (the attempt is sent) to its `DELIVERED` event (the function answered 2xx), for each
  delivery to a step function whose answer says it advanced the thread (duplicates, ignored
  messages and failure callbacks left out); so lease, graph run, commit and publish, plus the HTTP
  hop and any wait for a worker thread of the function under load;
- `load_step_p95_ms_<function>`: the same, per step function;
- `load_busy_answers`: attempts answered 429 (thread busy) that QStash retried;
- `load_stuck`: campaigns not completed at the end (0 is the pass mark).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.local.processes import FUNCTIONS, EmulatorProcess, FunctionProcess, free_port, start_emulators
from infra.local.seed import ensure_local_workspace
from infra.local.stack import LocalSecrets
from infra.local.token import mint

STEP_FUNCTIONS = ("planner", "research", "content", "qa", "payments", "execution")
ADVANCED = ("running", "awaiting_decision", "awaiting_payment", "completed")
"""Step answers that moved a thread (a duplicate answers `duplicate`, a stale message `ignored`)."""
TICK_SECONDS = 0.25
ACT_AGAIN_SECONDS = 10.0
"""A decision or payment the driver acted on but still pending after this long is acted on again."""


@dataclass
class LoadConfig:
    """How much load, and how long it may take."""

    campaigns: int = 200
    deadline_seconds: float = 900.0
    channels: tuple[str, ...] = ("email", "ad")
    cron_seconds: float = 5.0
    """Real seconds per cron minute: the sweeper's schedule runs this often."""


@dataclass
class LoadReport:
    """What the run measured."""

    campaigns: int = 0
    completed: int = 0
    wall_seconds: float = 0.0
    step_ms: list[float] = field(default_factory=list)
    step_ms_by_function: dict[str, list[float]] = field(default_factory=dict)
    busy_answers: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def stuck(self) -> int:
        return self.campaigns - self.completed

    def lines(self) -> list[str]:
        per_second = len(self.step_ms) / self.wall_seconds if self.wall_seconds else 0.0
        return [f"load_campaigns: {self.campaigns} campaigns",
                f"load_steps: {len(self.step_ms)} steps",
                f"load_wall_seconds: {self.wall_seconds:.1f} s",
                f"load_steps_per_second: {per_second:.2f} steps/s",
                f"load_step_p50_ms: {_pct(self.step_ms, 0.50):.1f} ms",
                f"load_step_p95_ms: {_pct(self.step_ms, 0.95):.1f} ms",
                *(f"load_step_p95_ms_{name}: {_pct(samples, 0.95):.1f} ms"
                  for name, samples in self.step_ms_by_function.items()),
                f"load_busy_answers: {self.busy_answers} attempts",
                f"load_stuck: {self.stuck} campaigns"]


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class LoadStack:
    """The emulators and every function, each in its own process on loopback."""

    def __init__(self, data_dir: Path, config: LoadConfig) -> None:
        self.ports = {name: free_port() for name in FUNCTIONS}
        self.urls = {name: f"http://127.0.0.1:{port}/" for name, port in self.ports.items()}
        self.functions: dict[str, FunctionProcess] = {}
        self.emulators: EmulatorProcess = start_emulators(
            data_dir, webhook_url=self.urls["phonepe_webhook"], functions_url=f"http://127.0.0.1:{self.ports['api']}",
            cron_seconds=config.cron_seconds)
        self.http = httpx.Client(timeout=30)
        try:
            self.env = self.emulators.function_env(self.urls, MUSE_QSTASH_RETRIES="12", WORKERS="1", THREADS="8")
            for name in FUNCTIONS:
                self.functions[name] = FunctionProcess(name, self.ports[name], self.env, data_dir / f"{name}.log")
                self.functions[name].start()
            self.local = LocalSecrets.load_or_create(data_dir)
        except BaseException:
            self.stop()
            raise

    @property
    def api(self) -> str:
        return self.urls["api"].rstrip("/")

    def schedule_sweeper(self) -> None:
        """The sweeper's QStash schedule, as deploy creates it."""
        from qstash import QStash

        from shared.runtime.sweeper import ensure_schedule
        from shared.settings import Settings

        settings = Settings(**self.env)  # type: ignore[arg-type]
        ensure_schedule(settings, QStash(settings.qstash_token.get_secret_value(), base_url=settings.qstash_url))

    def db(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        from shared.db.pool import connect

        with connect(self.env["DATABASE_URL"]) as conn:
            return conn.execute(sql, params).fetchall()

    def stop(self) -> None:
        self.http.close()
        for fn in self.functions.values():
            fn.stop()
        self.emulators.stop()


class Driver:
    """Plays the marketers: creates campaigns, approves what waits on them, pays through the pay page.

    It reads every campaign's state in one query per tick and acts through the API like a user would.
    """

    def __init__(self, stack: LoadStack, auth: dict[str, str], channels: tuple[str, ...]) -> None:
        self.stack = stack
        self.auth = auth
        self.channels = channels
        self.campaigns: list[str] = []
        self.acted: dict[str, float] = {}
        """Pending decision id (or campaign id awaiting payment) → when the driver last acted on it."""

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        try:
            return self.stack.http.request(method, url, **kwargs)
        except httpx.HTTPError:
            return None

    def create(self, n: int, deadline: float) -> None:
        for i in range(n):
            key = uuid.uuid4().hex
            body = {"kind": "campaign", "brief": {"title": f"Load {i}", "objective": "Sell gift boxes",
                                                  "channels": list(self.channels), "budget_inr": 2000 + i}}
            while time.monotonic() < deadline:
                response = self._request("POST", f"{self.stack.api}/api/v1/campaigns", json=body,
                                         headers={**self.auth, "Idempotency-Key": key})
                if response is not None and response.status_code in (200, 201, 202):
                    self.campaigns.append(response.json()["id"])
                    break
                time.sleep(0.3)

    def tick(self) -> dict[str, int]:
        """Act on every campaign waiting for its marketer; returns how many campaigns are in each status."""
        rows = self.stack.db("SELECT id, status, pending_decision FROM public.campaigns WHERE id = ANY(%s::uuid[])",
                             self.campaigns)
        counts: dict[str, int] = {}
        now = time.monotonic()
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
            campaign_id, pending = str(row["id"]), row["pending_decision"] or {}
            if row["status"] == "awaiting_decision" and pending:
                if now - self.acted.get(pending["id"], -ACT_AGAIN_SECONDS) >= ACT_AGAIN_SECONDS:
                    self.acted[pending["id"]] = now
                    self._request("POST", f"{self.stack.api}/api/v1/campaigns/{campaign_id}/decisions",
                                  headers=self.auth, json={"decision_id": pending["id"], "action": "approve"})
            elif row["status"] == "awaiting_payment":
                if now - self.acted.get(campaign_id, -ACT_AGAIN_SECONDS) >= ACT_AGAIN_SECONDS:
                    self.acted[campaign_id] = now
                    self._pay(campaign_id)
        return counts

    def _pay(self, campaign_id: str) -> None:
        response = self._request("POST", f"{self.stack.api}/api/v1/campaigns/{campaign_id}/checkout",
                                 headers=self.auth)
        if response is None or response.status_code != 200:
            return
        self._request("POST", response.json()["redirect_url"], data={"outcome": "success"}, follow_redirects=False)


_DELIVERIES = """
SELECT d.url, d.time_ms - a.time_ms AS ms, d.extra->>'responseBody' AS body
FROM qstash_emulator.events d
CROSS JOIN LATERAL (
    SELECT time_ms FROM qstash_emulator.events a
    WHERE a.message_id = d.message_id AND a.state = 'ACTIVE' AND a.id < d.id ORDER BY a.id DESC LIMIT 1) a
WHERE d.state = 'DELIVERED' AND d.url = ANY(%s)
"""
_BUSY = """
SELECT count(*) AS n FROM qstash_emulator.events
WHERE state = 'ERROR' AND url = ANY(%s) AND (extra->>'responseStatus')::int = 429
"""


def _advanced(body: str | None) -> bool:
    try:
        return json.loads(body or "").get("status") in ADVANCED
    except (ValueError, AttributeError):
        return False


def _measure(stack: LoadStack, report: LoadReport) -> None:
    names = {stack.urls[name]: name for name in STEP_FUNCTIONS}
    urls = list(names)
    report.step_ms_by_function = {name: [] for name in STEP_FUNCTIONS}
    for row in stack.db(_DELIVERIES, urls):
        if _advanced(row["body"]):
            report.step_ms.append(float(row["ms"]))
            report.step_ms_by_function[names[row["url"]]].append(float(row["ms"]))
    report.busy_answers = stack.db(_BUSY, urls)[0]["n"]


def run(config: LoadConfig, data_dir: Path) -> LoadReport:
    """Drive `config.campaigns` campaigns to completion (or the deadline) and measure the steps."""
    report = LoadReport()
    deadline = time.monotonic() + config.deadline_seconds
    stack = LoadStack(data_dir, config)
    try:
        stack.schedule_sweeper()
        workspace = f"load-{uuid.uuid4().hex[:8]}"
        workspace_id, user_id = ensure_local_workspace(stack.env["DATABASE_URL"], workspace)
        token = mint(stack.local.jwt_secret, user_id=user_id, workspace_id=workspace_id, slug=workspace,
                     issuer="http://127.0.0.1/auth/v1")
        driver = Driver(stack, {"Authorization": f"Bearer {token}"}, config.channels)
        started = time.monotonic()
        driver.create(config.campaigns, deadline)
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = driver.tick()
            if sum(n for status, n in counts.items() if status in ("completed", "failed", "expired")) \
                    == len(driver.campaigns):
                break
            time.sleep(TICK_SECONDS)
        report.wall_seconds = time.monotonic() - started
        report.campaigns = len(driver.campaigns)
        report.completed = counts.get("completed", 0)
        report.statuses = counts
        _measure(stack, report)
    finally:
        stack.stop()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=LoadConfig.campaigns)
    parser.add_argument("--deadline", type=float, default=LoadConfig.deadline_seconds,
                        help="seconds after which the run stops and counts what did not complete as stuck")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the processes on the way out
    config = LoadConfig(campaigns=args.campaigns, deadline_seconds=args.deadline)
    with tempfile.TemporaryDirectory(prefix="muse-load-") as tmp:
        report = run(config, Path(tmp))
    for text in report.lines():
        print(text, flush=True)
    if report.stuck:
        print(f"load_statuses: {report.statuses}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
