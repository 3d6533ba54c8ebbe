"""Pydantic shapes of what the campaign graph's models produce and of a campaign brief.

The copy of each channel is defined lower down, in `shared.channels`, so that the tool belt and the
QA gate can use it; it is part of this module's surface too.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.campaigns.festivals import StateCode
from shared.channels import (
    CHANNEL_SCHEMAS,
    AdCopy,
    Channel,
    EmailCopy,
    InstagramCaption,
    LandingPage,
    LinkedInPost,
    VideoScript,
    XThread,
)
from shared.writing.specs import Language

__all__ = (
    "CHANNEL_SCHEMAS",
    "AdCopy",
    "BudgetLine",
    "Brief",
    "CampaignKind",
    "Channel",
    "ContentBrief",
    "EmailCopy",
    "InstagramCaption",
    "KeyFinding",
    "LandingPage",
    "LinkedInPost",
    "Plan",
    "PlanChange",
    "PlanReview",
    "ResearchSummary",
    "Specialist",
    "Strategy",
    "VideoScript",
    "XThread",
)

CampaignKind = Literal["campaign", "move"]
Specialist = Literal["web_research", "knowledge_research", "competitor_scan", "audience_insights",
                     "festival_calendar"]
"""Research specialists a plan can schedule; they run concurrently inside the research step."""


class Brief(BaseModel):
    """What the marketer asks for."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    objective: str = Field(min_length=1, max_length=4000)
    audience: str | None = Field(default=None, max_length=2000)
    channels: list[Channel] | None = Field(default=None, min_length=1, max_length=5)
    """Preferred channels; the planner picks when omitted."""
    budget_inr: int | None = Field(default=None, ge=1, le=100_000_000)
    start_date: date | None = None
    """First day of the campaign window (festivals and launches inside it change the plan)."""
    end_date: date | None = None
    variants: int = Field(default=1, ge=1, le=3)
    """Copy variants per channel, for A/B tests."""
    notes: str | None = Field(default=None, max_length=4000)
    language: Language = Field(default="en", description=(
        "The language every channel's copy is written in, in its own script: one of en, hi, mr, ne, bn, as, pa, "
        "gu, or, ta, te, kn, ml, ur."))
    channel_languages: dict[Channel, Language] | None = Field(default=None, description=(
        "Per-channel overrides of `language`, e.g. {\"email\": \"en\"}; channels not listed use `language`."))
    target_states: list[StateCode] = Field(default_factory=list, max_length=36, description=(
        "States and union territories the campaign targets (ISO 3166-2:IN codes: KA, TN, KL, WB, AS, MH, ...); "
        "their regional festivals join the national ones."))

    @model_validator(mode="after")
    def _window(self) -> Brief:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if self.channel_languages and self.channels:
            extra = sorted(set(self.channel_languages) - set(self.channels))
            if extra:
                raise ValueError(f"channel_languages names {extra}, which are not among channels {self.channels}; "
                                 "add them to channels or drop them from channel_languages")
        if len(set(self.target_states)) != len(self.target_states):
            raise ValueError("target_states lists a state twice; list each state once")
        return self


def _default_specialists() -> list[Specialist]:
    return ["web_research", "knowledge_research"]


class Plan(BaseModel):
    """The planner's typed plan."""

    objective: str
    audience: str
    channels: list[Channel] = Field(min_length=1, max_length=5)
    kpis: list[str] = Field(min_length=1, max_length=6)
    budget_inr: int | None = Field(default=None, ge=0, le=100_000_000)
    """The planner's budget estimate; the strategist sets the budget a human approves."""
    research_queries: list[str] = Field(min_length=1, max_length=4)
    specialists: list[Specialist] = Field(default_factory=_default_specialists, max_length=5)
    """The research specialists to run, in any order (they run concurrently)."""
    angles: list[str] = Field(default_factory=list, max_length=5)
    """Creative angles added as research changes the plan (a festival, a competitor's launch)."""


class PlanChange(BaseModel):
    """One change of course proposed after reading the research."""

    action: Literal["add", "drop"]
    specialist: Specialist
    reason: str


class PlanReview(BaseModel):
    """Whether the research calls for different specialists or new angles."""

    changes: list[PlanChange] = Field(default_factory=list, max_length=3)
    angles: list[str] = Field(default_factory=list, max_length=3)


class ContentBrief(BaseModel):
    """Tier 1's complete brief for one channel: all a stateless writer needs, nothing more."""

    channel: Channel
    goal: str
    audience: str
    key_message: str
    proof_points: list[str] = Field(max_length=6)
    tone: list[str] = Field(max_length=6)
    must_include: list[str] = Field(default_factory=list, max_length=6)
    avoid: list[str] = Field(default_factory=list, max_length=12)
    call_to_action: str
    format_rules: list[str] = Field(default_factory=list, max_length=10)


class KeyFinding(BaseModel):
    """A claim from research and the sources that support it."""

    claim: str
    source_ids: list[str]


class ResearchSummary(BaseModel):
    """Condensed research, with citations."""

    key_findings: list[KeyFinding] = Field(max_length=8)
    opportunities: list[str] = Field(max_length=6)
    risks: list[str] = Field(max_length=6)


class BudgetLine(BaseModel):
    """Budget for one channel."""

    channel: Channel
    amount_inr: int = Field(ge=0)


class Strategy(BaseModel):
    """Positioning and budget: the high-stakes choices a human approves."""

    positioning: str
    key_messages: list[str] = Field(min_length=1, max_length=5)
    budget_inr: int = Field(ge=100, le=100_000_000)
    budget_split: list[BudgetLine] = Field(max_length=5)
    rationale: str
    festivals: list[str] = Field(default_factory=list, max_length=5)
    """The festivals the strategy builds on, as "Diwali (2026-11-08, national)": set by code from the festival
    calendar for the campaign's window and target states, whatever the model proposes."""
