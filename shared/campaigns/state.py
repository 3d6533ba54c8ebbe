"""The campaign graph's state: plain JSON values only, so checkpoints deserialize strictly."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from shared.ports import QAResult


def extend_or_reset(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    """Append updates; an update of `None` empties the list (a re-plan starts research afresh)."""
    if right is None:
        return []
    return [*(left or []), *right]


class SpecialistTask(TypedDict):
    """What one research specialist receives (sent with LangGraph's `Send`)."""

    specialist: str
    plan: dict[str, Any]
    brief: dict[str, Any]
    workspace_id: str


class CampaignState(TypedDict, total=False):
    """Everything a campaign thread carries from step to step."""

    campaign_id: str
    workspace_id: str
    kind: Literal["campaign", "move"]
    brief: dict[str, Any]
    feedback: Annotated[list[str], operator.add]
    """Human feedback from rejected decisions, oldest first; the planner and writers read it."""
    plan: dict[str, Any]
    findings: Annotated[list[dict[str, Any]], extend_or_reset]
    """Cited findings of every specialist that ran for the current plan."""
    specialists_run: Annotated[list[str], extend_or_reset]
    reviews: int
    course_changes: list[dict[str, Any]]
    """The last node's changes of course, each with its reason (emitted as `plan.changed` events)."""
    research_summary: dict[str, Any]
    strategy: dict[str, Any]
    approval: Literal["approved", "rejected"]
    tool_runs: Annotated[list[dict[str, Any]], extend_or_reset]
    """Tool calls of the specialists of the current plan (latency, attempts, cost, typed errors)."""
    writer_style: str
    """The writer variant chosen for this campaign by adaptive selection."""
    briefs: dict[str, dict[str, Any]]
    """Tier 1's brief per channel; Tier 2 writers see only these."""
    drafts: dict[str, dict[str, Any]]
    """Copy per draft key (`email`, `email#b` for a second A/B variant)."""
    qa: QAResult | None
    """The QA gate's last verdict (None before the first check and after a human sends the copy back)."""
    qa_revisions: int
    qa_outcome: Literal["passed", "revise", "human"]
    payment: dict[str, Any]
    published: list[str]
    publications_pending: int
    """Publications execution scheduled that are still to fire; the campaign completes when none is left."""
    usage: Annotated[list[dict[str, Any]], operator.add]
    """Token usage of every model call, per node."""
