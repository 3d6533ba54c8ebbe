"""The Gemini emulator, driven through the official `google-genai` SDK over real HTTP."""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterator
from typing import Literal

import httpx
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel, Field

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.gemini import create_app
from infra.local.serve import RunningServer, serve_in_thread

MODEL = "gemini-2.5-flash"
CONFIG = EmulatorConfig(database_url="")


class Channel(enum.Enum):
    INSTAGRAM = "instagram"
    LINKEDIN = "linkedin"


class Post(BaseModel):
    caption: str
    hashtags: list[str]
    tone: Literal["playful", "formal"]
    priority: int = Field(ge=1, le=5)


class CampaignPlan(BaseModel):
    title: str
    channel: Channel
    budget_inr: float = Field(ge=1000, le=50000)
    posts: list[Post] = Field(min_length=3)
    tagline: str | None = None
    backup_post: Post | None = None
    approved: bool


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
def client(server: RunningServer) -> Iterator[genai.Client]:
    sdk = _client(server.url, CONFIG.gemini_api_key)
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as session:
        yield session


def _client(url: str, key: str, api_version: str = "v1beta") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url, api_version=api_version))


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_text_generation_is_marked_deterministic_and_metered(client: genai.Client) -> None:
    prompt = "Suggest a Diwali campaign idea for a D2C saree brand"
    first = client.models.generate_content(model=MODEL, contents=prompt)
    second = client.models.generate_content(model=MODEL, contents=prompt)

    assert first.text is not None and first.text.startswith(f"[emulated {MODEL}] ")
    assert "Diwali" in first.text
    assert first.text == second.text
    usage = first.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == math.ceil(len(prompt.split()) * 1.3)
    assert usage.candidates_token_count and usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert usage.thoughts_token_count == 0
    assert first.model_version == MODEL
    assert first.response_id


def test_both_api_versions_are_served(server: RunningServer) -> None:
    sdk = _client(server.url, CONFIG.gemini_api_key, api_version="v1")
    try:
        response = sdk.models.generate_content(model=MODEL, contents="hello there")
    finally:
        sdk.close()
    assert response.text and response.text.startswith("[emulated")


def test_structured_output_parses_into_nested_pydantic_models(client: genai.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=CampaignPlan)
    response = client.models.generate_content(
        model=MODEL, contents="Plan an Onam launch for a Kerala coffee brand", config=config
    )
    again = client.models.generate_content(
        model=MODEL, contents="Plan an Onam launch for a Kerala coffee brand", config=config
    )

    plan = response.parsed
    assert isinstance(plan, CampaignPlan)
    assert len(plan.posts) >= 3
    assert all(1 <= post.priority <= 5 for post in plan.posts)
    assert 1000 <= plan.budget_inr <= 50000
    assert plan.title.startswith("[emulated]")
    assert "Onam" in plan.title
    assert response.text == again.text


def test_structured_output_accepts_standard_json_schema(client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=CampaignPlan.model_json_schema()
    )
    response = client.models.generate_content(model=MODEL, contents="Holi sale ideas", config=config)

    assert isinstance(response.parsed, dict)
    CampaignPlan.model_validate(response.parsed)


def test_structured_output_for_a_top_level_list(client: genai.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=list[Post])
    response = client.models.generate_content(model=MODEL, contents="Three LinkedIn posts", config=config)

    assert isinstance(response.parsed, list)
    assert response.parsed and all(isinstance(post, Post) for post in response.parsed)


def test_enum_mime_type_returns_an_enum_member(client: genai.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="text/x.enum", response_schema=Channel)
    response = client.models.generate_content(model=MODEL, contents="Where should we post?", config=config)

    assert response.parsed is Channel.INSTAGRAM


def test_recursive_models_terminate(client: genai.Client) -> None:
    class Node(BaseModel):
        label: str
        children: list[Node] = []

    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=Node.model_json_schema()
    )
    response = client.models.generate_content(model=MODEL, contents="content pillars", config=config)

    root = Node.model_validate(response.parsed)
    assert all(not child.children for child in root.children)


