"""The planner's nodes: plan, strategy, the human approval of the strategy, and Tier 1 briefs."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from shared.brandkit import BrandKit, as_brand_kit
from shared.campaigns.festivals import Festival, anchored, campaign_festivals, headline_festivals
from shared.campaigns.prompts import (
    BRIEFER,
    PLANNER,
    STRATEGIST,
    brief_context,
    brief_prompt,
    language_of,
    plan_prompt,
    strategy_prompt,
)
from shared.campaigns.schemas import BudgetLine, ContentBrief, Plan, Strategy
from shared.campaigns.state import CampaignState
from shared.deps import Deps
from shared.economics.media import split_budget
from shared.models.context import shared_context
from shared.models.usage import usage_entries

MAX_CHANNELS = {"campaign": 4, "move": 2}


def plan(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Plan the campaign (strong tier), or reuse a proven plan of a similar past task of the workspace."""
    deps = runtime.context
    brief = state["brief"]
    description = f"{state['kind']}: {brief['title']}. {brief['objective']}"
    reused = deps.plans.lookup(state["workspace_id"], state["kind"], description)
    if reused is not None and not state.get("feedback"):
        planned = Plan.model_validate(reused.plan)
        planned = planned.model_copy(update={"channels": brief_channels(planned, state["kind"], brief),
                                             "specialists": with_calendar(
                                                 planned.specialists, state["kind"],
                                                 anchored(brief, state.get("campaign_id")))})
        change = {"action": "reuse", "reason": f"a similar past {state['kind']} succeeded with this plan "
                  f"(confidence {reused.confidence:.2f})", "source_task": reused.task_id}
        return {"plan": planned.model_dump(), "course_changes": [change], "reviews": 0,
                "specialists_run": None, "findings": None, "tool_runs": None}
    prompt = plan_prompt(state["kind"], brief, remembered=deps.plans.recall(state["workspace_id"], description),
                         feedback=state.get("feedback") or [])
    out = deps.model.generate(tier="strong", system=PLANNER, prompt=prompt, schema=Plan)
    planned = bounded_plan(out.value, kind=state["kind"], brief=anchored(brief, state.get("campaign_id")))
    return {"plan": planned.model_dump(), "usage": usage_entries("plan", out), "reviews": 0,
            "specialists_run": None, "findings": None, "tool_runs": None}


def brief_channels(proposed: Plan, kind: str, brief: dict[str, Any]) -> list[str]:
    """The brief's channels when it names them (a plan, the model's or one reused from memory, picks only
    when it names none), at most `MAX_CHANNELS` of the kind."""
    return list(dict.fromkeys(brief.get("channels") or proposed.channels))[:MAX_CHANNELS[kind]]


def bounded_plan(proposed: Plan, *, kind: str, brief: dict[str, Any]) -> Plan:
    """The model's plan within what the brief and code decide: the brief's channels, a bounded number of
    queries, and web and knowledge research always among the specialists."""
    channels = brief_channels(proposed, kind, brief)
    queries = proposed.research_queries[: 2 if kind == "move" else 4]
    specialists = list(dict.fromkeys(["web_research", "knowledge_research", *proposed.specialists]))
    return proposed.model_copy(update={"channels": channels, "research_queries": queries,
                                       "specialists": with_calendar(specialists, kind, brief)})


def with_calendar(specialists: list[Any], kind: str, brief: dict[str, Any]) -> list[Any]:
    """The plan's specialists with the festival calendar among them whenever a festival's window overlaps the
    campaign's (whether or not the planner asked), within the kind's bound."""
    chosen = list(dict.fromkeys(specialists))
    if campaign_festivals(brief) and "festival_calendar" not in chosen:
        chosen.insert(2, "festival_calendar")
    return chosen[: 3 if kind == "move" else 5]


def festivals_used(brief: dict[str, Any]) -> list[Festival]:
    """The festivals a campaign's strategy builds on (`headline_festivals` of its window and states)."""
    return headline_festivals(campaign_festivals(brief))


