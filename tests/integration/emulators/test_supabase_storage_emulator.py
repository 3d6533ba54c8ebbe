"""The Supabase Storage emulator, driven through the official `supabase` client and Muse's object store."""

from __future__ import annotations

from collections.abc import Iterator

import flask
import httpx
import pytest
from storage3.exceptions import StorageApiError
from supabase import Client, ClientOptions, create_client
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.supabase_storage import LOCAL_SERVICE_ROLE_KEY, create_app
from infra.local.serve import RunningServer, serve_in_thread
from shared.errors import ConfigurationError, NotFound
from shared.integrations.storage import supabase_object_store
from tests.integration.knowledge_world import kb_settings


@pytest.fixture(scope="module")
def server(fresh_database_dsn: str) -> Iterator[RunningServer]:
    """Mounted as in the local stack: `/supabase/storage` next to the auth emulator's `/supabase`."""
    app = DispatcherMiddleware(flask.Flask("root"), {
        "/supabase/storage": create_app(EmulatorConfig(database_url=fresh_database_dsn))})
    running = serve_in_thread(app)
    try:
        yield running
    finally:
        running.stop()


def _client(server: RunningServer, key: str) -> tuple[Client, httpx.Client]:
    http = httpx.Client(timeout=10)
    return create_client(f"{server.url}/supabase", key, ClientOptions(httpx_client=http)), http


@pytest.fixture
def supabase(server: RunningServer) -> Iterator[Client]:
    client, http = _client(server, LOCAL_SERVICE_ROLE_KEY)
    yield client
    http.close()


def test_bucket_lifecycle(supabase: Client) -> None:
    storage = supabase.storage
    with pytest.raises(StorageApiError) as missing:
        storage.get_bucket("brand-assets")
    assert str(missing.value.status) == "404" and missing.value.message == "Bucket not found"
    storage.create_bucket("brand-assets", options={"public": False, "file_size_limit": 1024})
    with pytest.raises(StorageApiError) as duplicate:
        storage.create_bucket("brand-assets")
    assert str(duplicate.value.status) == "409"
    bucket = storage.get_bucket("brand-assets")
    assert bucket.id == "brand-assets" and bucket.public is False and bucket.file_size_limit == 1024
    assert "brand-assets" in [b.id for b in storage.list_buckets()]
    storage.from_("brand-assets").upload("a.txt", b"hello", {"content-type": "text/plain"})
    with pytest.raises(StorageApiError, match="not empty"):
        storage.delete_bucket("brand-assets")
    storage.empty_bucket("brand-assets")
    storage.delete_bucket("brand-assets")


def test_objects_round_trip(supabase: Client) -> None:
    supabase.storage.create_bucket("docs")
    bucket = supabase.storage.from_("docs")
    response = bucket.upload("ws1/doc1/brand book.pdf", b"%PDF-1.4 data",
                             {"content-type": "application/pdf", "metadata": {"owner": "ws1"}})
    assert response.path == "ws1/doc1/brand book.pdf" and response.full_path == "docs/ws1/doc1/brand book.pdf"
    assert bucket.download("ws1/doc1/brand book.pdf") == b"%PDF-1.4 data"
    info = bucket.info("ws1/doc1/brand book.pdf")
    assert info["size"] == 13 and info["content_type"] == "application/pdf" and info["metadata"] == {"owner": "ws1"}
    assert bucket.exists("ws1/doc1/brand book.pdf") and not bucket.exists("ws1/nothing.pdf")

    with pytest.raises(StorageApiError) as duplicate:
        bucket.upload("ws1/doc1/brand book.pdf", b"again", {"content-type": "application/pdf"})
    assert str(duplicate.value.status) == "409"
    bucket.upload("ws1/doc1/brand book.pdf", b"%PDF-1.7 v2", {"content-type": "application/pdf", "upsert": "true"})
    bucket.update("ws1/doc1/brand book.pdf", b"%PDF-1.7 v3", {"content-type": "application/pdf"})
    assert bucket.download("ws1/doc1/brand book.pdf") == b"%PDF-1.7 v3"

    bucket.upload("ws1/doc2/notes.md", b"# Notes", {"content-type": "text/markdown"})
    assert [e["name"] for e in bucket.list("ws1")] == ["doc1", "doc2"]
    assert [e["name"] for e in bucket.list("ws1/doc2")] == ["notes.md"]
    removed = bucket.remove(["ws1/doc2/notes.md", "ws1/missing"])
    assert [r["name"] for r in removed] == ["ws1/doc2/notes.md"]
    with pytest.raises(StorageApiError) as gone:
        bucket.download("ws1/doc2/notes.md")
    assert str(gone.value.status) == "404" and gone.value.code == "not_found"


def test_limits_of_a_bucket(supabase: Client) -> None:
    supabase.storage.create_bucket("small", options={"file_size_limit": 4, "allowed_mime_types": ["text/plain"]})
    bucket = supabase.storage.from_("small")
    with pytest.raises(StorageApiError) as too_big:
        bucket.upload("big.txt", b"12345", {"content-type": "text/plain"})
    assert str(too_big.value.status) == "413"
    with pytest.raises(StorageApiError) as wrong_type:
        bucket.upload("a.pdf", b"%PDF", {"content-type": "application/pdf"})
    assert str(wrong_type.value.status) == "415"


def test_only_the_service_role_key_is_accepted(server: RunningServer) -> None:
    client, http = _client(server, "sb_publishable_not-the-service-key")
    with pytest.raises(StorageApiError) as refused:
        client.storage.list_buckets()
    assert str(refused.value.status) == "403"
    http.close()


def test_muse_object_store_creates_its_bucket(server: RunningServer, fresh_database_dsn: str) -> None:
    settings = kb_settings(fresh_database_dsn, SUPABASE_URL=f"{server.url}/supabase",
                           MUSE_KNOWLEDGE_BUCKET="knowledge-test")
    store = supabase_object_store(settings)
    store.put("w/d/original.md", "# नमस्ते".encode(), content_type="text/markdown; charset=utf-8")
    store.put("w/d/original.md", b"# v2", content_type="text/markdown; charset=utf-8")
    assert store.get("w/d/original.md") == b"# v2"
    with pytest.raises(NotFound, match="no object 'w/d/missing'"):
        store.get("w/d/missing")
    store.remove(["w/d/original.md"])
    with pytest.raises(NotFound):
        store.get("w/d/original.md")
    store.client.session.close()

    wrong = supabase_object_store(kb_settings(fresh_database_dsn, SUPABASE_URL=f"{server.url}/supabase",
                                                SUPABASE_SERVICE_ROLE_KEY="wrong"))
    with pytest.raises(ConfigurationError, match="SUPABASE_SERVICE_ROLE_KEY"):
        wrong.put("x/y.txt", b"x", content_type="text/plain")
    wrong.client.session.close()
    with pytest.raises(ConfigurationError, match="SUPABASE_SERVICE_ROLE_KEY is not set"):
        supabase_object_store(kb_settings(fresh_database_dsn, SUPABASE_SERVICE_ROLE_KEY=""))
