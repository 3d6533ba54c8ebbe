"""Function calling on the Gemini emulator, through the official google-genai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from infra.local.serve import RunningServer
from tests.integration.gemini_fixtures import GEMINI_CONFIG

MODEL = "gemini-2.5-flash"
SEARCH = types.FunctionDeclaration(
    name="web_search", description="Search the web.",
    parameters_json_schema={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)


@pytest.fixture
def client(gemini_server: RunningServer) -> Iterator[genai.Client]:
    sdk = genai.Client(api_key=GEMINI_CONFIG.gemini_api_key,
                       http_options=types.HttpOptions(base_url=gemini_server.url, api_version="v1beta"))
    try:
        yield sdk
    finally:
        sdk.close()


def _config() -> types.GenerateContentConfig:
    return types.GenerateContentConfig(tools=[types.Tool(function_declarations=[SEARCH])],
                                       automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))


def test_a_scripted_function_call_comes_back_as_function_call_parts(client: genai.Client,
                                                                    gemini_http: httpx.Client) -> None:
    gemini_http.post("/_emulator/script", json={"rules": [
        {"match": {"model": MODEL}, "times": 1,
         "response": {"function_calls": [{"name": "web_search", "args": {"query": "onam offers"}, "id": "c1"}]}},
        {"match": {"model": MODEL}, "times": 1, "response": {"text": "Onam offers peak a week before."}},
    ]}).raise_for_status()

    first = client.models.generate_content(model=MODEL, contents="Research Onam", config=_config())
    assert first.function_calls is not None
    [call] = first.function_calls
    assert (call.name, call.args, call.id) == ("web_search", {"query": "onam offers"}, "c1")
    assert first.text is None
    assert first.usage_metadata is not None and first.usage_metadata.candidates_token_count

    answer = types.Part(function_response=types.FunctionResponse(id="c1", name="web_search",
                                                                  response={"output": {"results": []}}))
    second = client.models.generate_content(
        model=MODEL, config=_config(),
        contents=[types.Content(role="user", parts=[types.Part(text="Research Onam")]),
                  first.candidates[0].content, types.Content(role="user", parts=[answer])])
    assert second.text == "Onam offers peak a week before." and not second.function_calls
    body = gemini_http.get("/_emulator/requests").json()[-1]["body"]
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "web_search"


def test_function_calls_stream_as_one_chunk(client: genai.Client, gemini_http: httpx.Client) -> None:
    gemini_http.post("/_emulator/script", json={"rules": [
        {"response": {"function_calls": [{"name": "web_search", "args": {"query": "x"}}]}},
    ]}).raise_for_status()

    chunks = list(client.models.generate_content_stream(model=MODEL, contents="go", config=_config()))

    assert len(chunks) == 1 and chunks[0].function_calls[0].name == "web_search"
    assert chunks[0].function_calls[0].id is None, "the Developer API sends no call id unless scripted"


def test_a_script_calling_an_undeclared_function_is_a_400(client: genai.Client, gemini_http: httpx.Client) -> None:
    gemini_http.post("/_emulator/script", json={"rules": [
        {"response": {"function_calls": [{"name": "send_email", "args": {}}]}},
    ]}).raise_for_status()

    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="go", config=_config())
    assert caught.value.code == 400 and "'send_email' is not declared" in (caught.value.message or "")

    with pytest.raises(errors.ClientError, match="declared: none"):
        client.models.generate_content(model=MODEL, contents="go")


def test_text_before_calls_and_thoughts_stream_in_order(client: genai.Client, gemini_http: httpx.Client) -> None:
    gemini_http.post("/_emulator/script", json={"rules": [
        {"times": 1, "response": {"thoughts": "The user wants news.", "text": "Let me look that up for you.",
                                  "chunks": 2, "function_calls": [{"name": "web_search", "args": {"query": "x"}}]}},
        {"times": 1, "response": {"text": "one two three four five six", "chunks": 6}},
    ]}).raise_for_status()

    chunks = list(client.models.generate_content_stream(model=MODEL, contents="go", config=_config()))

    parts = [part for chunk in chunks for part in chunk.candidates[0].content.parts]
    assert [(bool(p.thought), p.text, p.function_call.name if p.function_call else None) for p in parts] == [
        (True, "The user wants news.", None), (False, "Let me look that ", None), (False, "up for you.", None),
        (False, None, "web_search")]
    assert [c.usage_metadata is not None for c in chunks] == [False, False, False, True]
    assert chunks[-1].candidates[0].finish_reason == "STOP"

    texts = [c.text for c in client.models.generate_content_stream(model=MODEL, contents="go", config=_config())]
    assert "".join(texts) == "one two three four five six" and len(texts) == 6
