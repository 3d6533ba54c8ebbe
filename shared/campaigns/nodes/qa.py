"""QA's nodes: the layered gate over the drafts, and the human review when it keeps failing."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from shared.campaigns.festivals import anchored, campaign_festivals
from shared.campaigns.prompts import language_of
from shared.campaigns.state import CampaignState
from shared.deps import Deps
from shared.qa.gate import content_type_of


def qa_gate(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Check the drafts against the brand kit; route to a targeted rewrite, to a human, or onwards."""
    deps = runtime.context
    context = deps.campaign
    revisions = state.get("qa_revisions", 0)
    changes: list[dict[str, Any]] = []
    previous = state.get("qa")
    languages = {key: language_of(state["brief"], content_type_of(key)) for key in state["drafts"]}
    sources = [*(state.get("findings") or []), *campaign_sources(state)]
    result = deps.qa.review(state["drafts"], kit=context.brand, sources=sources, languages=languages,
                            iteration=revisions, previous_score=previous["score"] if previous else None,
                            settings=context.settings)
    usage = result.pop("usage", [])
    outcome = {"pass": "passed", "rewrite": "revise", "human": "human"}[result["decision"]]
    if outcome == "revise" and revisions >= context.policy.qa_max_revisions:
        outcome = "human"
    if outcome == "human":
        changes.append({"action": "escalate", "reason": result.get("reason")
                        or f"QA still failing after {revisions} revision(s) (score {result['score']})"})
    if state.get("writer_style"):
        deps.plans.record_variant(state["workspace_id"], state["kind"], "writer", state["writer_style"],
                                  success=outcome == "passed", quality=float(result["score"]),
                                  run_key=f"{state['campaign_id']}:{revisions}")
    if outcome != "passed":
        deps.plans.record_critiques(state["workspace_id"], [dict(f) for f in result["findings"]],
                                    campaign_id=state["campaign_id"], iteration=revisions)
    return {"qa": result, "qa_outcome": outcome, "course_changes": changes, "usage": usage}


def campaign_sources(state: CampaignState) -> list[dict[str, Any]]:
    """What the campaign itself states, as sources for the claims check: the brief (its text and window), the
    plan, and the festival calendar for the window and target states. Dates, times, prices and offers copy
    takes from these are not unsupported claims."""
    brief = state["brief"]
    plan = state.get("plan") or {}
    brief_text = "\n".join(str(brief[k]) for k in ("title", "objective", "audience", "notes", "start_date",
                                                    "end_date") if brief.get(k))
    plan_text = "\n".join([str(plan.get("objective") or ""), str(plan.get("audience") or ""),
                           *map(str, plan.get("kpis") or []), *map(str, plan.get("angles") or [])])
    calendar = [{"title": f"{f.name} ({f.day})", "content": f"{f.name} falls on {f.day:%d %B %Y}."}
                for f in campaign_festivals(anchored(brief, state.get("campaign_id")))]
    return [{"title": "brief", "content": brief_text}, {"title": "plan", "content": plan_text}, *calendar]


def qa_review(state: CampaignState) -> dict[str, Any]:
    """QA failed past its limit: a human approves the copy as is, edits it, or sends it back."""
    decision = interrupt({"kind": "qa_review", "qa": state["qa"], "drafts": state["drafts"]})
    action = decision["action"]
    if action == "reject":
        feedback = decision.get("feedback") or "Rewrite the copy."
        return {"qa_outcome": "revise", "qa": None, "qa_revisions": 0, "feedback": [feedback]}
    if action == "edit":
        drafts = {**state["drafts"], **(decision.get("edits") or {})}
        return {"qa_outcome": "passed", "drafts": drafts}
    return {"qa_outcome": "passed"}