def test_json_schema_constraints_are_respected(client: genai.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{2}$"},
            "short": {"type": "string", "maxLength": 6},
            "kind": {"const": "fixed"},
            "count": {"type": "integer", "exclusiveMinimum": 10, "maximum": 11},
            "when": {"type": "string", "format": "date-time"},
            "labels": {
                "type": "array",
                "items": {"enum": ["x", "y", "z"]},
                "minItems": 3,
                "uniqueItems": True,
            },
        },
        "required": ["code", "short", "kind", "count", "when", "labels"],
    }
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema)
    value = client.models.generate_content(model=MODEL, contents="constraints", config=config).parsed

    assert isinstance(value, dict)
    assert value["kind"] == "fixed" and value["count"] == 11
    assert len(value["short"]) <= 6
    assert value["labels"] == ["x", "y", "z"]
    assert len(value["code"]) == 6 and value["code"][3] == "-"


def test_streaming_yields_chunks_with_usage_on_the_last(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="Instagram reel hooks for Holi"))
    whole = client.models.generate_content(model=MODEL, contents="Instagram reel hooks for Holi")

    assert len(chunks) > 1
    assert "".join(chunk.text or "" for chunk in chunks) == whole.text
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.total_token_count == whole.usage_metadata.total_token_count


def test_wrong_api_key_is_rejected_in_gemini_error_shape(server: RunningServer, http: httpx.Client) -> None:
    sdk = _client(server.url, "not-the-key")
    try:
        with pytest.raises(errors.ClientError) as caught:
            sdk.models.generate_content(model=MODEL, contents="hi")
    finally:
        sdk.close()
    assert caught.value.code == 403
    assert caught.value.status == "PERMISSION_DENIED"

    anonymous = http.post(f"/v1beta/models/{MODEL}:generateContent", json={"contents": []})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["status"] == "UNAUTHENTICATED"


def test_scripted_rules_match_by_substring_and_run_out(client: genai.Client, http: httpx.Client) -> None:
    installed = http.post(
        "/_emulator/script",
        json={
            "rules": [
                {"match": {"contains": "festival"}, "response": {"text": "scripted once"}, "times": 1},
                {"match": {"model": "gemini-2.5-pro"}, "response": {"json": {"ok": True}}},
            ]
        },
    ).json()["rules"]

    first = client.models.generate_content(model=MODEL, contents="a festival plan")
    second = client.models.generate_content(model=MODEL, contents="a festival plan")
    pro = client.models.generate_content(model="gemini-2.5-pro", contents="anything")

    assert first.text == "scripted once"
    assert second.text and second.text.startswith("[emulated")
    assert pro.text == '{"ok": true}'
    log = http.get("/_emulator/requests").json()
    assert [entry["rule"] for entry in log] == [installed[0]["index"], None, installed[1]["index"]]
    assert [entry["model"] for entry in log] == [MODEL, MODEL, "gemini-2.5-pro"]
    assert log[0]["text"] == "a festival plan"
    assert log[0]["path"] == f"/v1beta/models/{MODEL}:generateContent"


def test_scripted_errors_and_delays(client: genai.Client, http: httpx.Client) -> None:
    http.post(
        "/_emulator/script",
        json={
            "rules": [
                {"match": {}, "status": 503, "times": 1},
                {"match": {}, "delay_seconds": 0.3, "times": 1},
            ]
        },
    ).raise_for_status()

    with pytest.raises(errors.ServerError) as caught:
        client.models.generate_content(model=MODEL, contents="hi")
    started = time.monotonic()
    delayed = client.models.generate_content(model=MODEL, contents="hi")

    assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"
    assert time.monotonic() - started >= 0.3
    assert delayed.text and delayed.text.startswith("[emulated")


def test_script_and_log_can_be_cleared(client: genai.Client, http: httpx.Client) -> None:
    http.post("/_emulator/script", json={"rules": [{"match": {}, "response": {"text": "x"}}]}).raise_for_status()
    assert client.models.generate_content(model=MODEL, contents="hi").text == "x"

    http.delete("/_emulator/script").raise_for_status()
    http.delete("/_emulator/requests").raise_for_status()

    assert client.models.generate_content(model=MODEL, contents="hi").text != "x"
    assert len(http.get("/_emulator/requests").json()) == 1


