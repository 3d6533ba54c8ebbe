"""The Tavily emulator, driven through the official `tavily-python` SDK over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from tavily import TavilyClient
from tavily.errors import BadRequestError, InvalidAPIKeyError, UsageLimitExceededError

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.tavily import CORPUS_PATH, create_app
from infra.local.serve import RunningServer, serve_in_thread

CONFIG = EmulatorConfig(database_url="")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = serve_in_thread(create_app(CONFIG))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(autouse=True)
def _clean_emulator(server: RunningServer) -> Iterator[None]:
    """Each test starts with no script and an empty request log."""
    yield
    with httpx.Client(base_url=server.url) as session:
        session.delete("/_emulator/script").raise_for_status()
        session.delete("/_emulator/requests").raise_for_status()


@pytest.fixture
def client(server: RunningServer) -> Iterator[TavilyClient]:
    with TavilyClient(api_key=CONFIG.tavily_api_key, api_base_url=server.url) as sdk:
        yield sdk


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as session:
        yield session


def test_corpus_is_a_fictional_indian_marketing_set() -> None:
    corpus = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
    assert len(corpus) >= 25
    assert {"news", "general"} <= {article["topic"] for article in corpus}
    assert all(".example" in article["url"] or "example-news.in" in article["url"] for article in corpus)
    assert all(80 <= len(article["content"].split()) <= 200 for article in corpus)


def test_search_ranks_relevant_articles_first(client: TavilyClient) -> None:
    response = client.search("Onam campaign Kerala brands Malayalam")

    results = response["results"]
    assert response["query"] == "Onam campaign Kerala brands Malayalam"
    assert 1 <= len(results) <= 5
    assert results[0]["url"].endswith("/onam-marketing-kerala-brands")
    assert all(set(r) >= {"title", "url", "content", "score", "raw_content"} for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert all(0 < r["score"] < 1 for r in results)
    assert results[0]["raw_content"] is None
    assert response["answer"] is None and response["images"] == []
    assert response["request_id"] and isinstance(response["response_time"], float)


def test_search_is_deterministic_and_honours_max_results(client: TavilyClient) -> None:
    first = client.search("Diwali festive campaign", max_results=3)
    second = client.search("Diwali festive campaign", max_results=3)

    assert len(first["results"]) == 3
    assert [r["url"] for r in first["results"]] == [r["url"] for r in second["results"]]


def test_domain_filters(client: TavilyClient) -> None:
    only = client.search("influencer pricing festive", include_domains=["adpulse.example.in"], max_results=10)
    without = client.search("influencer pricing festive", exclude_domains=["adpulse.example.in"], max_results=10)

    assert only["results"] and all("adpulse.example.in" in r["url"] for r in only["results"])
    assert without["results"] and all("adpulse.example.in" not in r["url"] for r in without["results"])


def test_news_topic_returns_dated_news_only(client: TavilyClient) -> None:
    response = client.search("competitor launch", topic="news", max_results=10)

    assert response["results"]
    assert all(r["published_date"].endswith("GMT") for r in response["results"])
    news_urls = {a["url"] for a in json.loads(CORPUS_PATH.read_text()) if a["topic"] == "news"}
    assert {r["url"] for r in response["results"]} <= news_urls


def test_answer_and_raw_content(client: TavilyClient) -> None:
    response = client.search(
        "How much do micro influencers charge per Instagram Reel in INR?",
        include_answer=True,
        include_raw_content="markdown",
    )

    assert response["answer"].startswith("[emulated answer] ")
    top = response["results"][0]
    assert top["raw_content"].startswith(f"# {top['title']}")
    assert "₹" in response["answer"]


def test_unrelated_query_finds_nothing(client: TavilyClient) -> None:
    assert client.search("quantum chromodynamics lattice gauge")["results"] == []


def test_extract_known_and_unknown_urls(client: TavilyClient) -> None:
    known = "https://fintech-brief.example.in/upi-autopay-subscriptions-d2c"
    unknown = "https://elsewhere.example.com/page"
    response = client.extract([known, unknown], format="text")

    assert [r["url"] for r in response["results"]] == [known]
    assert "UPI Autopay" in response["results"][0]["raw_content"]
    assert response["failed_results"][0]["url"] == unknown
    assert response["failed_results"][0]["error"]


def test_bad_key_and_missing_query(server: RunningServer, http: httpx.Client) -> None:
    with (
        TavilyClient(api_key="tvly-wrong", api_base_url=server.url) as wrong,
        pytest.raises(InvalidAPIKeyError),
    ):
        wrong.search("diwali")

    missing = http.post("/search", json={}, headers={"Authorization": f"Bearer {CONFIG.tavily_api_key}"})
    assert missing.status_code == 400
    assert missing.json()["detail"]["error"]


def test_request_log_counts_calls(client: TavilyClient, http: httpx.Client) -> None:
    client.search("UPI payments growth")
    client.extract(["https://example-news.in/business/chai-kettle-launches-cold-brew-tea"])

    log = http.get("/_emulator/requests").json()
    assert [entry["endpoint"] for entry in log] == ["search", "extract"]
    assert log[0]["body"]["query"] == "UPI payments growth"
    assert log[0]["result_urls"]
    assert all(entry["status"] == 200 for entry in log)


def test_scripted_errors_map_to_sdk_exceptions(client: TavilyClient, http: httpx.Client) -> None:
    rules = [
        {"match": {"endpoint": "search", "contains": "quota"}, "status": 429, "times": 1},
        {
            "match": {"endpoint": "search"},
            "response": {"json": {"query": "canned", "results": []}},
            "times": 1,
        },
    ]
    http.post("/_emulator/script", json={"rules": rules}).raise_for_status()

    with pytest.raises(UsageLimitExceededError):
        client.search("quota please")
    assert client.search("anything")["query"] == "canned"
    assert client.search("Holi campaigns")["results"]
    with pytest.raises(BadRequestError):
        client.search("")
