"""Chaos run: campaigns through the local stack while function processes and the whole stack are SIGKILLed.

Every function runs in its own process (as on Cloud Run), QStash delivers every message twice, and a
killer picks random instants: a function mid-step (holding a lease, or between commit and publish),
or the emulators and every function at once. A driver approves decisions and pays through the
PhonePe emulator's pay page as they come up. At the end it checks that every campaign completed,
with exactly one PhonePe order, nothing published without a confirmed payment of the amount due,
one artifact per channel and variant, and no checkpoint fork.

`python -m infra.chaos` (`make chaos`) prints `name: value unit` lines; the e2e suite runs a smaller
pass of the same code (tests/e2e/test_chaos.py).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.local.fleet import Fleet, Marketer
from infra.local.processes import FUNCTIONS

DRIVER_TICK_SECONDS = 0.3


@dataclass
class ChaosConfig:
    """How hard to shake the stack."""

    campaigns: int = 30
    min_kills: int = 0
    """Keep starting campaigns (in waves of `campaigns`) until at least this many kills happened."""
    kill_interval: tuple[float, float] = (0.4, 1.2)
    stack_kill_every: int = 12
    """Every n-th kill takes down the emulators and every function at once."""
    lease_seconds: float = 6.0
    stall_seconds: float = 20.0
    """Compressed like cron: the sweeper nudges a thread nothing moved for this long."""
    cron_seconds: float = 3.0
    """Real seconds per cron minute: the sweeper's `* * * * *` schedule runs this often."""
    deadline_seconds: float = 600.0
    seed: int = 7
    channels: tuple[str, ...] = ("email", "ad")


@dataclass
class Kill:
    at: float
    target: str
    affected: list[str]


@dataclass
class ChaosReport:
    """What the run measured."""

    campaigns: int = 0
    kills: int = 0
    stack_kills: int = 0
    stuck: int = 0
    unpaid_completions: int = 0
    duplicate_side_effects: int = 0
    checkpoint_forks: int = 0
    heal_seconds: list[float] = field(default_factory=list)
    unhealed: int = 0
    wall_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def heal_p95(self) -> float:
        if not self.heal_seconds:
            return 0.0
        if len(self.heal_seconds) == 1:
            return self.heal_seconds[0]
        return statistics.quantiles(self.heal_seconds, n=20, method="inclusive")[-1]

    def lines(self) -> list[str]:
        return [f"chaos_campaigns: {self.campaigns} campaigns", f"chaos_kills: {self.kills} kills",
                f"chaos_stack_kills: {self.stack_kills} kills", f"chaos_stuck: {self.stuck} campaigns",
                f"chaos_unpaid_completions: {self.unpaid_completions} campaigns",
                f"chaos_duplicate_side_effects: {self.duplicate_side_effects} effects",
                f"chaos_checkpoint_forks: {self.checkpoint_forks} forks",
                f"chaos_heal_seconds_p95: {self.heal_p95:.1f} s",
                f"chaos_heal_samples: {len(self.heal_seconds)} crashes",
                f"chaos_wall_seconds: {self.wall_seconds:.0f} s"]


def _affected(stack: Fleet, target: str) -> list[str]:
    """Campaigns a kill of `target` interrupts: those whose lease it holds (all live ones for the stack)."""
    if target == "stack":
        rows = stack.db("SELECT id FROM public.campaigns WHERE status IN ('queued', 'running')")
    else:
        rows = stack.db("SELECT id FROM public.campaigns WHERE lease_owner LIKE %s AND lease_until > now() "
                        "AND status NOT IN ('completed', 'failed', 'expired', 'cancelled')", f"{target}-%")
    return [str(r["id"]) for r in rows]


def _killer(stack: Fleet, config: ChaosConfig, rng: random.Random, kills: list[Kill],
            stop: threading.Event) -> None:
    victims = [name for name in FUNCTIONS if name != "sweeper"]
    while not stop.wait(rng.uniform(*config.kill_interval)):
        n = len(kills) + 1
        target = "stack" if config.stack_kill_every and n % config.stack_kill_every == 0 else rng.choice(victims)
        try:
            affected = _affected(stack, target)
        except Exception:
            affected = []
        at = time.monotonic()
        if target == "stack":
            stack.kill_everything()
        else:
            stack.kill_function(target)
        kills.append(Kill(at=at, target=target, affected=affected))


def _heal_times(stack: Fleet, kills: list[Kill], started: float, wall_start: float) -> tuple[list[float], int]:
    """Seconds from each kill to the next event of each campaign it interrupted."""
    heal: list[float] = []
    unhealed = 0
    for kill in kills:
        for campaign_id in kill.affected:
            at = wall_start + (kill.at - started)
            rows = stack.db("SELECT extract(epoch FROM min(created_at)) AS t FROM public.campaign_events "
                            "WHERE campaign_id = %s AND created_at > to_timestamp(%s)", campaign_id, at)
            first = rows[0]["t"] if rows else None
            if first is None:
                status = stack.db("SELECT status FROM public.campaigns WHERE id = %s", campaign_id)[0]["status"]
                unhealed += status not in ("completed",)
                continue
            heal.append(max(0.0, float(first) - at))
    return heal, unhealed


