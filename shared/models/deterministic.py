"""The model calls that are deterministic: asked at temperature 0 and answered from the response cache.

Classification (the prompt-injection classifier), summarization (the research summary, map-reduce
drafts) and the QA judge (one verdict per guideline): their answer should depend on the prompt alone.
Named by schema class, so this module imports nothing and both the Gemini backend (temperature) and
`shared.caching.responses` (caching) can ask it. Lives with the models so that the integrations,
which `shared.caching` builds on, need not import it.
"""

from __future__ import annotations

DETERMINISTIC_SCHEMAS = frozenset({"InjectionVerdict", "ResearchSummary", "SummaryDraft", "JudgeVerdict"})


def is_deterministic(schema: type) -> bool:
    """Whether answers of `schema` are asked at temperature 0 and may be served from the cache."""
    return schema.__name__ in DETERMINISTIC_SCHEMAS
