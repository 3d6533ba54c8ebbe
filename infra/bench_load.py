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
from dataclasses import dataclass, field
from pathlib import Path

from infra.local.fleet import Fleet, Marketer

STEP_FUNCTIONS = ("planner", "research", "content", "qa", "payments", "execution")
ADVANCED = ("running", "awaiting_decision", "awaiting_payment", "completed")
"""Step answers that moved a thread (a duplicate answers `duplicate`, a stale message `ignored`)."""
TICK_SECONDS = 0.25


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


def _measure(stack: Fleet, report: LoadReport) -> None:
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
    stack = Fleet(data_dir, cron_seconds=config.cron_seconds, MUSE_QSTASH_RETRIES="12")
    try:
        marketer = Marketer(stack, config.channels, prefix="load")
        started = time.monotonic()
        marketer.create(config.campaigns, deadline)
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = marketer.tick()
            if marketer.open_campaigns(counts) == 0:
                break
            time.sleep(TICK_SECONDS)
        report.wall_seconds = time.monotonic() - started
        report.campaigns = len(marketer.campaigns)
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