def _check(stack: Fleet, campaigns: list[str], report: ChaosReport) -> None:
    rows = stack.db("SELECT id, status, amount_due_paise FROM public.campaigns WHERE id = ANY(%s::uuid[])", campaigns)
    report.stuck = sum(r["status"] != "completed" for r in rows) + (len(campaigns) - len(rows))
    report.details["statuses"] = sorted({r["status"] for r in rows})
    paid = {str(r["campaign_id"]): r for r in stack.db(
        "SELECT campaign_id, amount_paise, count(*) OVER (PARTITION BY campaign_id) AS n FROM public.payments "
        "WHERE campaign_id = ANY(%s::uuid[]) AND state = 'completed'", campaigns)}
    published = {str(r["campaign_id"]) for r in stack.db(
        "SELECT DISTINCT campaign_id FROM public.artifacts WHERE campaign_id = ANY(%s::uuid[]) AND "
        "status = 'published'", campaigns)}
    due = {str(r["id"]): r["amount_due_paise"] for r in rows}
    report.unpaid_completions = sum(
        1 for r in rows if (r["status"] == "completed" or str(r["id"]) in published)
        and (str(r["id"]) not in paid or paid[str(r["id"])]["amount_paise"] != due[str(r["id"])]))
    orders = httpx.get(f"{stack.emulators.url}/phonepe/_emulator/orders", timeout=30).json()["orders"]
    per_campaign: dict[str, int] = {}
    for order in orders:
        campaign = ((order.get("meta_info") or {}).get("udf1"))
        if campaign in due:
            per_campaign[campaign] = per_campaign.get(campaign, 0) + 1
    extra_orders = sum(n - 1 for n in per_campaign.values() if n > 1)
    extra_payments = sum(r["n"] - 1 for r in paid.values() if r["n"] > 1)
    artifacts = stack.db("SELECT campaign_id, channel, variant, count(*) AS n FROM public.artifacts "
                         "WHERE campaign_id = ANY(%s::uuid[]) GROUP BY 1, 2, 3", campaigns)
    extra_artifacts = sum(r["n"] - 1 for r in artifacts if r["n"] > 1)
    executes = stack.db("SELECT campaign_id, count(*) AS n FROM public.campaign_events WHERE campaign_id = "
                        "ANY(%s::uuid[]) AND type = 'step.completed' AND data->>'node' = 'execute' GROUP BY 1",
                        campaigns)
    extra_executes = sum(r["n"] - 1 for r in executes if r["n"] > 1)
    completed = [r for r in rows if r["status"] == "completed"]
    missing_orders = sum(1 for r in completed if per_campaign.get(str(r["id"]), 0) != 1)
    report.duplicate_side_effects = extra_orders + extra_payments + extra_artifacts + extra_executes
    report.details.update(extra_orders=extra_orders, extra_payments=extra_payments, extra_artifacts=extra_artifacts,
                          extra_executes=extra_executes, completed_without_exactly_one_order=missing_orders)
    forks = stack.db("SELECT count(*) AS n FROM (SELECT thread_id, parent_checkpoint_id FROM public.checkpoints "
                     "WHERE checkpoint_ns = '' AND parent_checkpoint_id IS NOT NULL AND thread_id = ANY(%s) "
                     "GROUP BY 1, 2 HAVING count(*) > 1) f", campaigns)
    report.checkpoint_forks = forks[0]["n"]
    swept = stack.db("SELECT count(*) AS n FROM public.step_outbox WHERE campaign_id = ANY(%s::uuid[]) AND "
                     "(dedup_id LIKE '%%-redrive-%%' OR dedup_id LIKE '%%-afterlease-%%' OR "
                     "dedup_id LIKE '%%-nudge-%%')", campaigns)
    report.details["healing_messages"] = swept[0]["n"]


def run(config: ChaosConfig, data_dir: Path) -> ChaosReport:
    """Run the chaos pass (see module docstring) and return what it measured."""
    rng = random.Random(config.seed)
    report = ChaosReport()
    stack = Fleet(data_dir, cron_seconds=config.cron_seconds, MUSE_LEASE_SECONDS=str(config.lease_seconds),
                  MUSE_BUSY_RETRY_AFTER_SECONDS="1", MUSE_QSTASH_RETRIES="20", MUSE_SSE_MAX_SECONDS="3",
                  MUSE_PAYMENT_RECHECK_SECONDS=",".join(["2"] * 30), MUSE_SWEEP_PUBLISH_GRACE_SECONDS="2",
                  MUSE_STALL_SECONDS=str(config.stall_seconds))
    wall_start, started = time.time(), time.monotonic()
    try:
        stack.duplicates(2)
        marketer = Marketer(stack, config.channels, prefix="chaos")
        kills: list[Kill] = []
        stop = threading.Event()
        killer = threading.Thread(target=_killer, args=(stack, config, rng, kills, stop), daemon=True)
        deadline = time.monotonic() + config.deadline_seconds
        marketer.create(config.campaigns, deadline)
        killer.start()
        while time.monotonic() < deadline:
            open_ = marketer.open_campaigns(marketer.tick())
            if open_ == 0 and len(kills) >= config.min_kills:
                break
            if open_ == 0:
                marketer.create(config.campaigns, deadline)
            time.sleep(DRIVER_TICK_SECONDS)
        stop.set()
        killer.join(timeout=120)
        settle = time.monotonic() + 120
        while marketer.open_campaigns(marketer.tick()) and time.monotonic() < settle:
            time.sleep(DRIVER_TICK_SECONDS)
        report.campaigns = len(marketer.campaigns)
        report.kills = len(kills)
        report.stack_kills = sum(k.target == "stack" for k in kills)
        report.heal_seconds, report.unhealed = _heal_times(stack, kills, started, wall_start)
        _check(stack, marketer.campaigns, report)
        report.wall_seconds = time.monotonic() - started
    finally:
        stack.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=40)
    parser.add_argument("--min-kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    config = ChaosConfig(campaigns=args.campaigns, min_kills=args.min_kills, seed=args.seed, deadline_seconds=1800)
    with tempfile.TemporaryDirectory(prefix="muse-chaos-") as tmp:
        report = run(config, Path(tmp))
    for line in report.lines():
        print(line)
    print(f"chaos_details: {report.details}")


if __name__ == "__main__":
    main()
