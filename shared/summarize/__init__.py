"""Recursive map-reduce summarization with citations, to a token budget (see `mapreduce`).

Use it for anything beyond one context window:

- `summarize(sources, model, budget_tokens, focus=..., prior=...)` condenses `Source`s (id, text,
  title); `document_sources(doc_id, text)` turns one long document into paragraph sources so
  citations point at paragraphs.
- `summarize_findings(findings, model, budget_tokens, focus=...)` takes the campaign graph's research
  findings (`Finding`s or their dicts). To use it in the campaign's `summarize` node, when the
  findings exceed one prompt: `result = summarize_findings(findings, runtime.context.model, 1_500,
  focus=plan["objective"])`, then give the strategist `result.summary` (or store
  `result.key_findings()`, already in `KeyFinding` shape) and record `result.usage.as_usage()`.

Every call goes through the `StructuredModel` port at the fast tier; `SummaryResult` reports rounds,
calls and total usage. `shared.summarize.fake.ExtractiveModel` is a deterministic stand-in with a real
context limit for tests and benchmarks.
"""

from shared.summarize.chunking import Passage, Source, document_sources, split_passages
from shared.summarize.mapreduce import SummarizeConfig, claims_tokens, render, summarize, summarize_findings
from shared.summarize.schemas import Citation, Claim, DraftClaim, SummaryDraft, SummaryResult, UsageTotal
from shared.summarize.tokens import estimate_tokens

__all__ = [
    "Citation",
    "Claim",
    "DraftClaim",
    "Passage",
    "Source",
    "SummarizeConfig",
    "SummaryDraft",
    "SummaryResult",
    "UsageTotal",
    "claims_tokens",
    "document_sources",
    "estimate_tokens",
    "render",
    "split_passages",
    "summarize",
    "summarize_findings",
]
