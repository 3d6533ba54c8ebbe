"""The LangSmith collector, fed by the official `langsmith` SDK over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import langsmith as ls
import pytest
from langsmith import Client, traceable
from langsmith.run_trees import RunTree

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.langsmith import create_app
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
def _clean_emulator(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with an empty collector and no compression of uploads."""
    monkeypatch.setenv("LANGSMITH_DISABLE_RUN_COMPRESSION", "true")
    yield
    with httpx.Client(base_url=server.url) as session:
        session.delete("/_emulator/runs").raise_for_status()


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    sdk = Client(api_url=server.url, api_key=CONFIG.langsmith_api_key)
    try:
        yield sdk
    finally:
        sdk.close(timeout=10)


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as session:
        yield session


def _runs(http: httpx.Client, **filters: str) -> list[dict]:
    return http.get("/_emulator/runs", params=filters).json()


@traceable(run_type="chain", name="write_caption")
def write_caption(festival: str) -> dict:
    return {"caption": f"Happy {festival}!", "hashtags": [polish(festival)]}


@traceable(run_type="llm", name="polish", metadata={"ls_provider": "google_genai"})
def polish(word: str) -> str:
    return f"#{word.lower()}"


def test_info_is_complete_and_turns_compression_on(http: httpx.Client, server: RunningServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    info = http.get("/info").json()
    assert set(info["batch_ingest_config"]) >= {"size_limit", "size_limit_bytes", "use_multipart_endpoint"}
    monkeypatch.delenv("LANGSMITH_DISABLE_RUN_COMPRESSION")
    sdk = Client(api_url=server.url, api_key=CONFIG.langsmith_api_key)
    try:
        with ls.tracing_context(client=sdk, enabled=True, project_name="zipped"):
            write_caption("Pongal")
        sdk.flush(timeout=10)
        assert sdk.compressed_traces is not None
    finally:
        sdk.close(timeout=10)
    assert {run["name"] for run in _runs(http)} == {"write_caption", "polish"}


def test_traceable_runs_arrive_with_inputs_outputs_and_parents(client: Client, http: httpx.Client) -> None:
    with ls.tracing_context(client=client, enabled=True, project_name="muse-tests"):
        assert write_caption("Diwali")["caption"] == "Happy Diwali!"
    client.flush(timeout=10)

    runs = {run["name"]: run for run in _runs(http)}
    parent, child = runs["write_caption"], runs["polish"]
    assert parent["run_type"] == "chain"
    assert parent["inputs"] == {"festival": "Diwali"}
    assert parent["outputs"] == {"caption": "Happy Diwali!", "hashtags": ["#diwali"]}
    assert parent["parent_run_id"] is None and parent["trace_id"] == parent["id"]
    assert parent["end_time"] and parent["session_name"] == "muse-tests"
    assert child["parent_run_id"] == parent["id"] and child["trace_id"] == parent["id"]
    assert child["outputs"] == {"output": "#diwali"}
    assert child["extra"]["metadata"]["ls_provider"] == "google_genai"
    assert _runs(http, name="polish") == [child]


def test_run_tree_post_then_patch_is_merged(client: Client, http: httpx.Client) -> None:
    with ls.tracing_context(client=client, enabled=True):
        root = RunTree(name="campaign_graph", run_type="chain", inputs={"brief": "Holi"}, ls_client=client)
        root.post()
        step = root.create_child(name="research", run_type="tool", inputs={"query": "holi trends"})
        step.post()
        step.end(outputs={"hits": 3})
        step.patch()
        root.end(outputs={"plan": "ok"})
        root.patch()
    client.flush(timeout=10)

    runs = {run["name"]: run for run in _runs(http)}
    assert runs["campaign_graph"]["inputs"] == {"brief": "Holi"}
    assert runs["campaign_graph"]["outputs"] == {"plan": "ok"}
    assert runs["campaign_graph"]["end_time"]
    assert runs["research"]["parent_run_id"] == str(root.id)
    assert runs["research"]["outputs"] == {"hits": 3}


def test_errors_are_recorded(client: Client, http: httpx.Client) -> None:
    @traceable(name="flaky")
    def flaky() -> None:
        raise ValueError("upstream down")

    with ls.tracing_context(client=client, enabled=True), pytest.raises(ValueError):
        flaky()
    client.flush(timeout=10)

    (run,) = _runs(http, name="flaky")
    assert "upstream down" in run["error"]


def test_unbatched_create_and_update(server: RunningServer, http: httpx.Client) -> None:
    sdk = Client(api_url=server.url, api_key=CONFIG.langsmith_api_key, auto_batch_tracing=False)
    run_id = uuid.uuid4()
    try:
        sdk.create_run(name="single", run_type="tool", inputs={"x": 1}, id=run_id, start_time=datetime.now(UTC))
        sdk.update_run(run_id, outputs={"y": 2}, end_time=datetime.now(UTC))
    finally:
        sdk.close(timeout=10)

    run = http.get(f"/_emulator/runs/{run_id}").json()
    assert run["inputs"] == {"x": 1} and run["outputs"] == {"y": 2} and run["end_time"]


def test_batch_endpoint(http: httpx.Client) -> None:
    run_id = str(uuid.uuid4())
    headers = {"x-api-key": CONFIG.langsmith_api_key}
    post = {"id": run_id, "name": "batched", "run_type": "chain", "inputs": {"a": 1}, "trace_id": run_id}
    http.post("/runs/batch", json={"post": [post]}, headers=headers).raise_for_status()
    patch = {"id": run_id, "outputs": {"b": 2}, "end_time": "2026-11-22T00:00:00Z", "trace_id": run_id}
    http.post("/runs/batch", json={"patch": [patch]}, headers=headers).raise_for_status()

    (run,) = _runs(http)
    assert run["inputs"] == {"a": 1} and run["outputs"] == {"b": 2} and run["name"] == "batched"


def test_wrong_api_key_is_rejected(http: httpx.Client) -> None:
    response = http.post("/runs/batch", json={"post": []}, headers={"x-api-key": "wrong"})
    assert response.status_code == 401
    assert _runs(http) == []


def test_zstd_multipart_with_attachment(http: httpx.Client) -> None:
    import json

    import zstandard

    run_id = str(uuid.uuid4())
    parts = [
        (f"post.{run_id}", "application/json", json.dumps({"id": run_id, "name": "zipped"}).encode()),
        (f"post.{run_id}.inputs", "application/json", b'{"q": "\xe0\xa4\xa6\xe0\xa5\x80"}'),
        (f"attachment.{run_id}.image", "image/png", bytes(range(256))),
    ]
    boundary = "emulatorboundary"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
            + data
            + b"\r\n"
            for name, content_type, data in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    response = http.post(
        "/runs/multipart",
        content=zstandard.ZstdCompressor().compress(body),
        headers={
            "x-api-key": CONFIG.langsmith_api_key,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Encoding": "zstd",
        },
    )

    assert response.status_code == 202
    (run,) = _runs(http)
    assert run["name"] == "zipped" and run["inputs"] == {"q": "दी"}
    assert run["attachments"] == {"image": {"content_type": "image/png", "size": 256}}


@pytest.mark.filterwarnings("ignore:(list_runs|read_run)\\(\\) is deprecated:DeprecationWarning")
def test_the_sdk_queries_runs_by_project_trace_type_metadata_and_id(client: Client) -> None:
    with ls.tracing_context(client=client, enabled=True, project_name="muse-queries",
                            metadata={"campaign_id": "c-1"}):
        write_caption("Holi")
    with ls.tracing_context(client=client, enabled=True, project_name="muse-other"):
        write_caption("Onam")
    client.flush(timeout=10)

    runs = list(client.list_runs(project_name="muse-queries"))
    assert sorted(run.name for run in runs) == ["polish", "write_caption"]
    root = next(run for run in runs if run.name == "write_caption")
    assert [run.name for run in client.list_runs(project_name="muse-queries", trace_id=root.id)] \
        and {run.trace_id for run in client.list_runs(trace_id=root.id)} == {root.id}
    (llm,) = client.list_runs(project_name="muse-queries", run_type="llm")
    assert llm.parent_run_id == root.id and llm.name == "polish"
    assert [run.id for run in client.list_runs(project_name="muse-queries", is_root=True)] == [root.id]
    by_metadata = client.list_runs(filter='and(eq(metadata_key, "campaign_id"), eq(metadata_value, "c-1"))')
    assert {run.id for run in by_metadata} == {run.id for run in runs}
    assert list(client.list_runs(filter='and(eq(metadata_key, "campaign_id"), eq(metadata_value, "c-2"))')) == []
    assert [r.name for r in client.list_runs(filter='and(eq(run_type, "chain"), has(tags, "none"))')] == []
    read = client.read_run(root.id)
    assert read.outputs == {"caption": "Happy Holi!", "hashtags": ["#holi"]} and read.status == "success"
    assert client.read_project(project_name="muse-other").name == "muse-other"


def test_an_unknown_filter_is_a_400_naming_it(http: httpx.Client) -> None:
    response = http.post("/runs/query", json={"filter": 'frobnicate(name, "x")'},
                         headers={"x-api-key": CONFIG.langsmith_api_key})
    assert response.status_code == 400 and "frobnicate" in response.json()["detail"]
