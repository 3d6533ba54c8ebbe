"""Map-reduce summarization with recursive collapse to a token budget.

1. Sources are cut into passages and packed into chunks of `chunk_tokens`.
2. Map: every chunk is summarized in parallel (bounded by `max_concurrency`) into cited claims.
3. Reduce: consecutive summaries are packed into groups that fit one call's input and merged, level by
   level, until one summary is left; the last merge targets the caller's budget. Every intermediate
   summary is capped at half a call's input, so each group merges at least two and, in practice,
   `max_input_tokens / node_summary_tokens` summaries: the number of levels is logarithmic in the input.
4. Compress: if the last summary still exceeds the budget it is merged with itself again (at most
   `max_compress_rounds` times), then trimmed.

Citations survive every level without the model copying ids: in each call passages are tagged `S1…`
and earlier claims `C1…`, the model cites tags, and the code maps them back to the original source
ids (a merged claim inherits the ids of the claims it cites). A tag or id that was not in the call's
input is dropped, and so is a claim left with no valid citation.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.errors import UpstreamUnavailable
from shared.models.spend import with_caller_context
from shared.ports import Finding, ModelTier, StructuredModel
from shared.summarize import prompts
from shared.summarize.chunking import Passage, Source, pack, split_passages
from shared.summarize.schemas import Citation, Claim, SummaryDraft, SummaryResult, UsageTotal
from shared.summarize.tokens import estimate_tokens

_TAG = re.compile(r"^[\[(]?\s*([SC])\s*(\d+)\s*[\])]?$", re.IGNORECASE)
_CLAIM_OVERHEAD = 4
"""Tokens a claim's tag and line break add to a prompt."""


