"""Upload cost is bounded and URLs must be public: chunk cap, daily ingestion quota and SSRF, on real Postgres.

The knowledge service runs over real Postgres, the Storage and Tavily emulators on the wire and the
e5 model; DNS answers come from a fake resolver and redirects from a local HTTP server.
"""

from __future__ import annotations

import dataclasses
import http.server
import io
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import flask
import httpx
import jwt
import pytest
from psycopg_pool import ConnectionPool

from infra.local.serve import RunningServer
from shared.api import knowledge as knowledge_api
from shared.api.app import dispatch
from shared.auth import Principal
from shared.db.pool import connect
from shared.errors import InvalidRequest, PayloadTooLarge, QuotaExceeded
from shared.integrations.tavily_extract import tavily_page_extractor
from shared.knowledge.models import TextResource
from shared.settings import get_settings
from tests.integration.knowledge_world import BASE_ENV, World, build_world, knowledge_emulators, open_pool
from tests.pdfgen import make_pdf
from tests.unit.test_public_urls import FakeDns

CORPUS_URL = "https://example-news.in/business/saanjh-sarees-diwali-2026-campaign"
PARAGRAPH = "Masala chai blends cardamom, ginger, clove and black tea from Assam for a warming cup. " * 6


def paragraphs(n: int) -> str:
    """Text that chunks into exactly `n` chunks (one paragraph of ~530 characters each)."""
    return "\n\n".join(f"Part {i}. {PARAGRAPH}" for i in range(n))


@pytest.fixture(scope="module")
def servers(migrated_dsn: str) -> Iterator[dict[str, RunningServer]]:
    with knowledge_emulators(migrated_dsn) as running:
        yield running


@pytest.fixture(scope="module")
def module_pool(migrated_dsn: str) -> Iterator[ConnectionPool]:
    with open_pool(migrated_dsn, max_size=8) as pool:
        yield pool


@pytest.fixture
def make_world(migrated_dsn: str, module_pool: ConnectionPool,
               servers: dict[str, RunningServer]) -> Iterator[Any]:
    built: list[World] = []

    def make(dns: FakeDns | None = None, **env: str) -> World:
        world = build_world(migrated_dsn, module_pool, servers, **env)
        if dns is not None:
            world.service = dataclasses.replace(
                world.service, pages=tavily_page_extractor(world.settings, resolver=dns))
        built.append(world)
        return world

    yield make
    for world in built:
        world.service.store.client.session.close()  # type: ignore[attr-defined]


