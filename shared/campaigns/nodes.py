"""The nodes of the campaign graph.

Each node reads its state, reaches the world only through `runtime.context` (a `Deps`), and returns
a partial update. Side effects are idempotent per (campaign, channel, variant), since a node re-runs
from its first line whenever its step is retried. Changes of course are returned as
`course_changes`, which the runtime turns into `plan.changed` events with their reasons.
"""

from __future__ import annotations

import json
import string
from datetime import date, timedelta
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

from shared.campaigns import prompts
from shared.campaigns.festivals import festivals_between
from shared.campaigns.prompts import as_json
from shared.campaigns.schemas import (
    CHANNEL_SCHEMAS,
    ContentBrief,
    Plan,
    PlanReview,
    Strategy,
)
from shared.campaigns.state import CampaignState, SpecialistTask
from shared.deps import Deps
from shared.errors import UpstreamUnavailable
from shared.models.usage import usage_entries
from shared.ports import Finding
from shared.tools.belt import ToolContext

MAX_CHANNELS = {"campaign": 4, "move": 2}
MAX_REVIEWS = 2
LAUNCH_WORDS = ("launch", "launches", "launched", "unveil", "unveils", "debut", "rolls out", "introduces")
WRITER_STYLES = {
    "concise": "short sentences, the benefit first, no filler",
    "storytelling": "open with a small human moment, then the benefit",
}
"""Writer variants; adaptive selection picks per workspace and task type by past QA results."""
DISCLAIMER_FIELD = {"email": "body", "linkedin_post": "text", "instagram_caption": "caption", "ad": "description",
                    "landing_page": "body", "video_script": "script"}


def _window(brief: dict[str, Any]) -> tuple[date, date]:
    start = date.fromisoformat(brief["start_date"]) if brief.get("start_date") else date.today()
    end = date.fromisoformat(brief["end_date"]) if brief.get("end_date") else start + timedelta(days=45)
    return start, end


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
    out = deps.model.generate(tier="strong", system=prompts.PLANNER, prompt=prompt, schema=Plan)
    result = out.value
    limit = MAX_CHANNELS[state["kind"]]
    channels = list(dict.fromkeys(brief.get("channels") or result.channels))[:limit]
    queries = result.research_queries[: 2 if state["kind"] == "move" else 4]
    specialists = list(dict.fromkeys(["web_research", "knowledge_research", *result.specialists]))
    planned = result.model_copy(update={"channels": channels, "research_queries": queries,
                                        "specialists": specialists[: 3 if state["kind"] == "move" else 5]})
    return {"plan": planned.model_dump(), "usage": usage_entries("plan", out), "reviews": 0,
            "specialists_run": None, "findings": None, "tool_runs": None}


def dispatch_specialists(state: CampaignState) -> list[Send] | str:
    """Run every planned specialist that has not run yet, concurrently; then summarize."""
    done = set(state.get("specialists_run") or [])
    pending = [s for s in state["plan"]["specialists"] if s not in done]
    if not pending:
        return "summarize"
    return [Send("specialist", {"specialist": s, "plan": state["plan"], "brief": state["brief"],
                                "workspace_id": state["workspace_id"]}) for s in pending]


def _search(deps: Deps, tool: str, arguments: dict[str, Any], task: SpecialistTask,
            runs: list[dict[str, Any]]) -> list[Finding]:
    """Run a search tool through the validated tool belt, recording the run."""
    run = deps.tools.run(tool, arguments, ToolContext(workspace_id=task["workspace_id"], node="specialist"))
    runs.append(run.as_dict())
    if run.error is not None:
        if run.error.retryable:
            raise UpstreamUnavailable(f"{tool} failed for {arguments['query']!r}: {run.error.message}")
        return []
    return [Finding(source_id=r.source_id, title=r.title, content=r.content, url=r.url, score=r.score)
            for r in run.output.results]  # type: ignore[union-attr]