def strategy(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Choose positioning and an INR budget (strong tier), bounded by the brief, the workspace and the plan."""
    constraints = runtime.context.campaign.budget_constraints
    festivals = [f.as_dict() for f in festivals_used(anchored(state["brief"], state.get("campaign_id")))]
    prompt = strategy_prompt(state["brief"], state["plan"], state["research_summary"], constraints=constraints,
                             feedback=state.get("feedback") or [], festivals=festivals)
    out = runtime.context.model.generate(tier="strong", system=STRATEGIST, prompt=prompt, schema=Strategy)
    chosen = bounded_strategy(out.value, channels=state["plan"]["channels"],
                              brief_budget=state["brief"].get("budget_inr"),
                              workspace_max=constraints.get("max_budget_inr"))
    chosen = chosen.model_copy(update={"festivals": [f"{f['name']} ({f['date']}, {f['scope']})" for f in festivals]})
    return {"strategy": chosen.model_dump(), "usage": usage_entries("strategy", out)}


def bounded_strategy(proposed: Strategy, *, channels: list[str], brief_budget: int | None,
                     workspace_max: int | None) -> Strategy:
    """The model's strategy within what code and humans decided: the brief's budget when it names one, never
    above the workspace's `max_budget_inr`, and a split over exactly the plan's channels that sums to the budget
    (the model's amounts are only proportions; whole rupees by largest remainder, `shared.economics.media`).
    Whatever the research said, the model cannot widen them.
    """
    budget = int(brief_budget) if brief_budget else proposed.budget_inr
    if workspace_max is not None:
        budget = min(budget, int(workspace_max))
    budget = max(budget, 100)
    split = split_budget(budget, [(line.channel, line.amount_inr) for line in proposed.budget_split], channels)
    lines = [BudgetLine.model_validate(line) for line in split]
    return proposed.model_copy(update={"budget_inr": budget, "budget_split": lines})


def approve_strategy(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Pause for a human decision on positioning and budget; apply approve, edit or reject."""
    proposed = state["strategy"]
    decision = interrupt({
        "kind": "strategy_approval",
        "positioning": proposed["positioning"],
        "key_messages": proposed["key_messages"],
        "budget_inr": proposed["budget_inr"],
        "budget_split": proposed["budget_split"],
        "festivals": proposed.get("festivals") or [],
    })
    action = decision["action"]
    if action == "reject":
        feedback = decision.get("feedback") or "Rejected without comment."
        return {"approval": "rejected", "feedback": [feedback],
                "course_changes": [{"action": "replan", "reason": f"strategy rejected: {feedback}"}]}
    learned = runtime.context.plans.learn_from_decision(
        state["workspace_id"], kind="strategy_approval", action=action,
        payload={**proposed, **(decision.get("edits") or {})}, campaign_id=state["campaign_id"],
        decision_id=str(decision.get("decision_id") or state["campaign_id"]))
    if action == "edit":
        edited = Strategy.model_validate({**proposed, **(decision.get("edits") or {})})
        split = split_budget(edited.budget_inr, [(line.channel, line.amount_inr) for line in edited.budget_split],
                             state["plan"]["channels"])
        edited = edited.model_copy(update={"budget_split": [BudgetLine.model_validate(line) for line in split]})
        return {"approval": "approved", "strategy": edited.model_dump(), "usage": learned}
    return {"approval": "approved", "usage": learned}


def brief(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Tier 1: synthesize each channel's complete brief from canon, brand kit, research and strategy."""
    deps = runtime.context
    kit = deps.campaign.brand
    full_kit = as_brand_kit(kit)
    briefs: dict[str, dict[str, Any]] = {}
    usage: list[dict[str, Any]] = []
    shared = brief_context(state["strategy"], state.get("research_summary", {}), state["plan"], kit.voice)
    for channel in state["plan"]["channels"]:
        language = language_of(state["brief"], channel)
        canon = deps.canon.fetch(channel)
        facts = deps.plans.recall(state["workspace_id"], f"{channel} {state['strategy']['positioning']}", k=3)
        prompt = brief_prompt(channel, canon, state["strategy"], state.get("research_summary", {}), state["plan"],
                              kit.voice, facts=facts, feedback=state.get("feedback") or [], language=language,
                              keep=kept_terms(full_kit, language), code_mixing=full_kit.code_mixing)
        with shared_context(shared):
            out = deps.model.generate(tier="strong", system=BRIEFER, prompt=prompt, schema=ContentBrief)
        avoid = [f"{t.term} (say {t.substitution!r})" if t.substitution else t.term
                 for t in full_kit.banned_terms_for(language)]
        must = [kit.required_disclaimers[channel]] if channel in kit.required_disclaimers else []
        made = out.value.model_copy(update={
            "channel": channel, "avoid": list(dict.fromkeys([*out.value.avoid, *avoid]))[:12],
            "must_include": list(dict.fromkeys([*out.value.must_include, *must]))[:6]})
        if canon.get("rules"):
            made = made.model_copy(update={"format_rules": list(canon["rules"])[:10]})
        briefs[channel] = made.model_dump()
        usage += usage_entries(f"brief:{channel}", out)
    return {"briefs": briefs, "usage": usage}


def kept_terms(kit: BrandKit, language: str) -> list[str]:
    """Names and terms copy in `language` keeps exactly as written: approved terms and product names."""
    return [*(t.term for t in kit.approved_terms_for(language)), *(p.name for p in kit.products)][:20]