def test_retries_are_visible_in_the_log(server: RunningServer, http: httpx.Client) -> None:
    http.post("/_emulator/script", json={"rules": [{"match": {}, "status": 429, "times": 2}]}).raise_for_status()
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0)
    sdk = genai.Client(
        api_key=CONFIG.gemini_api_key,
        http_options=types.HttpOptions(base_url=server.url, api_version="v1beta", retry_options=retry),
    )
    try:
        response = sdk.models.generate_content(model=MODEL, contents="retry me")
    finally:
        sdk.close()
    assert response.text and response.text.startswith("[emulated")
    assert [entry["status"] for entry in http.get("/_emulator/requests").json()] == [429, 429, 200]


def test_embeddings_are_normalised_and_reflect_shared_words(client: genai.Client) -> None:
    texts = [
        "Diwali sale on silk sarees",
        "silk sarees discount for Diwali",
        "quarterly cloud infrastructure invoice",
    ]
    result = client.models.embed_content(
        model="gemini-embedding-001",
        contents=texts,
        config=types.EmbedContentConfig(output_dimensionality=256),
    )
    vectors = [embedding.values or [] for embedding in result.embeddings or []]
    default = client.models.embed_content(model="gemini-embedding-001", contents="hello")

    assert len(vectors) == 3 and all(len(v) == 256 for v in vectors)
    assert all(abs(_cosine(v, v) - 1.0) < 1e-9 for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.3
    assert len((default.embeddings or [])[0].values or []) == 768


def test_single_embed_content_route(http: httpx.Client) -> None:
    body = {"content": {"parts": [{"text": "UPI payments"}]}, "outputDimensionality": 32}
    response = http.post(
        "/v1beta/models/gemini-embedding-001:embedContent",
        json=body,
        headers={"x-goog-api-key": CONFIG.gemini_api_key},
    )
    response.raise_for_status()
    assert len(response.json()["embedding"]["values"]) == 32


def test_count_tokens(client: genai.Client) -> None:
    counted = client.models.count_tokens(model=MODEL, contents="one two three four five six seven eight nine ten")
    assert counted.total_tokens == 13


def test_context_cache_tokens_are_reported(client: genai.Client) -> None:
    brand_book = " ".join(["brand"] * 100)
    cache = client.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[types.Part(text=brand_book)])], ttl="600s"
        ),
    )
    assert cache.name and cache.usage_metadata and cache.usage_metadata.total_token_count == 130

    response = client.models.generate_content(
        model=MODEL,
        contents="use the brand book",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    usage = response.usage_metadata
    assert usage is not None
    assert usage.cached_content_token_count == 130
    assert usage.prompt_token_count == 130 + math.ceil(4 * 1.3)
    client.caches.delete(name=cache.name)
    with pytest.raises(errors.ClientError):
        client.caches.get(name=cache.name)


def test_works_mounted_under_a_prefix() -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.wrappers import Response

    mounted = DispatcherMiddleware(Response("not found", status=404), {"/gemini": create_app(CONFIG)})
    running = serve_in_thread(mounted)
    sdk = _client(f"{running.url}/gemini", CONFIG.gemini_api_key)
    try:
        response = sdk.models.generate_content(model=MODEL, contents="prefixed")
        with httpx.Client(base_url=f"{running.url}/gemini") as session:
            log = session.get("/_emulator/requests").json()
    finally:
        sdk.close()
        running.stop()
    assert response.text and response.text.startswith("[emulated")
    assert log[0]["path"] == f"/v1beta/models/{MODEL}:generateContent"


def test_embedding_errors_need_an_explicit_action(client: genai.Client, http: httpx.Client) -> None:
    rules = [
        {"match": {}, "response": {"text": "generation only"}},
        {"match": {"action": "batchEmbedContents"}, "status": 500, "times": 1},
    ]
    installed = http.post("/_emulator/script", json={"rules": rules}).json()["rules"]

    with pytest.raises(errors.ServerError):
        client.models.embed_content(model="gemini-embedding-001", contents="first")
    assert client.models.embed_content(model="gemini-embedding-001", contents="second").embeddings
    assert [entry["rule"] for entry in http.get("/_emulator/requests").json()] == [installed[1]["index"], None]