def specialist(task: SpecialistTask, runtime: Runtime[Deps]) -> dict[str, Any]:
    """One research specialist: web, knowledge base, competitors, audience or the festival calendar."""
    deps = runtime.context
    name = task["specialist"]
    plan_ = task["plan"]
    found: list[Finding] = []
    runs: list[dict[str, Any]] = []
    if name == "web_research":
        for query in plan_["research_queries"]:
            found += _search(deps, "web_search", {"query": query, "max_results": 3}, task, runs)
    elif name == "knowledge_research":
        for query in plan_["research_queries"]:
            found += _search(deps, "knowledge_search", {"query": query, "k": 3}, task, runs)
    elif name == "competitor_scan":
        found += _search(deps, "web_search", {"query": f"competitor launch {plan_['objective']}"[:400],
                                              "max_results": 4}, task, runs)
    elif name == "audience_insights":
        found += _search(deps, "knowledge_search", {"query": f"customers personas {plan_['audience']}"[:400],
                                                    "k": 4}, task, runs)
    elif name == "festival_calendar":
        start, end = _window(task["brief"])
        found += [Finding(source_id=f"festival:{day.isoformat()}", title=f"{title} ({day.isoformat()})",
                          content=f"{title} falls on {day:%A %d %B %Y}, inside the campaign window.")
                  for day, title in festivals_between(start, end)]
    unique = {f.source_id: f.as_dict() | {"specialist": name} for f in found}
    return {"findings": list(unique.values()), "specialists_run": [name], "tool_runs": runs}


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
    for f in findings:
        text = f"{f['title']} {f['content']}".lower()
        if f.get("specialist") != "competitor_scan" and any(w in text for w in LAUNCH_WORDS) \
                and "competitor_scan" not in specialists:
            specialists.append("competitor_scan")
            changes.append({"action": "add", "specialist": "competitor_scan",
                            "reason": f"research mentions a launch: {f['title']!r}"})
        if f.get("specialist") == "festival_calendar":
            angle = f"Festival: {f['title']}"
            if angle not in angles:
                angles.append(angle)
                changes.append({"action": "angle", "angle": angle, "reason": f["content"]})
    digest = [{"id": f["source_id"], "title": f["title"], "content": f["content"][:300]} for f in findings[:20]]
    out = runtime.context.model.generate(
        tier="fast", system=prompts.REVIEWER, schema=PlanReview,
        prompt=f"Plan:\n{as_json(plan_.model_dump())}\nFindings:\n{as_json(digest)}")
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


