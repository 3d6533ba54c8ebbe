"""Content's node: Tier 2 writers, each seeing only its channel's brief."""

from __future__ import annotations

import json
import string
from typing import Any

from langgraph.runtime import Runtime

from shared.brandkit import as_brand_kit
from shared.campaigns.nodes.planner import kept_terms
from shared.campaigns.prompts import WRITER, language_of, writer_prompt
from shared.campaigns.schemas import CHANNEL_SCHEMAS
from shared.campaigns.state import CampaignState
from shared.deps import Deps
from shared.models.usage import usage_entries

WRITER_STYLES = {
    "concise": "short sentences, the benefit first, no filler",
    "storytelling": "open with a small human moment, then the benefit",
}
"""Writer variants; adaptive selection picks per workspace and task type by past QA results."""
DISCLAIMER_FIELD = {"email": "body", "linkedin_post": "text", "instagram_caption": "caption", "ad": "description",
                    "landing_page": "body", "video_script": "script"}


def content(state: CampaignState, runtime: Runtime[Deps]) -> dict[str, Any]:
    """Tier 2: stateless writers produce each channel's copy from its brief alone (fast tier), in the channel's
    language (the brief's `channel_languages` override, else its `language`).

    On a QA revision only the failing fields of the failing drafts are rewritten.
    """
    deps = runtime.context
    kit = deps.campaign.brand
    full_kit = as_brand_kit(kit)
    drafts = dict(state.get("drafts") or {})
    last_qa = state.get("qa")
    revision = state.get("qa_revisions", 0) + (1 if last_qa else 0)
    variants = string.ascii_lowercase[: int(state["brief"].get("variants") or 1)]
    style = state.get("writer_style") or deps.plans.pick_variant(state["workspace_id"], state["kind"], "writer",
                                                                  list(WRITER_STYLES), "concise")
    usage: list[dict[str, Any]] = []
    rewrite: dict[str, dict[str, list[str]]] = {}
    for finding in last_qa["findings"] if last_qa else []:
        rewrite.setdefault(finding["draft"], {}).setdefault(finding["field"], []).append(finding["message"])
    for channel in state["plan"]["channels"]:
        for variant in variants:
            key = draft_key(channel, variant)
            if last_qa and key not in rewrite:
                continue
            schema = CHANNEL_SCHEMAS[channel]
            revising = key in rewrite and key in drafts
            language = language_of(state["brief"], channel)
            prompt = writer_prompt(channel, WRITER_STYLES[style], state["briefs"][channel], variant=variant,
                                   current=drafts[key] if revising else None,
                                   fixes=rewrite[key] if revising else None, language=language,
                                   keep=kept_terms(full_kit, language), code_mixing=full_kit.code_mixing)
            out = deps.model.generate(tier="fast", system=WRITER, prompt=prompt, schema=schema)
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
    """`text` then `suffix`, within `max_length`: a text too long is cut at its last space that fits (never inside a
    word, so no Indic letter loses its vowel sign), or at the limit when one word fills the room."""
    room = max(max_length - len(suffix) - 1, 0)
    kept = text if len(text) <= room else (text[:room + 1].rsplit(None, 1)[0] if " " in text[:room + 1]
                                          else text[:room])
    return (kept.rstrip() + " " + suffix).strip()


def draft_key(channel: str, variant: str) -> str:
    """Key of one draft in state: `email` for the first variant, `email#b` for the next."""
    return channel if variant == "a" else f"{channel}#{variant}"