def rows(dsn: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def workspace_rows(world: World, principal: Principal) -> dict[str, int]:
    """How many documents, chunks, vectors, outbox rounds and quota rows the principal's workspace has."""
    ws = principal.requested_workspace
    [counts] = rows(world.dsn, """
        SELECT (SELECT count(*) FROM public.knowledge_documents WHERE workspace_id = %(ws)s) AS documents,
               (SELECT count(*) FROM public.knowledge_chunks WHERE workspace_id = %(ws)s) AS chunks,
               (SELECT count(*) FROM public.knowledge_embeddings WHERE workspace_id = %(ws)s) AS vectors,
               (SELECT count(*) FROM public.step_outbox o JOIN public.knowledge_documents d
                  ON o.message ->> 'document_id' = d.id::text WHERE d.workspace_id = %(ws)s) AS rounds,
               (SELECT coalesce(sum(chunks), 0) FROM public.knowledge_ingest_usage WHERE workspace_id = %(ws)s)
                  AS counted""".replace("%(ws)s", "%s"), *([ws] * 5))
    return dict(counts)


# ------------------------------------------------------------------------------------------------ chunk cap


def test_text_over_the_chunk_cap_is_refused_at_submit_with_nothing_written(make_world: Any) -> None:
    world = make_world(MUSE_KNOWLEDGE_MAX_CHUNKS="5")
    owner = world.principal()
    with pytest.raises(PayloadTooLarge) as refused:
        world.service.submit_text(owner, TextResource(kind="markdown", content=paragraphs(9)), workspace=None)
    assert refused.value.http_status == 413
    assert "at most 5 (MUSE_KNOWLEDGE_MAX_CHUNKS)" in refused.value.message
    assert refused.value.details["chunks"] > 5
    assert workspace_rows(world, owner) == {"documents": 0, "chunks": 0, "vectors": 0, "rounds": 0, "counted": 0}
    assert world.queue.messages == []
    accepted = world.service.submit_text(owner, TextResource(content=paragraphs(4)), workspace=None)
    world.pump()
    assert world.service.get(owner, accepted.id).status == "ready"


def test_markup_without_text_is_refused_at_submit(make_world: Any) -> None:
    world = make_world()
    owner = world.principal()
    with pytest.raises(InvalidRequest, match="The html has no text to index"):
        world.service.submit_text(owner, TextResource(kind="html", content="<script>track()</script><p> </p>"),
                                  workspace=None)
    assert workspace_rows(world, owner)["documents"] == 0 and world.queue.messages == []


def test_a_pdf_over_the_chunk_cap_fails_at_ingest_before_anything_is_embedded(make_world: Any) -> None:
    world = make_world(MUSE_KNOWLEDGE_MAX_CHUNKS="3")
    owner = world.principal()
    pdf = make_pdf([f"Page {i}. " + PARAGRAPH[:900] for i in range(6)], title="Tea handbook")
    accepted = world.service.submit_file(owner, filename="handbook.pdf", data=pdf, content_type="application/pdf",
                                         kind=None, title=None, tags=[], workspace=None)
    assert accepted.status == "queued", "a PDF's chunk count is known only once it is parsed"
    [reply] = world.pump()
    view = world.service.get(owner, accepted.id)
    assert reply["status"] == "failed" and view.status == "failed"
    assert "at most 3 (MUSE_KNOWLEDGE_MAX_CHUNKS)" in (view.error or "")
    counts = workspace_rows(world, owner)
    assert (counts["chunks"], counts["vectors"], counts["counted"]) == (0, 0, 0)


# ---------------------------------------------------------------------------------------------------- quota


def test_the_daily_quota_refuses_with_retry_after_and_the_limit(make_world: Any) -> None:
    world = make_world(MUSE_KNOWLEDGE_DAILY_CHUNKS="10")
    owner, other = world.principal(), world.principal()
    world.service.submit_text(owner, TextResource(content=paragraphs(6)), workspace=None)
    with pytest.raises(QuotaExceeded) as refused:
        world.service.submit_text(owner, TextResource(content=paragraphs(5)), workspace=None)
    message = refused.value.message
    assert "6 of its 10 chunks in the last 24 hours (MUSE_KNOWLEDGE_DAILY_CHUNKS)" in message
    assert "this resource needs 5" in message
    assert 86_000 < refused.value.retry_after_seconds <= 86_400
    assert refused.value.http_status == 429
    world.service.submit_text(owner, TextResource(content=paragraphs(4)), workspace=None)
    with pytest.raises(QuotaExceeded, match="10 of its 10"):
        world.service.submit_text(owner, TextResource(kind="url", url=CORPUS_URL), workspace=None)
    with pytest.raises(PayloadTooLarge, match="more than a workspace may ingest in 24 hours"):
        world.service.submit_text(other, TextResource(content=paragraphs(11)), workspace=None)
    world.service.submit_text(other, TextResource(content=paragraphs(10)), workspace=None)
    assert workspace_rows(world, owner)["counted"] == 10 and workspace_rows(world, other)["counted"] == 10
    assert workspace_rows(world, owner)["documents"] == 2


def test_the_retry_after_points_at_when_enough_of_the_window_expires(make_world: Any) -> None:
    world = make_world(MUSE_KNOWLEDGE_DAILY_CHUNKS="10")
    owner = world.principal()
    first = world.service.submit_text(owner, TextResource(content=paragraphs(4)), workspace=None)
    second = world.service.submit_text(owner, TextResource(content=paragraphs(4)), workspace=None)
    with connect(world.dsn) as conn, conn.transaction():
        conn.execute("UPDATE public.knowledge_ingest_usage SET created_at = now() - interval '23 hours' "
                     "WHERE document_id = %s", (first.id,))
        conn.execute("UPDATE public.knowledge_ingest_usage SET created_at = now() - interval '2 hours' "
                     "WHERE document_id = %s", (second.id,))
    with pytest.raises(QuotaExceeded) as needs_first:
        world.service.submit_text(owner, TextResource(content=paragraphs(3)), workspace=None)
    assert 3_500 <= needs_first.value.retry_after_seconds <= 3_600
    with pytest.raises(QuotaExceeded) as needs_both:
        world.service.submit_text(owner, TextResource(content=paragraphs(8)), workspace=None)
    assert 22 * 3600 - 100 <= needs_both.value.retry_after_seconds <= 22 * 3600
    with connect(world.dsn) as conn, conn.transaction():
        conn.execute("UPDATE public.knowledge_ingest_usage SET created_at = now() - interval '25 hours' "
                     "WHERE document_id = %s", (first.id,))
    world.service.submit_text(owner, TextResource(content=paragraphs(6)), workspace=None)


def test_concurrent_submits_never_overrun_the_quota(make_world: Any) -> None:
    world = make_world(MUSE_KNOWLEDGE_DAILY_CHUNKS="12")
    owner = world.principal()
    accepted: list[uuid.UUID] = []
    refused: list[QuotaExceeded] = []
    barrier = threading.Barrier(6)

    def submit() -> None:
        barrier.wait()
        try:
            accepted.append(world.service.submit_text(owner, TextResource(content=paragraphs(5)), workspace=None).id)
        except QuotaExceeded as exc:
            refused.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(accepted), len(refused)) == (2, 4)
    counts = workspace_rows(world, owner)
    assert counts["counted"] == 10 and counts["documents"] == 2 and counts["rounds"] == 2


