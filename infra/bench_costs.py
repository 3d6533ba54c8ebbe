"""What a standard campaign costs: emulator token counts × the price table, printed as `name: value unit` lines.

One campaign (3 channels: email, ad, LinkedIn post; one variant) runs in-process through the whole graph with
every model call going through google-genai to the Gemini emulator (its token counts), web and knowledge
search canned (Tavily credits priced per call, 0 for a cache hit), and the AI-spend caps on (every call
reserved and settled in Postgres). Figures:

- `cost_per_campaign_usd`: its model calls (`usage` of the graph state, fallbacks' wasted tokens included)
  priced by `shared.models.pricing` plus its tool credits; goal < $0.05, aim ≤ $0.01.
- `cost_ledger_usd`: what the budget ledger settled for the campaign (must equal the above).
- `cost_all_strong_usd` and `cost_tiering_ratio`: the same token counts priced as if every call used the strong
  tier (the baseline without routing), and ours as a fraction of it.
- `estimate_profile_usd`, `estimate_vs_actual_ratio`: what `POST /api/v1/costs/estimate` predicts for the same
  brief without history (the profile), against the measured cost.
- `model_calls_per_campaign`, `tokens_per_campaign`.
- `budget_check_p50_ms`: what the check adds to each paid call (reserve + settle), against a bare
  `db_round_trip_p50_ms` on the same pool (`budget_check_ratio`).

Run: `python -m infra.bench_costs` (embedded Postgres, or `DATABASE_URL`).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import uuid
from dataclasses import replace
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from infra.bench_memory import postgres
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.gemini import create_app as create_gemini
from infra.local.serve import serve_in_thread
from shared.api.models import CreateCampaign
from shared.api.service import Api
from shared.auth import Principal
from shared.campaigns.graph import build_campaign_graph
from shared.db import budgets as bdb
from shared.db.pool import connect, create_pool
from shared.db.workspaces import campaign_context, ensure_workspace
from shared.deps import Deps, DepsOverrides
from shared.economics.budgets import PostgresBudgets
from shared.economics.estimate import estimate
from shared.integrations.gemini import structured_model
from shared.memory.fakes import fake_memory
from shared.models.pricing import ToolUsage, cost_micro_usd, micro_usd_to_usd
from shared.runtime.wiring import build_deps
from shared.settings import Settings
from shared.testing.fakes import CannedSearch, RecordingQueue
from shared.testing.payments import FakePhonePe

GOAL_USD = 0.05
BRIEF = {"title": "Diwali gift boxes", "objective": "Sell 500 festive tea gift boxes to urban gifters",
         "audience": "Urban professionals buying Diwali gifts", "channels": ["email", "ad", "linkedin_post"],
         "budget_inr": 20_000}


def _settings(dsn: str, gemini_url: str) -> Settings:
    env: dict[str, Any] = {
        "DATABASE_URL": dsn, "GEMINI_BASE_URL": gemini_url, "GEMINI_API_KEY": "local-gemini-key",
        "QSTASH_URL": "http://127.0.0.1:9/qstash", "QSTASH_TOKEN": "t",
        "QSTASH_CURRENT_SIGNING_KEY": "sig_current_unused_but_long_enough_0000",
        "QSTASH_NEXT_SIGNING_KEY": "sig_next_unused_but_long_enough_000000",
        "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9/redis", "UPSTASH_REDIS_REST_TOKEN": "t",
        "TAVILY_API_KEY": "k", "PHONEPE_CLIENT_ID": "c", "PHONEPE_CLIENT_SECRET": "s",
        "PHONEPE_WEBHOOK_USERNAME": "u", "PHONEPE_WEBHOOK_PASSWORD": "p", "SUPABASE_JWT_SECRET": "local-secret",
        "MUSE_QA_JUDGE": "true", "MUSE_PLAN_DEFAULT_TIER": "agency",
    }
    return Settings(**env)


def run_campaign(settings: Settings) -> tuple[dict[str, Any], str, str]:
    """One standard campaign end to end; its final state, workspace id and campaign id."""
    pool = create_pool(settings.database_url, max_size=6)
    try:
        user_id = str(uuid.uuid4())
        with connect(settings.database_url) as conn, conn.transaction():
            workspace_id = ensure_workspace(conn, slug=f"bench-{user_id[:8]}", name="bench", user_id=user_id)
        principal = Principal(user_id=uuid.UUID(user_id), claims={
            "sub": user_id, "aud": "authenticated", "role": "authenticated",
            "app_metadata": {"workspace_id": workspace_id}})
        api = Api(settings=settings, pool=pool, queue=RecordingQueue(), phonepe_factory=FakePhonePe)
        accepted, _ = api.create_campaign(principal, CreateCampaign.model_validate({"kind": "campaign",
                                                                                   "brief": BRIEF}),
                                          idempotency_key=None, workspace=None)
        campaign_id = str(accepted.id)
        deps = build_deps(settings, pool, overrides=DepsOverrides(
            model=structured_model(settings), web=CannedSearch(), knowledge=CannedSearch(), memory=fake_memory()))
        assert deps.budgets is not None
        bound: Deps = replace(deps, campaign=campaign_context(workspace_id, {}, None, user_id=user_id),
                              budget=deps.budgets.for_campaign(workspace_id, campaign_id))
        graph = build_campaign_graph().compile(checkpointer=InMemorySaver())
        config: Any = {"configurable": {"thread_id": campaign_id}, "recursion_limit": 100}
        start = {"campaign_id": campaign_id, "workspace_id": workspace_id, "kind": "campaign", "brief": BRIEF,
                 "feedback": [], "usage": []}
        graph.invoke(start, config, context=bound)
        for _ in range(6):
            snapshot = graph.get_state(config)
            if not snapshot.next:
                break
            pending = snapshot.interrupts[0]
            kind = pending.value["kind"]
            value = ({"action": "approve", "decision_id": pending.id} if kind != "payment" else
                     {"status": "paid", "amount_paise": pending.value["amount_paise"], "decision_id": pending.id})
            graph.invoke(Command(resume={pending.id: value}), config, context=bound)
        state = graph.get_state(config)
        if state.next:
            raise RuntimeError(f"the campaign did not finish: waiting at {state.next}")
        return dict(state.values), workspace_id, campaign_id
    finally:
        pool.close()


def figures(settings: Settings, state: dict[str, Any], campaign_id: str) -> dict[str, tuple[float, str]]:
    """The priced figures of a finished campaign."""
    usage = state.get("usage") or []
    models = sum(cost_micro_usd(u) or 0 for u in usage)
    strong = sum(cost_micro_usd({**u, "model": settings.model_strong}) or 0 for u in usage)
    with connect(settings.database_url) as conn:
        spend = bdb.campaign_spend(conn, campaign_id)
        credits = conn.execute("SELECT coalesce(sum(credits), 0)::float AS c FROM public.tool_usage "
                               "WHERE campaign_id = %s", (campaign_id,)).fetchone()
    tools = cost_micro_usd(ToolUsage("tavily", credits=float(credits["c"]) if credits else 0.0)) or 0
    total = models + tools
    tokens = sum(int(u.get("prompt_tokens") or 0) + int(u.get("output_tokens") or 0)
                 + int(u.get("thinking_tokens") or 0) for u in usage)
    profile = estimate("campaign", len(BRIEF["channels"]), 1, [], fast_model=settings.model_fast,
                       strong_model=settings.model_strong)
    return {
        "cost_per_campaign_usd": (micro_usd_to_usd(total), "usd"),
        "estimate_profile_usd": (micro_usd_to_usd(profile.expected), "usd"),
        "estimate_vs_actual_ratio": (round(profile.expected / total, 3) if total else 0.0, "x"),
        "cost_vs_goal_ratio": (round(micro_usd_to_usd(total) / GOAL_USD, 3), "x"),
        "cost_ledger_usd": (micro_usd_to_usd(spend["spent"]), "usd"),
        "cost_all_strong_usd": (micro_usd_to_usd(strong + tools), "usd"),
        "cost_tiering_ratio": (round(total / (strong + tools), 3) if strong + tools else 0.0, "x"),
        "cost_tool_usd": (micro_usd_to_usd(tools), "usd"),
        "model_calls_per_campaign": (len(usage), "calls"),
        "tokens_per_campaign": (tokens, "tokens"),
    }


def check_latency(settings: Settings, workspace_id: str, campaign_id: str,
                  rounds: int = 200) -> dict[str, tuple[float, str]]:
    """What the budget check adds to each paid call (reserve + settle, two short transactions), against a bare
    `SELECT 1` round trip on the same pool."""
    pool = create_pool(settings.database_url, max_size=2)
    try:
        budgets = PostgresBudgets.from_settings(pool, settings)
        gate = budgets.for_campaign(workspace_id, campaign_id)
        checks, bare = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            gate.reserve_model("gemini-2.5-flash", prompt_chars=2_000).cancel()
            checks.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            with pool.connection() as conn:
                conn.execute("SELECT 1")
            bare.append((time.perf_counter() - started) * 1000)
    finally:
        pool.close()
    check, trip = statistics.median(checks), statistics.median(bare)
    return {"budget_check_p50_ms": (round(check, 3), "ms"), "db_round_trip_p50_ms": (round(trip, 3), "ms"),
            "budget_check_ratio": (round(check / trip, 2), "x")}


def main(argv: list[str] | None = None) -> int:
    """Run the standard campaign once and print its figures."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    gemini = serve_in_thread(create_gemini(EmulatorConfig(database_url="")))
    try:
        with postgres() as dsn:
            settings = _settings(dsn, gemini.url)
            state, workspace_id, campaign_id = run_campaign(settings)
            measured = figures(settings, state, campaign_id) | check_latency(settings, workspace_id, campaign_id)
            for name, (value, unit) in measured.items():
                print(f"{name}: {value} {unit}", flush=True)
    finally:
        gemini.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
