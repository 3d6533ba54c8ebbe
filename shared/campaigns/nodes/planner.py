"""The planner's nodes: plan, strategy, the human approval of the strategy, and Tier 1 briefs."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from shared.campaigns.prompts import BRIEFER, PLANNER, STRATEGIST, as_json
from shared.campaigns.schemas import ContentBrief, Plan, Strategy
from shared.campaigns.state import CampaignState
from shared.deps import Deps
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
        change = {"action": "reuse", "reason": f"a similar past {state['kind']} succeeded with this plan "
                  f"(confidence {reused.confidence:.2f})", "source_task": reused.task_id}
        return {"plan": planned.model_dump(), "course_changes": [change], "reviews": 0,
                "specialists_run": None, "findings": None, "tool_runs": None}
    prompt = f"Kind: {state['kind']}\nBrief:\n{as_json(brief)}"
    remembered = deps.plans.recall(state["workspace_id"], description)
    if remembered:
        prompt += "\nWhat this brand's memory says:\n- " + "\n- ".join(remembered)
    if state.get("feedback"):
        prompt += "\nFeedback on the previous strategy (address it):\n- " + "\n- ".join(state["feedback"])
    out = deps.model.generate(tier="strong", system=PLANNER, prompt=prompt, schema=Plan)
    result = out.value
    limit = MAX_CHANNELS[state["kind"]]
    channels = list(dict.fromkeys(brief.get("channels") or result.channels))[:limit]
    queries = result.research_queries[: 2 if state["kind"] == "move" else 4]
    specialists = list(dict.fromkeys(["web_research", "knowledge_research", *result.specialists]))
    planned = result.model_copy(update={"channels": channels, "research_queries": queries,
                                        "specialists": specialists[: 3 if state["kind"] == "move" else 5]})
    return {"plan": planned.model_dump(), "usage": usage_entries("plan", out), "reviews": 0,
            "specialists_run": None, "findings": None, "tool_runs": None}


def strategy(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Choose positioning and an INR budget (strong tier)."""
    prompt = (f"Brief:\n{as_json(state['brief'])}\nPlan:\n{as_json(state['plan'])}\n"
              f"Research:\n{as_json(state['research_summary'])}")
    constraints = runtime.context.campaign.budget_constraints
    if constraints:
        prompt += f"\nBudget constraints:\n{as_json(constraints)}"
    if state.get("feedback"):
        prompt += "\nHuman feedback to address:\n- " + "\n- ".join(state["feedback"])
    out = runtime.context.model.generate(tier="strong", system=STRATEGIST, prompt=prompt, schema=Strategy)
    chosen = out.value
    if state["brief"].get("budget_inr"):
        chosen = chosen.model_copy(update={"budget_inr": state["brief"]["budget_inr"]})
    return {"strategy": chosen.model_dump(), "usage": usage_entries("strategy", out)}


def approve_strategy(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Pause for a human decision on positioning and budget; apply approve, edit or reject."""
    proposed = state["strategy"]
    decision = interrupt({
        "kind": "strategy_approval",
        "positioning": proposed["positioning"],
        "key_messages": proposed["key_messages"],
        "budget_inr": proposed["budget_inr"],
        "budget_split": proposed["budget_split"],
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
        return {"approval": "approved", "strategy": edited.model_dump(), "usage": learned}
    return {"approval": "approved", "usage": learned}


def brief(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Tier 1: synthesize each channel's complete brief from canon, brand kit, research and strategy."""
    deps = runtime.context
    kit = deps.campaign.brand
    briefs: dict[str, dict[str, Any]] = {}
    usage: list[dict[str, Any]] = []
    for channel in state["plan"]["channels"]:
        canon = deps.canon.fetch(channel)
        prompt = (f"Channel: {channel}\nCanon for this content type:\n{as_json(canon)}\n"
                  f"Strategy:\n{as_json(state['strategy'])}\nResearch:\n{as_json(state.get('research_summary', {}))}\n"
                  f"Angles:\n{as_json(state['plan'].get('angles', []))}\nBrand voice: {', '.join(kit.voice)}")
        facts = deps.plans.recall(state["workspace_id"], f"{channel} {state['strategy']['positioning']}", k=3)
        if facts:
            prompt += "\nBrand memory:\n- " + "\n- ".join(facts)
        if state.get("feedback"):
            prompt += "\nHuman feedback:\n- " + "\n- ".join(state["feedback"])
        out = deps.model.generate(tier="strong", system=BRIEFER, prompt=prompt, schema=ContentBrief)
        avoid = [f"{term} (say {sub!r})" for term, sub in kit.banned_terms.items()]
        must = [kit.required_disclaimers[channel]] if channel in kit.required_disclaimers else []
        made = out.value.model_copy(update={
            "channel": channel, "avoid": list(dict.fromkeys([*out.value.avoid, *avoid]))[:12],
            "must_include": list(dict.fromkeys([*out.value.must_include, *must]))[:6]})
        if canon.get("rules"):
            made = made.model_copy(update={"format_rules": list(canon["rules"])[:10]})
        briefs[channel] = made.model_dump()
        usage += usage_entries(f"brief:{channel}", out)
    return {"briefs": briefs, "usage": usage}
