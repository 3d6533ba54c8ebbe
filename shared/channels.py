"""The copy each channel produces: one pydantic model per channel, bounding what a writer may return.

These are the shapes the writers' model answers are validated against, the canon's hard limits and
the tool belt's validation. Platform display limits (stricter) live in the QA gate's specs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

Channel = Literal["email", "linkedin_post", "x_thread", "instagram_caption", "ad", "landing_page", "video_script"]


class EmailCopy(BaseModel):
    """An email."""

    subject: str = Field(max_length=60)
    preheader: str = Field(max_length=80)
    body: str = Field(max_length=10_000)
    cta: str = Field(max_length=30)


class LinkedInPost(BaseModel):
    """A LinkedIn post."""

    text: str = Field(max_length=3000)


class XThread(BaseModel):
    """A thread on X: every post within 280 characters."""

    posts: list[Annotated[str, Field(max_length=280)]] = Field(min_length=1, max_length=8)


class InstagramCaption(BaseModel):
    """An Instagram caption with hashtags."""

    caption: str = Field(max_length=2200)
    hashtags: list[Annotated[str, Field(max_length=100)]] = Field(max_length=30)


class AdCopy(BaseModel):
    """A search/social ad."""

    headline: str = Field(max_length=30)
    description: str = Field(max_length=90)


class LandingPage(BaseModel):
    """A landing page: hero headline and subheadline, Markdown sections, one call to action."""

    headline: str = Field(max_length=70)
    subheadline: str = Field(max_length=160)
    body: str = Field(max_length=20_000)
    """`## The problem`, `## How it works`, `## Proof` sections in Markdown."""
    cta: str = Field(max_length=30)


class VideoScript(BaseModel):
    """A short video script: a three-second hook, scenes, and the closing call to action."""

    hook: str = Field(max_length=150)
    script: str = Field(max_length=10_000)
    """Scenes in order: `SCENE n - Visual: … / VO: … / Text: …`."""
    cta: str = Field(max_length=60)


CHANNEL_SCHEMAS: dict[str, type[BaseModel]] = {
    "email": EmailCopy,
    "linkedin_post": LinkedInPost,
    "x_thread": XThread,
    "instagram_caption": InstagramCaption,
    "ad": AdCopy,
    "landing_page": LandingPage,
    "video_script": VideoScript,
}
