"""The semantic cache's calibration and guard, and the emulators' latency settings."""

from __future__ import annotations

import time

from infra.local.emulators import gemini as gemini_emulator
from infra.local.emulators import tavily as tavily_emulator
from infra.local.emulators.config import REALISTIC_GEMINI_LATENCY_SECONDS, EmulatorConfig, model_latency
from shared.caching.semantic import (
    LabelledPair,
    calibrate,
    evaluate,
    load_pairs,
    numbers_of,
    pair_similarities,
    same_intent,
    threshold_for,
)
from shared.integrations.embeddings import LocalE5Embedder
from shared.settings import Settings


def test_the_labelled_set_has_enough_pairs_of_both_kinds() -> None:
    pairs = load_pairs()
    assert len(pairs) >= 60
    assert sum(p["paraphrase"] for p in pairs) >= 30 and sum(not p["paraphrase"] for p in pairs) >= 30


def test_queries_naming_other_numbers_never_share_an_answer() -> None:
    assert numbers_of("Diwali trends 2026, budgets ₹1,499") == {"2026", "1499"}
    assert not same_intent("Diwali gifting 2026", "Diwali gifting 2025", 0.999, 0.98)
    assert same_intent("Diwali gifting 2026", "2026 Diwali gifts", 0.99, 0.98)
    assert not same_intent("Diwali gifting", "Holi gifting", 0.97, 0.98)


def test_calibration_puts_the_threshold_above_every_guarded_non_paraphrase() -> None:
    pairs: list[LabelledPair] = [
        {"a": "a", "b": "b", "paraphrase": True}, {"a": "c", "b": "d", "paraphrase": False},
        {"a": "e 1", "b": "e 2", "paraphrase": False}, {"a": "f", "b": "g", "paraphrase": True}]
    found = calibrate(pairs, [0.99, 0.95, 0.999, 0.94])
    assert found["threshold"] == 0.952 and found["highest_non_paraphrase"] == 0.95
    assert (found["paraphrase_hits"], found["false_hits"]) == (1, 0)
    assert evaluate(pairs, [0.99, 0.95, 0.999, 0.94], 0.9)["false_hits"] == 1


def test_the_configured_threshold_lets_no_labelled_non_paraphrase_through_with_e5() -> None:
    pairs = load_pairs()
    similarities = pair_similarities(LocalE5Embedder(), pairs)
    threshold = Settings.model_fields["semantic_cache_threshold"].default
    configured = evaluate(pairs, similarities, threshold)
    assert threshold >= calibrate(pairs, similarities)["threshold"]
    assert configured["false_hits"] == 0
    assert configured["paraphrase_hits"] >= 12, configured


def test_the_emulators_wait_the_configured_latency_per_model_and_per_search() -> None:
    assert model_latency(REALISTIC_GEMINI_LATENCY_SECONDS, "gemini-2.5-flash-lite") == 0.8
    assert model_latency(REALISTIC_GEMINI_LATENCY_SECONDS, "gemini-2.5-pro") == 2.5
    assert model_latency({}, "gemini-2.5-pro") == 0.0
    config = EmulatorConfig(database_url="", gemini_latency_seconds={"pro": 0.3}, tavily_latency_seconds=0.2)
    gemini = gemini_emulator.create_app(config).test_client()
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    timings = {}
    for model in ("gemini-2.5-flash", "gemini-2.5-pro"):
        started = time.perf_counter()
        answer = gemini.post(f"/v1beta/models/{model}:generateContent", json=body,
                             headers={"x-goog-api-key": config.gemini_api_key})
        timings[model] = time.perf_counter() - started
        assert answer.status_code == 200
    started = time.perf_counter()
    found = tavily_emulator.create_app(config).test_client().post(
        "/search", json={"query": "diwali"}, headers={"Authorization": f"Bearer {config.tavily_api_key}"})
    assert found.status_code == 200
    assert time.perf_counter() - started >= 0.2
    assert timings["gemini-2.5-pro"] >= 0.3 > timings["gemini-2.5-flash"]


def test_an_uncalibrated_embedding_model_keeps_the_semantic_cache_off_unless_told() -> None:
    assert threshold_for("multilingual-e5-small", 0.983, explicit=False) == 0.983
    assert threshold_for("gemini-embedding-001", 0.983, explicit=False) == 1.0
    assert threshold_for("gemini-embedding-001", 0.95, explicit=True) == 0.95
