"""The campaign graph's state: plain JSON values only, so checkpoints deserialize strictly."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict


class CampaignState(TypedDict, total=False):
    """Everything a campaign thread carries from step to step."""

    campaign_id: str
    workspace_id: str
    kind: Literal["campaign", "move"]
    brief: dict[str, Any]
    feedback: Annotated[list[str], operator.add]
    """Human feedback from rejected decisions, oldest first; the planner and writers read it."""
    plan: dict[str, Any]
    web_findings: list[dict[str, Any]]
    knowledge_findings: list[dict[str, Any]]
    research_summary: dict[str, Any]
    strategy: dict[str, Any]
    approval: Literal["approved", "rejected"]
    drafts: dict[str, dict[str, Any]]
    qa: dict[str, Any]
    qa_revisions: int
    qa_outcome: Literal["passed", "revise", "human"]
    payment: dict[str, Any]
    published: list[str]
    usage: Annotated[list[dict[str, Any]], operator.add]
    """Token usage of every model call, per node."""
