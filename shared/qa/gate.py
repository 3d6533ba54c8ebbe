"""The QA gate: deterministic lint, then the claims check, then the model judge per guideline.

`check` gates one piece of copy (the API's "check again"); `review` gates a campaign's drafts and is
what the `qa_gate` node calls. Both return per-field findings with reasons and
score = guidelines passed ÷ guidelines tested.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from shared import ports
from shared.brandkit import BrandKit, as_brand_kit
from shared.qa.claims import claims
from shared.qa.content import Copy, coerce_fields
from shared.qa.correction import SelfCorrectionConfig
from shared.qa.judge import judge
from shared.qa.lint import lint
from shared.qa.report import GateReport, Layer, Ledger, QAReport
from shared.writing.specs import CONTENT_SPECS, LANGUAGES

ALL_LAYERS: tuple[Layer, ...] = ("lint", "claims", "judge")
KitLike = BrandKit | ports.BrandKit | Mapping[str, Any] | None


def content_type_of(key: str) -> str:
    """The content type of a draft key: `email`, or `email#b` for a variant (`email:b` also works)."""
    content_type = re.split(r"[#:]", key, maxsplit=1)[0]
    if content_type not in CONTENT_SPECS:
        raise ValueError(f"{key!r} is not a content type; use one of {sorted(CONTENT_SPECS)} "
                         "(optionally with '#variant').")
    return content_type


def review(drafts: Mapping[str, Mapping[str, Any]], kit: KitLike, *, language: str = "en",
           languages: Mapping[str, str] | None = None, sources: Sequence[str] = (),
           model: ports.StructuredModel | None = None, config: SelfCorrectionConfig | None = None,
           layers: Collection[Layer] = ALL_LAYERS, judge_workers: int = 8) -> GateReport:
    """Gate every draft (key → fields; keys are content types, `#variant` allowed) against `kit`.

    Each draft is checked in its language: `languages[key]` when given (a channel's override), else
    `language`. `sources` are texts claims may rest on (research findings, knowledge chunks, the brief,
    the plan, the festival calendar). Without `model` the judge layer is skipped. Deterministic findings
    always block; the judge's lower the score.
    """
    chosen = {key: (languages or {}).get(key, language) for key in drafts}
    for value in {language, *chosen.values()}:
        if value not in LANGUAGES:
            raise ValueError(f"{value!r} is not a supported language; use one of {list(LANGUAGES)}.")
    config = config or SelfCorrectionConfig()
    full_kit = as_brand_kit(kit)  # type: ignore[arg-type]
    items = {key: Copy(content_type=content_type_of(key), fields=coerce_fields(content_type_of(key), fields),
                       language=chosen[key], kit=full_kit) for key, fields in drafts.items()}
    ledgers = {key: Ledger() for key in items}
    for key, copy in items.items():
        if "lint" in layers:
            lint(copy, ledgers[key])
        if "claims" in layers:
            claims(copy, ledgers[key], sources)
    usage: list[dict[str, Any]] = []
    if "judge" in layers and model is not None:
        usage = judge(items, ledgers, model, aspects=config.critique_aspects, max_workers=judge_workers)
    reports = {key: ledgers[key].report(content_type=copy.content_type, language=copy.language,
                                        field_order=copy.field_names, min_score=config.min_quality_score)
               for key, copy in items.items()}
    return GateReport.of(reports, usage)


def check(content_type: str, fields: Mapping[str, Any], kit: KitLike, *, language: str = "en",
          sources: Sequence[str] = (), model: ports.StructuredModel | None = None,
          config: SelfCorrectionConfig | None = None, layers: Collection[Layer] = ALL_LAYERS,
          judge_workers: int = 8) -> QAReport:
    """Gate one piece of copy of `content_type`; the report carries the judge's token usage."""
    gate = review({content_type: fields}, kit, language=language, sources=sources, model=model, config=config,
                  layers=layers, judge_workers=judge_workers)
    return gate.items[content_type].model_copy(update={"usage": gate.usage})
