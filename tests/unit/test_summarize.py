"""Recursive map-reduce summarization: chunking, logarithmic rounds, citations, budget, parallelism."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from shared.errors import UpstreamUnavailable
from shared.ports import Finding, Generated, ModelTier, Usage
from shared.summarize import (
    Claim,
    Source,
    SummarizeConfig,
    SummaryDraft,
    document_sources,
    estimate_tokens,
    split_passages,
    summarize,
    summarize_findings,
)
from shared.summarize.chunking import pack
from shared.summarize.fake import ContextWindowExceeded, ExtractiveModel, synthetic_document

T = TypeVar("T", bound=BaseModel)


@dataclass
class Scripted:
    """Answers each call with the next canned `SummaryDraft` JSON; records prompts."""

    answers: list[dict[str, Any] | Exception]
    prompts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        with self.lock:
            self.prompts.append(prompt)
            answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return Generated(value=schema.model_validate(answer), usage=Usage(model="scripted", prompt_tokens=100,
                                                                          output_tokens=10))


def test_token_estimate_is_conservative_for_words_and_characters() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("one two three four") == math.ceil(4 * 1.3)
    assert estimate_tokens("नमस्ते" * 20) == math.ceil(len("नमस्ते" * 20) / 4)


def test_documents_split_into_paragraph_sources_and_passages_fit_the_chunk() -> None:
    text = "First paragraph here.\n\nSecond one.\n\n" + " ".join(f"word{i}." for i in range(3000))
    sources = document_sources("report", text, title="Report")
    assert [s.id for s in sources] == ["report#p1", "report#p2", "report#p3"]
    passages = split_passages(sources, max_tokens=500)
    assert all(p.tokens <= 500 for p in passages)
    assert [p.source_id for p in passages[:2]] == ["report#p1", "report#p2"]
    assert len({p.source_id for p in passages[2:]}) == 1 and len(passages) > 10
    assert " ".join(p.text for p in passages[2:]) == " ".join(f"word{i}." for i in range(3000))


def test_a_single_huge_word_is_cut_by_characters() -> None:
    passages = split_passages([Source(id="blob", text="x" * 10_000)], max_tokens=100)
    assert all(p.tokens <= 100 for p in passages) and "".join(p.text for p in passages) == "x" * 10_000


def test_pack_keeps_order_and_capacity() -> None:
    assert pack([3, 3, 3, 5, 1], 6) == [range(0, 2), range(2, 3), range(3, 5)]
    assert pack([10, 1], 6) == [range(0, 1), range(1, 2)]
    assert pack([], 6) == []


def test_input_that_fits_one_call_takes_one_round() -> None:
    model = ExtractiveModel()
    sources = [Source(id="a", text="Tea sales rose 12% in Assam."), Source(id="b", text="Gift boxes sold out.")]
    result = summarize(sources, model, 200)
    assert (result.rounds, result.model_calls, result.chunks) == (1, 1, 1)
    assert {i for c in result.claims for i in c.source_ids} <= {"a", "b"}
    assert result.usage.prompt_tokens > 0 and result.usage.model == "extractive-fast"


@pytest.mark.parametrize("words", [10_000, 200_000])
def test_large_documents_fit_the_budget_within_the_context_window(words: int) -> None:
    config = SummarizeConfig()
    model = ExtractiveModel(context_tokens=config.max_input_tokens)
    sources = document_sources("doc", synthetic_document(words))
    result = summarize(sources, model, 1_000, config=config)
    assert result.summary_tokens <= 1_000
    assert model.largest_prompt_tokens <= config.max_input_tokens
    assert result.model_calls == model.calls == sum(result.calls_per_round)
    ids = {s.id for s in sources}
    assert result.claims and all(c.source_ids and set(c.source_ids) <= ids for c in result.claims)
    cited_in_order = dict.fromkeys(i for c in result.claims for i in c.source_ids)
    assert [c.source_id for c in result.citations] == list(cited_in_order)


def test_rounds_grow_logarithmically_while_calls_grow_linearly() -> None:
    config = SummarizeConfig(chunk_tokens=1_000, chunk_summary_tokens=200, node_summary_tokens=200,
                             max_input_tokens=1_400, prompt_reserve_tokens=350)
    fan_in = config.capacity // int(config.node_summary_tokens * config.overflow)
    results = {}
    for words in (5_000, 20_000, 80_000):
        model = ExtractiveModel(context_tokens=config.max_input_tokens)
        results[words] = summarize(document_sources("d", synthetic_document(words)), model, 250, config=config)
    small, large = results[5_000], results[80_000]
    assert large.chunks >= 14 * small.chunks
    assert large.model_calls >= 10 * small.model_calls
    for result in results.values():
        assert result.rounds <= 2 + math.ceil(math.log(result.chunks, 2)) + config.max_compress_rounds
    assert large.rounds - small.rounds <= math.ceil(math.log(16, 2))
    assert fan_in >= 2
    assert [r.rounds for r in results.values()] == sorted(r.rounds for r in results.values())


def test_merged_claims_cite_the_original_sources_of_the_claims_they_merge() -> None:
    sources = [Source(id=f"src{i}", text=" ".join(["alpha"] * 500)) for i in range(4)]
    config = SummarizeConfig(chunk_tokens=1_600, max_input_tokens=4_000)
    model = Scripted([
        {"claims": [{"text": "chunk one", "cites": ["S1", "S2"]}]},
        {"claims": [{"text": "chunk two", "cites": ["[S2]"]}]},
        {"claims": [{"text": "merged", "cites": ["C1", "c2"]}, {"text": "only two", "cites": ["C2"]}]},
    ])
    result = summarize(sources, model, 300, config=config)
    assert result.calls_per_round == [2, 1]
    assert [(c.text, c.source_ids) for c in result.claims] == [("merged", ["src0", "src1", "src3"]),
                                                                ("only two", ["src3"])]
    assert "Claims to merge:\n[C1] chunk one\n[C2] chunk two" in model.prompts[2]


def test_invented_citations_are_dropped_and_uncited_claims_removed() -> None:
    model = Scripted([{"claims": [
        {"text": "real", "cites": ["S1", "S7", "web:404"]},
        {"text": "verbatim id", "cites": ["web:2"]},
        {"text": "made up", "cites": ["S99", "nowhere"]},
        {"text": "   ", "cites": ["S1"]},
    ]}])
    findings = [Finding(source_id="web:1", title="One", content="Diwali gifting peaks.", url="https://a"),
                {"source_id": "web:2", "title": "Two", "content": "Tea boxes sell out."}]
    result = summarize_findings(findings, model, 200)
    assert [(c.text, c.source_ids) for c in result.claims] == [("real", ["web:1"]), ("verbatim id", ["web:2"])]
    assert (result.dropped_citations, result.dropped_claims) == (4, 2)
    assert [c.model_dump() for c in result.citations] == [
        {"source_id": "web:1", "title": "One", "url": "https://a"}, {"source_id": "web:2", "title": "Two", "url": None}]
    assert result.key_findings() == [{"claim": "real", "source_ids": ["web:1"]},
                                     {"claim": "verbatim id", "source_ids": ["web:2"]}]


def test_fake_model_with_bad_citations_never_leaks_them() -> None:
    model = ExtractiveModel(invalid_citation_every=2)
    sources = document_sources("doc", synthetic_document(10_000))
    result = summarize(sources, model, 800)
    assert result.dropped_citations > 0
    ids = {s.id for s in sources}
    assert all(set(c.source_ids) <= ids for c in result.claims)


def test_an_answer_over_budget_is_compressed_then_trimmed() -> None:
    def verbose(tag: str, count: int) -> dict[str, Any]:
        return {"claims": [{"text": f"claim {i} " + " ".join(["word"] * 38), "cites": [tag]} for i in range(count)]}

    model = Scripted([verbose("S1", 30), verbose("C1", 20), verbose("C1", 20)])
    result = summarize([Source(id="a", text="short input")], model, 200, config=SummarizeConfig(max_compress_rounds=3))
    assert result.calls_per_round == [1, 1, 1]  # the second compression did not shrink it, so it stopped there
    assert result.summary_tokens <= 200 and result.trimmed_claims > 0
    assert result.claims[0].source_ids == ["a"] and result.claims[0].text.startswith("claim 0 ")


def test_a_merge_that_cites_nothing_valid_keeps_its_inputs() -> None:
    prior = [Claim(text="Budget agreed at Rs 20,000.", source_ids=["msg:1"])]
    model = Scripted([{"claims": [{"text": "invented", "cites": ["X"]}]}])
    result = summarize([Source(id="msg:2", text="user: thanks")], model, 500, prior=prior)
    assert result.rounds == 1 and result.claims == prior
    assert (result.dropped_claims, result.dropped_citations) == (1, 1)


def test_rolling_prior_claims_keep_their_ids() -> None:
    prior = [Claim(text="Budget agreed at Rs 20,000.", source_ids=["msg:3", "msg:4"])]
    model = Scripted([{"claims": [{"text": "Budget Rs 20,000; email first.", "cites": ["C1", "S1"]}]}])
    result = summarize([Source(id="msg:9", text="user: send the email first")], model, 200, prior=prior)
    assert result.claims[0].source_ids == ["msg:3", "msg:4", "msg:9"]
    assert "[C1] Budget agreed at Rs 20,000." in model.prompts[0]
    assert "[S1] user: send the email first" in model.prompts[0]


def test_map_calls_run_in_parallel_within_the_concurrency_bound() -> None:
    model = ExtractiveModel(latency_seconds=0.02)
    config = SummarizeConfig(max_concurrency=3)
    result = summarize(document_sources("d", synthetic_document(20_000)), model, 800, config=config)
    assert result.calls_per_round[0] > 3
    assert model.max_in_flight == 3


def test_transient_failures_are_retried_and_counted() -> None:
    answer = {"claims": [{"text": "ok", "cites": ["S1"]}]}
    model = Scripted([UpstreamUnavailable("503"), answer])
    result = summarize([Source(id="a", text="text")], model, 100, config=SummarizeConfig(retry_delay_seconds=0))
    assert result.model_calls == 2 and result.claims[0].text == "ok"
    with pytest.raises(UpstreamUnavailable):
        summarize([Source(id="a", text="text")], Scripted([UpstreamUnavailable("1"), UpstreamUnavailable("2")]), 100,
                  config=SummarizeConfig(retry_delay_seconds=0))


def test_overflowing_the_context_window_fails_loudly() -> None:
    config = SummarizeConfig(max_input_tokens=20_000, chunk_tokens=15_000)
    with pytest.raises(ContextWindowExceeded):
        summarize(document_sources("d", synthetic_document(20_000)), ExtractiveModel(context_tokens=8_000), 500,
                  config=config)


def test_config_must_let_merging_progress() -> None:
    with pytest.raises(ValueError):
        SummarizeConfig(max_input_tokens=2_000, chunk_tokens=1_000, node_summary_tokens=800)
    with pytest.raises(ValueError):
        SummarizeConfig(max_input_tokens=2_000, chunk_tokens=1_900)
    with pytest.raises(ValueError):
        summarize([], ExtractiveModel(), 10)


def test_empty_input_gives_an_empty_summary_without_calls() -> None:
    result = summarize([], ExtractiveModel(), 100)
    assert (result.claims, result.rounds, result.model_calls, result.summary) == ([], 0, 0, "")
    assert SummaryDraft.model_validate({"claims": []}).claims == []