def test_retried_and_duplicate_deliveries_count_once(make_world: Any) -> None:
    world = make_world(MUSE_KNOWLEDGE_DAILY_CHUNKS="40")
    owner = world.principal()
    pdf = make_pdf([f"Page {i}. " + PARAGRAPH[:500] for i in range(2)], title="Two pages")
    accepted = world.service.submit_file(owner, filename="two.pdf", data=pdf, content_type="application/pdf",
                                         kind=None, title=None, tags=[], workspace=None)
    assert workspace_rows(world, owner)["counted"] == 0, "a PDF is counted when its chunks are known"
    [first] = world.queue.messages
    threads = [threading.Thread(target=world.deliver, args=(first,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    world.delivered = 1
    world.pump()
    world.deliver(first)
    view = world.service.get(owner, accepted.id)
    assert view.status == "ready"
    usage = rows(world.dsn, "SELECT chunks FROM public.knowledge_ingest_usage WHERE document_id = %s", accepted.id)
    assert [u["chunks"] for u in usage] == [view.chunk_count]


def test_a_pdf_beyond_the_quota_fails_at_ingest_naming_it(make_world: Any) -> None:
    world = make_world(MUSE_KNOWLEDGE_DAILY_CHUNKS="6")
    owner = world.principal()
    pdf = make_pdf([f"Page {i}. " + PARAGRAPH[:900] for i in range(4)], title="Four pages")
    accepted = world.service.submit_file(owner, filename="four.pdf", data=pdf, content_type="application/pdf",
                                         kind=None, title=None, tags=[], workspace=None)
    world.service.submit_text(owner, TextResource(content=paragraphs(3)), workspace=None)
    world.pump()
    view = world.service.get(owner, accepted.id)
    assert view.status == "failed"
    assert "Ingestion quota used up" in (view.error or "") and "6 chunks" in (view.error or "")
    assert "add it again after" in (view.error or "")
    assert rows(world.dsn, "SELECT count(*) AS n FROM public.knowledge_chunks WHERE document_id = %s",
                accepted.id)[0]["n"] == 0


SECRET = BASE_ENV["SUPABASE_JWT_SECRET"]


def test_the_api_answers_400_413_and_429_with_retry_after(make_world: Any, migrated_dsn: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(MUSE_KNOWLEDGE_DAILY_CHUNKS="6", MUSE_KNOWLEDGE_MAX_CHUNKS="5")
    os.environ.update({**BASE_ENV, "DATABASE_URL": migrated_dsn})
    get_settings.cache_clear()
    monkeypatch.setattr(knowledge_api, "service", lambda: world.service)
    owner = world.principal()
    token = jwt.encode({**owner.claims, "exp": 4102444800}, SECRET, algorithm="HS256")
    app = flask.Flask("limits-test")

    def post(**kwargs: Any) -> flask.Response:
        with app.test_request_context("/api/v1/knowledge", method="POST",
                                      headers={"Authorization": f"Bearer {token}"}, **kwargs):
            return dispatch(flask.request)

    try:
        too_big = post(content_type="multipart/form-data",
                       data={"file": (io.BytesIO(paragraphs(8).encode()), "long.txt")})
        assert too_big.status_code == 413, too_big.get_json()
        assert "MUSE_KNOWLEDGE_MAX_CHUNKS" in too_big.get_json()["error"]["message"]
        assert post(json={"content": paragraphs(4)}).status_code == 202
        over = post(json={"content": paragraphs(3)})
        body = over.get_json()
        assert over.status_code == 429 and body["error"]["code"] == "quota_exceeded"
        assert int(over.headers["Retry-After"]) == body["error"]["details"]["retry_after_seconds"] > 0
        message = body["error"]["message"]
        assert "MUSE_KNOWLEDGE_DAILY_CHUNKS" in message and "of its 6 chunks" in message
        metadata = post(json={"kind": "url", "url": "http://169.254.169.254/latest/meta-data/"})
        assert metadata.status_code == 400 and metadata.get_json()["error"]["code"] == "invalid_request"
        assert metadata.get_json()["error"]["message"] == (
            "`url` points at 169.254.169.254, a cloud metadata address; only public http(s) URLs can be ingested.")
    finally:
        get_settings.cache_clear()


# ----------------------------------------------------------------------------------------------------- SSRF


def test_private_urls_are_refused_at_submit_after_dns(make_world: Any) -> None:
    dns = FakeDns({"intranet.shop.example.com": ["10.20.30.40"], "shop.example.com": ["93.184.216.34"]})
    world = make_world(dns)
    owner = world.principal()
    for url, says in (("http://intranet.shop.example.com/wiki", "resolves to 10.20.30.40, a private address"),
                      ("http://169.254.169.254/latest/meta-data/iam/", "a cloud metadata address"),
                      ("http://metadata.google.internal/computeMetadata/v1/", "a cloud metadata host"),
                      ("http://0x7f000001/", "non-standard form")):
        with pytest.raises(InvalidRequest) as refused:
            world.service.submit_text(owner, TextResource(kind="url", url=url), workspace=None)
        assert says in refused.value.message and refused.value.http_status == 400
    assert workspace_rows(world, owner)["documents"] == 0 and world.queue.messages == []


def test_dns_that_changes_after_submit_is_caught_at_ingest(make_world: Any) -> None:
    dns = FakeDns({"press.shop.example.com": ["93.184.216.34"]})
    world = make_world(dns)
    owner = world.principal()
    accepted = world.service.submit_text(owner, TextResource(kind="url", url="http://press.shop.example.com/story"),
                                         workspace=None)
    dns.table["press.shop.example.com"] = ["127.0.0.1"]
    [reply] = world.pump()
    assert reply["status"] == "failed"
    assert "resolves to 127.0.0.1, a loopback address" in (world.service.get(owner, accepted.id).error or "")


class _Site(http.server.BaseHTTPRequestHandler):
    routes: dict[str, str] = {}
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        location = self.routes.get(self.path)
        self.send_response(301 if location else 404)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[int]:
    _Site.routes, _Site.hits = {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_every_redirect_is_checked_and_tavily_extracts_the_final_url(make_world: Any, site: int) -> None:
    dns = FakeDns({"go.shop.example.com": ["127.0.0.1"]})
    world = make_world(dns, MUSE_URL_ALLOWLIST="127.0.0.0/8,example-news.in")
    owner = world.principal()
    _Site.routes = {"/press": "/press/2026", "/press/2026": CORPUS_URL,
                    "/leak": "/leak/2", "/leak/2": "http://169.254.169.254/latest/meta-data/"}
    moved = world.service.submit_text(owner, TextResource(kind="url", url=f"http://go.shop.example.com:{site}/press"),
                                      workspace=None)
    leak = world.service.submit_text(owner, TextResource(kind="url", url=f"http://go.shop.example.com:{site}/leak"),
                                     workspace=None)
    world.pump()
    ready, failed = world.service.get(owner, moved.id), world.service.get(owner, leak.id)
    assert ready.status == "ready" and "Saanjh" in (ready.content or "")
    assert failed.status == "failed"
    assert ("redirects to 'http://169.254.169.254/latest/meta-data/', which points at 169.254.169.254, a cloud "
            "metadata address") in (failed.error or "")
    assert _Site.hits == ["/press", "/press/2026", "/leak", "/leak/2"]


def test_a_private_url_tavily_reports_back_fails_the_resource(make_world: Any,
                                                              servers: dict[str, RunningServer]) -> None:
    world = make_world(MUSE_URL_ALLOWLIST=".example.in")
    owner = world.principal()
    source = "https://marketing-desk.example.in/redirecting-story"
    script = {"match": {"endpoint": "extract", "contains": "redirecting-story"}, "times": 1,
              "response": {"json": {"results": [{"url": "http://10.1.2.3/admin", "raw_content": "# Admin\n\nsecret"}],
                                    "failed_results": [], "response_time": 0.1}}}
    httpx.post(f"{servers['tavily'].url}/_emulator/script", json={"rules": [script]}).raise_for_status()
    accepted = world.service.submit_text(owner, TextResource(kind="url", url=source), workspace=None)
    [reply] = world.pump()
    view = world.service.get(owner, accepted.id)
    assert reply["status"] == "failed" and view.chunk_count == 0
    assert "points at 10.1.2.3, a private address" in (view.error or "")