def strategy(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Choose positioning and an INR budget (strong tier)."""
    prompt = (f"Brief:\n{as_json(state['brief'])}\nPlan:\n{as_json(state['plan'])}\n"
              f"Research:\n{as_json(state['research_summary'])}")
    constraints = runtime.context.campaign.budget_constraints
    if constraints:
        prompt += f"\nBudget constraints:\n{as_json(constraints)}"
    if state.get("feedback"):
        prompt += "\nHuman feedback to address:\n- " + "\n- ".join(state["feedback"])
    out = runtime.context.model.generate(tier="strong", system=prompts.STRATEGIST, prompt=prompt, schema=Strategy)
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


def after_approval(state: CampaignState) -> str:
    """Approved strategies go to the brief writer; rejected ones back to the planner."""
    return "brief" if state.get("approval") == "approved" else "plan"


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
        out = deps.model.generate(tier="strong", system=prompts.BRIEFER, prompt=prompt, schema=ContentBrief)
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


def with_disclaimer(channel: str, copy: dict[str, Any], disclaimer: str | None) -> dict[str, Any]:
    """Append a required disclaimer verbatim when the writer left it out (compliance by construction)."""
    if not disclaimer or disclaimer.lower() in json.dumps(copy, ensure_ascii=False).lower():
        return copy
    if channel == "x_thread":
        return {**copy, "posts": [*copy["posts"][:-1], _fit(copy["posts"][-1], disclaimer, 280)]}
    field_name = DISCLAIMER_FIELD[channel]
    meta = CHANNEL_SCHEMAS[channel].model_fields[field_name].metadata
    max_length = next((m.max_length for m in meta if getattr(m, "max_length", None)), 100_000)
    return {**copy, field_name: _fit(copy[field_name], disclaimer, max_length)}


def _fit(text: str, suffix: str, max_length: int) -> str:
    room = max_length - len(suffix) - 1
    return (text[: max(room, 0)].rstrip() + " " + suffix).strip()


def draft_key(channel: str, variant: str) -> str:
    """Key of one draft in state: `email` for the first variant, `email#b` for the next."""
    return channel if variant == "a" else f"{channel}#{variant}"


def content(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Tier 2: stateless writers produce each channel's copy from its brief alone (fast tier).

    On a QA revision only the failing fields of the failing drafts are rewritten.
    """
    deps = runtime.context
    kit = deps.campaign.brand
    drafts = dict(state.get("drafts") or {})
    last_qa = state.get("qa") or {}
    revision = state.get("qa_revisions", 0) + (1 if last_qa else 0)
    variants = string.ascii_lowercase[: int(state["brief"].get("variants") or 1)]
    style = state.get("writer_style") or deps.plans.pick_variant(state["workspace_id"], state["kind"], "writer",
                                                                  list(WRITER_STYLES), "concise")
    usage: list[dict[str, Any]] = []
    rewrite: dict[str, dict[str, list[str]]] = {}
    for finding in last_qa.get("findings", []):
        rewrite.setdefault(finding["draft"], {}).setdefault(finding["field"], []).append(finding["message"])
    for channel in state["plan"]["channels"]:
        for variant in variants:
            key = draft_key(channel, variant)
            if last_qa and key not in rewrite:
                continue
            schema = CHANNEL_SCHEMAS[channel]
            prompt = (f"Write {channel} copy from this brief alone.\nStyle: {WRITER_STYLES[style]}\n"
                      f"Brief:\n{as_json(state['briefs'][channel])}")
            if variant != "a":
                prompt += f"\nThis is variant {variant.upper()} of an A/B test: use a clearly different hook."
            if key in rewrite and key in drafts:
                prompt += (f"\nCurrent copy:\n{as_json(drafts[key])}\nRewrite ONLY these fields, fixing:\n"
                           f"{as_json(rewrite[key])}")
            out = deps.model.generate(tier="fast", system=prompts.WRITER, prompt=prompt, schema=schema)
            written = out.value.model_dump()
            if key in rewrite and key in drafts:
                fields = {f.split("[")[0] for f in rewrite[key] if f != "*"} or set(written)
                written = {**drafts[key], **{f: written[f] for f in fields if f in written}}
            disclaimer = kit.required_disclaimers.get(channel)
            drafts[key] = schema.model_validate(with_disclaimer(channel, written, disclaimer)).model_dump()
            deps.artifacts.save_draft(campaign_id=state["campaign_id"], workspace_id=state["workspace_id"],
                                      channel=channel, variant=variant, content=drafts[key], usage=out.usage,
                                      revision=revision + 1)
            usage += usage_entries(f"content:{key}", out)
    return {"drafts": drafts, "qa_revisions": revision, "usage": usage, "writer_style": style}


def qa_gate(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Check the drafts against the brand kit; route to a targeted rewrite, to a human, or onwards."""
    deps = runtime.context
    context = deps.campaign
    revisions = state.get("qa_revisions", 0)
    changes: list[dict[str, Any]] = []
    result = deps.qa.review(state["drafts"], kit=context.brand, sources=state.get("findings") or [],
                            iteration=revisions, previous_score=(state.get("qa") or {}).get("score"),
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
        deps.plans.record_critiques(state["workspace_id"], result["findings"], campaign_id=state["campaign_id"],
                                    iteration=revisions)
    return {"qa": result, "qa_outcome": outcome, "course_changes": changes, "usage": usage}


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
        drafts = {**state["drafts"], **(decision.get("edits") or {})}
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
    """Publish every draft exactly once, then remember what this campaign did."""
    deps = runtime.context
    for key in state["drafts"]:
        channel, _, variant = key.partition("#")
        deps.artifacts.publish(campaign_id=state["campaign_id"], channel=channel, variant=variant or "a")
    description = f"{state['kind']}: {state['brief']['title']}. {state['brief']['objective']}"
    deps.plans.remember(state["workspace_id"], state["kind"], description, plan=state["plan"],
                        success=True, quality=float((state.get("qa") or {}).get("score", 1.0)),
                        campaign_id=state["campaign_id"])
    usage = deps.plans.learn_from_artifacts(state["workspace_id"], state["drafts"], campaign_id=state["campaign_id"])
    return {"published": sorted(state["drafts"]), "usage": usage}
