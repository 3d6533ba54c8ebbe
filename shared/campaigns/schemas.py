"""Pydantic shapes of what the models produce and of a campaign brief."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["email", "linkedin_post", "x_thread", "instagram_caption", "ad"]
CampaignKind = Literal["campaign", "move"]


class Brief(BaseModel):
    """What the marketer asks for."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    objective: str = Field(min_length=1, max_length=4000)
    audience: str | None = Field(default=None, max_length=2000)
    channels: list[Channel] | None = Field(default=None, min_length=1, max_length=5)
    """Preferred channels; the planner picks when omitted."""
    budget_inr: int | None = Field(default=None, ge=1, le=100_000_000)
    notes: str | None = Field(default=None, max_length=4000)


class Plan(BaseModel):
    """The planner's typed plan."""

    objective: str
    audience: str
    channels: list[Channel] = Field(min_length=1, max_length=5)
    kpis: list[str] = Field(min_length=1, max_length=6)
    research_queries: list[str] = Field(min_length=1, max_length=4)


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


class EmailCopy(BaseModel):
    """An email."""

    subject: str = Field(max_length=120)
    preheader: str = Field(max_length=200)
    body: str
    cta: str = Field(max_length=80)


class LinkedInPost(BaseModel):
    """A LinkedIn post."""

    text: str = Field(max_length=3000)


class XThread(BaseModel):
    """A thread on X: every post within 280 characters."""

    posts: list[Annotated[str, Field(max_length=280)]] = Field(min_length=1, max_length=8)


class InstagramCaption(BaseModel):
    """An Instagram caption with hashtags."""

    caption: str = Field(max_length=2200)
    hashtags: list[str] = Field(max_length=15)


class AdCopy(BaseModel):
    """A search/social ad."""

    headline: str = Field(max_length=90)
    description: str = Field(max_length=180)


CHANNEL_SCHEMAS: dict[str, type[BaseModel]] = {
    "email": EmailCopy,
    "linkedin_post": LinkedInPost,
    "x_thread": XThread,
    "instagram_caption": InstagramCaption,
    "ad": AdCopy,
}