@dataclass(frozen=True)
class SummarizeConfig:
    """Sizes of one summarization; the defaults suit Gemini Flash with prompts kept small and fast."""

    max_input_tokens: int = 12_000
    """Largest prompt (instructions + content) of one call: the model's usable context."""
    chunk_tokens: int = 3_000
    """Content of one map call."""
    chunk_summary_tokens: int = 400
    """Target size of a chunk's summary."""
    node_summary_tokens: int = 800
    """Target size of an intermediate merge."""
    claim_words: int = 40
    max_concurrency: int = 8
    attempts: int = 2
    """Tries per call when the model is transiently unavailable."""
    retry_delay_seconds: float = 0.5
    overflow: float = 1.5
    """How far an answer may exceed its target before its last claims are trimmed."""
    max_compress_rounds: int = 2
    tier: ModelTier = "fast"
    prompt_reserve_tokens: int = 400
    """Room kept in every call for instructions and headers."""

    def __post_init__(self) -> None:
        capacity = self.max_input_tokens - self.prompt_reserve_tokens
        if self.chunk_tokens > capacity:
            raise ValueError(f"chunk_tokens ({self.chunk_tokens}) must fit one call's input ({capacity}).")
        if 2 * self.overflow * max(self.chunk_summary_tokens, self.node_summary_tokens) > capacity:
            raise ValueError("Two summaries must fit one call's input, or merging could not make progress.")

    @property
    def capacity(self) -> int:
        """Content tokens one call may carry."""
        return self.max_input_tokens - self.prompt_reserve_tokens

    def claims_for(self, target_tokens: int) -> int:
        """How many claims fit `target_tokens`."""
        return max(1, int(target_tokens // (self.claim_words * 1.5 + _CLAIM_OVERHEAD)))


def claims_tokens(claims: Sequence[Claim]) -> int:
    """Tokens the claims' text takes in a prompt (citations are metadata and not counted)."""
    return sum(estimate_tokens(c.text) + _CLAIM_OVERHEAD for c in claims)


def render(claims: Sequence[Claim]) -> str:
    """Claims as bullets, each with its source ids."""
    return "\n".join(f"- {c.text} [{'; '.join(c.source_ids)}]" for c in claims)


def summarize(
    sources: Sequence[Source],
    model: StructuredModel,
    budget_tokens: int,
    *,
    focus: str | None = None,
    prior: Sequence[Claim] = (),
    config: SummarizeConfig | None = None,
) -> SummaryResult:
    """Condense `sources` (plus an earlier summary, `prior`) into cited claims within `budget_tokens`.

    `prior` makes the summary rolling: its claims keep their source ids and are merged with what the
    new sources say, which is how conversation and campaign histories are compacted.
    """
    cfg = config or SummarizeConfig()
    if budget_tokens < 50:
        raise ValueError("budget_tokens must be at least 50.")
    run = _Run(model=model, cfg=cfg, focus=focus, sources={s.id: s for s in sources})
    passages = split_passages(sources, cfg.chunk_tokens)
    prior_claims = run.cap(list(prior), cfg.capacity // 2)
    input_tokens = sum(p.tokens for p in passages) + claims_tokens(prior_claims)
    executor = ThreadPoolExecutor(max_workers=cfg.max_concurrency, thread_name_prefix="summarize")
    try:
        claims = run.condense(executor, passages, prior_claims, budget_tokens)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return run.result(claims, chunks=run.chunks, input_tokens=input_tokens)


def summarize_findings(
    findings: Sequence[Finding | Mapping[str, Any]],
    model: StructuredModel,
    budget_tokens: int,
    *,
    focus: str | None = None,
    config: SummarizeConfig | None = None,
) -> SummaryResult:
    """Summarize research findings (`Finding`s or their `as_dict()` form, as campaign state keeps them).

    Claims cite the findings' `source_id`s; `result.key_findings()` has the campaign graph's
    `KeyFinding` shape, and `result.summary` is a compact text to put in the strategist's prompt.
    """
    sources = [_finding_source(f) for f in findings]
    return summarize(sources, model, budget_tokens, focus=focus, config=config)


def _finding_source(finding: Finding | Mapping[str, Any]) -> Source:
    if isinstance(finding, Finding):
        return Source(id=finding.source_id, text=finding.content, title=finding.title, url=finding.url)
    return Source(id=str(finding["source_id"]), text=str(finding.get("content") or ""),
                  title=str(finding.get("title") or ""), url=finding.get("url"))


@dataclass
class _Call:
    """The input of one model call and the size its answer should have."""

    claims: list[Claim]
    passages: list[Passage]
    target_tokens: int
    cap_tokens: int


class _Run:
    """The mutable bookkeeping of one `summarize` call: counters, usage, and the rounds themselves."""

    def __init__(self, *, model: StructuredModel, cfg: SummarizeConfig, focus: str | None,
                 sources: Mapping[str, Source]) -> None:
        self.model = model
        self.cfg = cfg
        self.focus = focus
        self.sources = sources
        self.lock = threading.Lock()
        self.usage = UsageTotal()
        self.calls_per_round: list[int] = []
        self.chunks = 0
        self.dropped_citations = 0
        self.dropped_claims = 0
        self.trimmed_claims = 0

    def condense(self, executor: ThreadPoolExecutor, passages: list[Passage], prior: list[Claim],
                 budget: int) -> list[Claim]:
        cfg = self.cfg
        content = sum(_passage_size(p) for p in passages) + claims_tokens(prior)
        if not passages:
            nodes = [prior] if prior else []
        elif content <= cfg.chunk_tokens:
            self.chunks = 1
            nodes = self.round(executor, [_Call(prior, passages, int(budget * 0.9), cfg.capacity // 2)])
        else:
            runs = pack([_passage_size(p) for p in passages], cfg.chunk_tokens)
            self.chunks = len(runs)
            cap = int(cfg.chunk_summary_tokens * cfg.overflow)
            calls = [_Call([], passages[r.start:r.stop], cfg.chunk_summary_tokens, cap) for r in runs]
            nodes = ([prior] if prior else []) + self.round(executor, calls)
        while len(nodes) > 1:
            nodes = self.merge_level(executor, nodes, budget)
        claims = nodes[0] if nodes else []
        for _ in range(cfg.max_compress_rounds):
            size = claims_tokens(claims)
            if size <= budget:
                break
            shorter = self.round(executor, [_Call(claims, [], int(budget * 0.75), cfg.capacity // 2)])[0]
            if not shorter or claims_tokens(shorter) >= size:
                break
            claims = shorter
        return self.cap(claims, budget)

    def merge_level(self, executor: ThreadPoolExecutor, nodes: list[list[Claim]], budget: int) -> list[list[Claim]]:
        """Merge consecutive summaries in groups that fit one call; a group of one passes through."""
        cfg = self.cfg
        runs = pack([claims_tokens(n) for n in nodes], cfg.capacity)
        final = len(runs) == 1
        target = int(budget * 0.9) if final else cfg.node_summary_tokens
        cap = cfg.capacity // 2 if final else int(cfg.node_summary_tokens * cfg.overflow)
        calls = [_Call([c for n in nodes[r.start:r.stop] for c in n], [], target, cap) for r in runs if len(r) > 1]
        merged = iter(self.round(executor, calls))
        return [next(merged) if len(r) > 1 else nodes[r.start] for r in runs]

    def round(self, executor: ThreadPoolExecutor, calls: list[_Call]) -> list[list[Claim]]:
        """One sequential round: every call in parallel, answers in call order."""
        if not calls:
            return []
        self.calls_per_round.append(len(calls))
        return list(executor.map(with_caller_context(self.call), calls))

    def call(self, call: _Call) -> list[Claim]:
        cfg = self.cfg
        claim_tags = {f"C{i}": c for i, c in enumerate(call.claims, start=1)}
        passage_tags = {f"S{i}": p for i, p in enumerate(call.passages, start=1)}
        prompt = prompts.build(
            focus=self.focus,
            max_claims=cfg.claims_for(call.target_tokens),
            target_tokens=call.target_tokens,
            claims=[(tag, c.text) for tag, c in claim_tags.items()],
            passages=[(tag, p.title, p.text) for tag, p in passage_tags.items()],
        )
        system = prompts.system(cfg.claim_words)
        draft = self._generate(system, prompt)
        known_ids = {p.source_id for p in call.passages} | {i for c in call.claims for i in c.source_ids}
        tag_ids: dict[str, list[str]] = {t: list(c.source_ids) for t, c in claim_tags.items()}
        tag_ids.update({t: [p.source_id] for t, p in passage_tags.items()})
        claims: list[Claim] = []
        dropped_citations = dropped_claims = 0
        for drafted in draft.claims:
            ids: list[str] = []
            for cite in drafted.cites:
                resolved = _resolve(cite, tag_ids, known_ids)
                if resolved is None:
                    dropped_citations += 1
                ids.extend(resolved or [])
            text = drafted.text.strip()
            if not text or not ids:
                dropped_claims += 1
                continue
            claims.append(Claim(text=text, source_ids=list(dict.fromkeys(ids))))
        if not claims:
            claims = list(call.claims)
        with self.lock:
            self.dropped_citations += dropped_citations
            self.dropped_claims += dropped_claims
        return self.cap(claims, call.cap_tokens)

    def _generate(self, system: str, prompt: str) -> SummaryDraft:
        cfg = self.cfg
        for attempt in range(1, cfg.attempts + 1):
            try:
                out = self.model.generate(tier=cfg.tier, system=system, prompt=prompt, schema=SummaryDraft)
            except UpstreamUnavailable:
                with self.lock:
                    self.calls_per_round[-1] += 1
                if attempt == cfg.attempts:
                    raise
                time.sleep(cfg.retry_delay_seconds * attempt)
                continue
            with self.lock:
                self.usage = self.usage.plus(out.usage)
            return out.value
        raise AssertionError("unreachable")

    def cap(self, claims: list[Claim], cap_tokens: int) -> list[Claim]:
        """The leading claims that fit `cap_tokens` (always at least one)."""
        kept: list[Claim] = []
        size = 0
        for claim in claims:
            size += estimate_tokens(claim.text) + _CLAIM_OVERHEAD
            if kept and size > cap_tokens:
                break
            kept.append(claim)
        if len(kept) < len(claims):
            with self.lock:
                self.trimmed_claims += len(claims) - len(kept)
        return kept

    def result(self, claims: list[Claim], *, chunks: int, input_tokens: int) -> SummaryResult:
        cited: dict[str, Citation] = {}
        for claim in claims:
            for source_id in claim.source_ids:
                source = self.sources.get(source_id)
                cited.setdefault(source_id, Citation(source_id=source_id, title=source.title if source else "",
                                                     url=source.url if source else None))
        return SummaryResult(
            summary=render(claims),
            claims=claims,
            citations=list(cited.values()),
            rounds=len(self.calls_per_round),
            model_calls=sum(self.calls_per_round),
            calls_per_round=list(self.calls_per_round),
            chunks=chunks,
            input_tokens=input_tokens,
            summary_tokens=claims_tokens(claims),
            dropped_citations=self.dropped_citations,
            dropped_claims=self.dropped_claims,
            trimmed_claims=self.trimmed_claims,
            usage=self.usage,
        )


def _passage_size(passage: Passage) -> int:
    return passage.tokens + _CLAIM_OVERHEAD


def _resolve(cite: str, tag_ids: Mapping[str, list[str]], known_ids: set[str]) -> list[str] | None:
    """The source ids a cited tag (or a verbatim source id) stands for; None if it was not in the input."""
    match = _TAG.match(cite.strip())
    if match:
        ids = tag_ids.get(f"{match.group(1).upper()}{match.group(2)}")
        if ids is not None:
            return ids
    return [cite] if cite in known_ids else None
