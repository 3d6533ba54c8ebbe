"""The nodes of the campaign graph.

Each node reads its state, uses only `runtime.context` (a `Deps`) to reach the world, and returns
a partial update. Side effects are idempotent per (campaign, channel), since a node re-runs from its
first line whenever its step is retried.
"""

from __future__ import annotations

import json
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from shared.campaigns import prompts, qa
from shared.campaigns.schemas import CHANNEL_SCHEMAS, Plan, ResearchSummary, Strategy
from shared.campaigns.state import CampaignState
from shared.deps import Deps

MAX_CHANNELS = {"campaign": 4, "move": 2}


def _usage(node: str, usage: Any) -> list[dict[str, Any]]:
    return [{"node": node, **usage.as_dict()}]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


def plan(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Plan the campaign (strong model tier); re-plans with any human feedback so far."""
    brief = state["brief"]
    prompt = f"Kind: {state['kind']}\nBrief:\n{_json(brief)}"
    if state.get("feedback"):
        prompt += "\nFeedback on the previous strategy (address it):\n- " + "\n- ".join(state["feedback"])
    out = runtime.context.model.generate(tier="strong", system=prompts.PLANNER, prompt=prompt, schema=Plan)
    result = out.value
    channels = list(dict.fromkeys(brief.get("channels") or result.channels))[: MAX_CHANNELS[state["kind"]]]
    queries = result.research_queries[: 2 if state["kind"] == "move" else 4]
    planned = result.model_copy(update={"channels": channels, "research_queries": queries})
    return {"plan": planned.model_dump(), "usage": _usage("plan", out.usage)}


def research_web(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Search the web for each planned query (runs in parallel with `research_knowledge`)."""
    seen: dict[str, dict[str, Any]] = {}
    for query in state["plan"]["research_queries"]:
        for finding in runtime.context.web.search(query, max_results=3):
            seen.setdefault(finding.source_id, finding.as_dict())
    return {"web_findings": list(seen.values())}


def research_knowledge(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Search the workspace's own knowledge base for each planned query."""
    seen: dict[str, dict[str, Any]] = {}
    for query in state["plan"]["research_queries"]:
        for finding in runtime.context.knowledge.search(state["workspace_id"], query, k=3):
            seen.setdefault(finding.source_id, finding.as_dict())
    return {"knowledge_findings": list(seen.values())}


def summarize(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Condense research into cited findings (fast tier)."""
    sources = [
        {"id": f["source_id"], "title": f["title"], "content": f["content"][:1200]}
        for f in state.get("web_findings", []) + state.get("knowledge_findings", [])
    ]
    prompt = f"Objective: {state['plan']['objective']}\nSources:\n{_json(sources)}"
    out = runtime.context.model.generate(
        tier="fast", system=prompts.SUMMARIZER, prompt=prompt, schema=ResearchSummary
    )
    known = {s["id"] for s in sources}
    summary = out.value.model_dump()
    for finding in summary["key_findings"]:
        finding["source_ids"] = [s for s in finding["source_ids"] if s in known]
    return {"research_summary": summary, "usage": _usage("summarize", out.usage)}


def strategy(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Choose positioning and an INR budget (strong tier)."""
    prompt = (
        f"Brief:\n{_json(state['brief'])}\nPlan:\n{_json(state['plan'])}\n"
        f"Research:\n{_json(state['research_summary'])}"
    )
    if state.get("feedback"):
        prompt += "\nHuman feedback to address:\n- " + "\n- ".join(state["feedback"])
    out = runtime.context.model.generate(tier="strong", system=prompts.STRATEGIST, prompt=prompt, schema=Strategy)
    chosen = out.value
    if state["brief"].get("budget_inr"):
        chosen = chosen.model_copy(update={"budget_inr": state["brief"]["budget_inr"]})
    return {"strategy": chosen.model_dump(), "usage": _usage("strategy", out.usage)}


def approve_strategy(state: CampaignState) -> dict[str, Any]:
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
        return {"approval": "rejected", "feedback": [decision.get("feedback") or "Rejected without comment."]}
    if action == "edit":
        edited = Strategy.model_validate({**proposed, **decision.get("edits", {})})
        return {"approval": "approved", "strategy": edited.model_dump()}
    return {"approval": "approved"}


def after_approval(state: CampaignState) -> str:
    """Approved strategies go to the writers; rejected ones back to the planner."""
    return "content" if state.get("approval") == "approved" else "plan"


DISCLAIMER_FIELD = {"email": "body", "linkedin_post": "text", "instagram_caption": "caption", "ad": "description"}


def with_disclaimer(channel: str, copy: dict[str, Any], disclaimer: str | None) -> dict[str, Any]:
    """Append a required disclaimer verbatim when the model left it out (compliance by construction)."""
    if not disclaimer:
        return copy
    text = json.dumps(copy, ensure_ascii=False).lower()
    if disclaimer.lower() in text:
        return copy
    if channel == "x_thread":
        return {**copy, "posts": [*copy["posts"][:-1], _fit(copy["posts"][-1], disclaimer, 280)]}
    field = DISCLAIMER_FIELD[channel]
    limit = CHANNEL_SCHEMAS[channel].model_fields[field].metadata
    max_length = next((m.max_length for m in limit if getattr(m, "max_length", None)), 100_000)
    return {**copy, field: _fit(copy[field], disclaimer, max_length)}


def _fit(text: str, suffix: str, max_length: int) -> str:
    room = max_length - len(suffix) - 1
    return (text[: max(room, 0)].rstrip() + " " + suffix).strip()


def content(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Write each channel's copy (fast tier); on a QA revision, rewrite only the failing channels."""
    deps = runtime.context
    kit = deps.workspaces.brand_kit(state["workspace_id"])
    drafts = dict(state.get("drafts") or {})
    last_qa = state.get("qa") or {}
    revision = state.get("qa_revisions", 0) + (1 if last_qa else 0)
    todo = last_qa.get("failing_channels") or state["plan"]["channels"]
    usage: list[dict[str, Any]] = []
    for channel in todo:
        critique = [f["message"] for f in last_qa.get("findings", []) if f["channel"] == channel]
        prompt = (
            f"Channel: {channel}\nStrategy:\n{_json(state['strategy'])}\n"
            f"Research:\n{_json(state.get('research_summary', {}))}"
        )
        if critique:
            prompt += "\nQA critique to fix:\n- " + "\n- ".join(critique)
        if state.get("feedback"):
            prompt += "\nHuman feedback:\n- " + "\n- ".join(state["feedback"])
        out = deps.model.generate(tier="fast", system=prompts.WRITER, prompt=prompt, schema=CHANNEL_SCHEMAS[channel])
        drafts[channel] = with_disclaimer(channel, out.value.model_dump(), kit.required_disclaimers.get(channel))
        deps.artifacts.save_draft(
            campaign_id=state["campaign_id"], workspace_id=state["workspace_id"], channel=channel,
            content=drafts[channel], usage=out.usage, revision=revision + 1,
        )
        usage += _usage(f"content:{channel}", out.usage)
    return {"drafts": drafts, "qa_revisions": revision, "usage": usage}


def qa_gate(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Check the drafts against the brand kit; route to revise, to a human, or onwards."""
    kit = runtime.context.workspaces.brand_kit(state["workspace_id"])
    policy = runtime.context.workspaces.policy(state["workspace_id"])
    result = qa.review(state["drafts"], kit)
    if result["passed"]:
        outcome = "passed"
    elif state.get("qa_revisions", 0) < policy.qa_max_revisions:
        outcome = "revise"
    else:
        outcome = "human"
    return {"qa": result, "qa_outcome": outcome}


def after_qa(state: CampaignState) -> str:
    """Route by the QA outcome."""
    return {"passed": "await_payment", "revise": "content", "human": "qa_review"}[state["qa_outcome"]]


def qa_review(state: CampaignState) -> dict[str, Any]:
    """QA failed past its limit: a human approves the copy as is, edits it, or sends it back."""
    decision = interrupt({"kind": "qa_review", "qa": state["qa"], "drafts": state["drafts"]})
    action = decision["action"]
    if action == "reject":
        feedback = decision.get("feedback") or "Rewrite the copy."
        return {"qa_outcome": "revise", "qa": {}, "qa_revisions": 0, "feedback": [feedback]}
    if action == "edit":
        drafts = {**state["drafts"], **decision.get("edits", {})}
        return {"qa_outcome": "passed", "drafts": drafts}
    return {"qa_outcome": "passed"}


def after_review(state: CampaignState) -> str:
    """A human-approved review goes to funding; a rejected one back to the writers."""
    return "await_payment" if state["qa_outcome"] == "passed" else "content"


def await_payment(state: CampaignState) -> dict[str, Any]:
    """Wait until PhonePe confirms the campaign's funding (resumed only after Order Status agrees)."""
    amount_paise = int(state["strategy"]["budget_inr"]) * 100
    confirmation = interrupt({"kind": "payment", "amount_paise": amount_paise,
                              "amount_inr": state["strategy"]["budget_inr"]})
    return {"payment": confirmation}


def execute(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Publish every channel's artifact exactly once."""
    for channel in state["drafts"]:
        runtime.context.artifacts.publish(campaign_id=state["campaign_id"], channel=channel)
    return {"published": sorted(state["drafts"])}
