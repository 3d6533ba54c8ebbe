"""Acceptance: a 10k-word document is summarized with citations through the official SDK and the Gemini emulator."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.gemini import create_app
from infra.local.serve import RunningServer, serve_in_thread
from shared.integrations.gemini import structured_model
from shared.ports import StructuredModel
from shared.settings import Settings
from shared.summarize import document_sources, summarize
from shared.summarize.fake import synthetic_document
from shared.summarize.prompts import CLAIMS_HEADER, PASSAGES_HEADER

CONFIG = EmulatorConfig(database_url="")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = serve_in_thread(create_app(CONFIG))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def settings(server: RunningServer) -> Settings:
    """The deployment's settings with Gemini at the emulator; the other services are never called."""
    env = {
        "DATABASE_URL": "postgresql://unused", "QSTASH_TOKEN": "t", "QSTASH_CURRENT_SIGNING_KEY": "c",
        "QSTASH_NEXT_SIGNING_KEY": "n", "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9", "UPSTASH_REDIS_REST_TOKEN": "t",
        "TAVILY_API_KEY": "k", "PHONEPE_CLIENT_ID": "c", "PHONEPE_CLIENT_SECRET": "s", "PHONEPE_WEBHOOK_USERNAME": "u",
        "PHONEPE_WEBHOOK_PASSWORD": "p", "GEMINI_API_KEY": CONFIG.gemini_api_key, "GEMINI_BASE_URL": server.url,
    }
    return Settings(**env)  # type: ignore[arg-type]


def test_a_10k_word_document_is_summarized_with_citations(server: RunningServer, settings: Settings) -> None:
    model: StructuredModel = structured_model(settings)
    fast = settings.model_fast
    map_answer = {"claims": [
        {"text": "Festive gifting drives most of the quarter's tea sales.", "cites": ["S1", "S2", "S404"]},
        {"text": "An aside with no support.", "cites": ["nope"]},
    ]}
    merge_answer = {"claims": [
        {"text": "Across the report, festive gifting drives tea sales.", "cites": ["C1", "C2", "C3", "C99"]},
        {"text": "Later sections confirm the gifting pattern.", "cites": ["[C4]", "C5", "C6"]},
    ]}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post("/_emulator/script", json={"rules": [
            {"match": {"contains": CLAIMS_HEADER}, "response": {"json": merge_answer}},
            {"match": {"contains": PASSAGES_HEADER}, "response": {"json": map_answer}},
        ]}).raise_for_status()

        text = synthetic_document(10_000)
        sources = document_sources("brand-report", text, title="Assam tea market report")
        result = summarize(sources, model, 800, focus="Diwali gifting campaign")
        log = http.get("/_emulator/requests").json()

    assert len(text.split()) >= 10_000
    assert result.chunks == 6 and result.calls_per_round == [6, 1] and result.rounds == 2
    assert result.model_calls == len(log) == 7
    assert all(entry["model"] == fast and entry["status"] == 200 for entry in log)
    assert "claims" in log[0]["body"]["generationConfig"]["responseJsonSchema"]["properties"]

    sent = "\n".join(entry["text"] for entry in log[:6])
    assert all(source.text in sent for source in sources)

    ids = {s.id for s in sources}
    first, second = result.claims
    assert first.text == "Across the report, festive gifting drives tea sales."
    assert len(first.source_ids) == len(second.source_ids) == 6
    assert set(first.source_ids) | set(second.source_ids) <= ids
    assert first.source_ids[:2] == ["brand-report#p1", "brand-report#p2"]
    assert len(set(first.source_ids) | set(second.source_ids)) == 12
    assert [c.source_id for c in result.citations] == first.source_ids + second.source_ids
    assert all(c.title == "Assam tea market report" for c in result.citations)
    assert "[brand-report#p1; brand-report#p2;" in result.summary
    assert (result.dropped_citations, result.dropped_claims) == (6 * 2 + 1, 6)

    prompt_tokens = sum(math.ceil(len(entry["text"].split()) * 1.3) for entry in log)
    assert result.usage.prompt_tokens == prompt_tokens and result.usage.output_tokens > 0
    assert result.usage.model == fast and result.summary_tokens <= 800
