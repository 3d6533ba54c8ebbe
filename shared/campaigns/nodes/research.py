"""Research's nodes: the specialists (run concurrently), the review that re-plans from what they
found, and the cited summary.

Web results are screened for prompt injection as they arrive (patterns, the fast-tier classifier for
borderline ones): a flagged result is dropped, never reaching a prompt, and recorded with its risk on
the search's tool run (shown on the specialist's event). Knowledge chunks were screened at ingest, and
flagged ones are not returned to agents (`PgVectorKnowledge.search`). Everything kept is still quoted as
untrusted data in every prompt. The review may only add or drop research specialists from the closed
`Specialist` set (read-only searches whose tools are fixed here) and suggest angles; channels, budget,
approvals and publishing are out of its reach.
"""

from __future__ import annotations

import re
from typing import Any

from langgraph.runtime import Runtime

from shared.campaigns.festivals import anchored, campaign_festivals, headline_festivals
from shared.campaigns.prompts import REVIEWER, review_prompt
from shared.campaigns.schemas import Plan, PlanReview
from shared.campaigns.state import CampaignState, SpecialistTask
from shared.deps import Deps
from shared.errors import UpstreamUnavailable
from shared.models.usage import usage_entries
from shared.ports import Finding
from shared.safety.injection import InjectionDetector
from shared.tools.belt import ToolContext

MAX_REVIEWS = 2
"""Reviews per plan; past this many the research goes on to the summary as it is."""
LAUNCH_WORDS = ("launch", "launches", "launched", "unveil", "unveils", "debut", "rolls out", "introduces")


def _search(deps: Deps, tool: str, arguments: dict[str, Any], task: SpecialistTask,
            runs: list[dict[str, Any]], detector: InjectionDetector) -> list[Finding]:
    """Run a search tool through the validated tool belt, recording the run; web results are screened."""
    run = deps.tools.run(tool, arguments, ToolContext(workspace_id=task["workspace_id"], node="specialist"))
    record = run.as_dict()
    runs.append(record)
    if run.error is not None:
        if run.error.retryable:
            raise UpstreamUnavailable(f"{tool} failed for {arguments['query']!r}: {run.error.message}")
        return []
    found = [Finding(source_id=r.source_id, title=r.title, content=r.content, url=r.url, score=r.score)
             for r in run.output.results]  # type: ignore[union-attr]
    if tool != "web_search":
        return found
    kept, screened = screen_web_results(found, detector)
    if screened:
        record["screened"] = screened
    return kept


def screen_web_results(found: list[Finding], detector: InjectionDetector) -> tuple[list[Finding],
                                                                                  list[dict[str, Any]]]:
    """(results kept, results dropped with their risk): a result the detector flags never reaches a prompt."""
    kept: list[Finding] = []
    dropped: list[dict[str, Any]] = []
    for finding in found:
        risk = detector.assess(f"{finding.title}\n{finding.content}")
        if risk.flagged:
            dropped.append({"source_id": finding.source_id, "title": finding.title[:200], "url": finding.url,
                            "risk": risk.model_dump()})
        else:
            kept.append(finding)
    return kept, dropped


def specialist(task: SpecialistTask, runtime: Runtime[Deps]) -> dict[str, Any]:
    """One research specialist: web, knowledge base, competitors, audience or the festival calendar."""
    deps = runtime.context
    name = task["specialist"]
    plan_ = task["plan"]
    found: list[Finding] = []
    runs: list[dict[str, Any]] = []
    detector = InjectionDetector(model=deps.model)
    if name == "web_research":
        for query in plan_["research_queries"]:
            found += _search(deps, "web_search", {"query": query, "max_results": 3}, task, runs, detector)
    elif name == "knowledge_research":
        for query in plan_["research_queries"]:
            found += _search(deps, "knowledge_search", {"query": query, "k": 3}, task, runs, detector)
    elif name == "competitor_scan":
        found += _search(deps, "web_search", {"query": f"competitor launch {plan_['objective']}"[:400],
                                              "max_results": 4}, task, runs, detector)
    elif name == "audience_insights":
        found += _search(deps, "knowledge_search", {"query": f"customers personas {plan_['audience']}"[:400],
                                                    "k": 4}, task, runs, detector)
    elif name == "festival_calendar":
        found += [Finding(source_id=f"festival:{f.day.isoformat()}:{_slug(f.name)}", title=f"{f.name} ({f.day})",
                          content=f"{f.name} falls on {f.day:%A %d %B %Y} ({f.scope}); its marketing window opens "
                                  f"{f.window_start:%d %B %Y} and overlaps the campaign window.")
                  for f in campaign_festivals(task["brief"])]
    unique = {f.source_id: f.as_dict() | {"specialist": name} for f in found}
    update: dict[str, Any] = {"findings": list(unique.values()), "specialists_run": [name], "tool_runs": runs}
    usage = [entry for answer in detector.answers for entry in usage_entries("specialist:injection", answer)]
    if usage:
        update["usage"] = usage
    return update


def review(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Re-plan from the research: add or drop specialists and angles, each change with its reason."""
    plan_ = Plan.model_validate(state["plan"])
    reviews = state.get("reviews", 0) + 1
    if reviews > MAX_REVIEWS:
        return {"reviews": reviews}
    findings = state.get("findings") or []
    changes: list[dict[str, Any]] = []
    angles = list(plan_.angles)
    specialists = list(plan_.specialists)
    run = set(state.get("specialists_run") or [])
    headline = {f"festival:{f.day.isoformat()}:{_slug(f.name)}" for f in headline_festivals(
        campaign_festivals(anchored(state.get("brief") or {}, state.get("campaign_id"))))}
    for f in findings:
        text = f"{f['title']} {f['content']}".lower()
        if f.get("specialist") != "competitor_scan" and any(w in text for w in LAUNCH_WORDS) \
                and "competitor_scan" not in specialists:
            specialists.append("competitor_scan")
            changes.append({"action": "add", "specialist": "competitor_scan",
                            "reason": f"research mentions a launch: {f['title']!r}"})
        if f.get("specialist") == "festival_calendar" and f["source_id"] in headline:
            angle = f"Festival: {f['title']}"
            if angle not in angles and len(angles) < 5:
                angles.append(angle)
                changes.append({"action": "angle", "angle": angle, "reason": f["content"]})
    digest = [{"id": f["source_id"], "title": f["title"], "content": f["content"][:300]} for f in findings[:20]]
    out = runtime.context.model.generate(tier="fast", system=REVIEWER, schema=PlanReview,
                                         prompt=review_prompt(plan_.model_dump(), digest))
    for change in out.value.changes:
        if change.action == "add" and change.specialist not in specialists:
            specialists.append(change.specialist)
            changes.append(change.model_dump())
        elif change.action == "drop" and change.specialist in specialists and change.specialist not in run:
            specialists.remove(change.specialist)
            changes.append(change.model_dump())
    for angle in out.value.angles:
        if angle not in angles and len(angles) < 5:
            angles.append(angle)
            changes.append({"action": "angle", "angle": angle, "reason": "suggested by the research review"})
    revised = plan_.model_copy(update={"specialists": specialists[:5], "angles": angles})
    return {"plan": revised.model_dump(), "reviews": reviews, "course_changes": changes,
            "usage": usage_entries("review", out)}


def summarize(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Condense all findings into cited key findings (fast tier, recursively when they are long)."""
    summary, usage = runtime.context.summarizer.summarize(state.get("findings") or [],
                                                          objective=state["plan"]["objective"])
    return {"research_summary": summary, "usage": usage}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
