"""Knowledge over HTTP: upload → 202 → QStash → `ingest` function → searchable, cited, and private."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import Stack
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.e2e

GUIDE = [
    "Saanjh Tea brand guide\nOur Nilgiri frost tea is harvested in winter above 1,800 metres.",
    "It is brisk and fragrant, and we always call it a small-batch tea, never a cheap one.",
]


def _wait_ready(stack: Stack, auth: dict[str, str], document_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = stack.http.get(f"{stack.api}/api/v1/knowledge/{document_id}", headers=auth)
        assert response.status_code == 200, response.text
        view = response.json()
        if view["status"] in ("ready", "failed"):
            return view
        time.sleep(0.1)
    raise AssertionError(f"resource still {view.get('status')!r} after {timeout}s")


def test_upload_is_ingested_by_the_chained_function_and_stays_private(stack: Stack) -> None:
    owner, stranger = stack.new_workspace(), stack.new_workspace()
    response = stack.http.post(f"{stack.api}/api/v1/knowledge", headers=owner, data={"tags": "brand,tea"},
                               files={"file": ("saanjh-guide.pdf", make_pdf(GUIDE, title="Saanjh brand guide"),
                                               "application/pdf")})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued" and accepted["kind"] == "pdf"

    view = _wait_ready(stack, owner, accepted["id"])
    assert view["status"] == "ready", view["error"]
    assert view["title"] == "Saanjh brand guide" and view["tags"] == ["brand", "tea"]
    assert "harvested in winter" in view["content"]
    rows = stack.db("SELECT count(*) AS n FROM public.knowledge_embeddings e JOIN public.knowledge_chunks c "
                    "ON c.id = e.chunk_id WHERE c.document_id = %s AND e.model = 'multilingual-e5-small@384'",
                    accepted["id"])
    assert rows[0]["n"] == view["chunk_count"] >= 1

    response = stack.http.get(f"{stack.api}/api/v1/knowledge/search",
                              params={"q": "When is the frost tea harvested?", "k": 3, "tags": "tea"}, headers=owner)
    assert response.status_code == 200, response.text
    [best, *_] = response.json()["results"]
    citation = best["citation"]
    assert citation["resource_id"] == accepted["id"] and citation["title"] == "Saanjh brand guide"
    assert citation["position"] == 0 and citation["page"] == 1 and "harvested in winter" in best["content"]

    assert stack.http.get(f"{stack.api}/api/v1/knowledge/{accepted['id']}", headers=stranger).status_code == 404
    response = stack.http.get(f"{stack.api}/api/v1/knowledge/search", params={"q": "frost tea harvested"},
                              headers=stranger)
    assert response.status_code == 200 and response.json()["results"] == []


def test_ingest_function_only_accepts_qstash(stack: Stack) -> None:
    response = stack.http.post(stack.functions["ingest"].url, json={"kind": "ingest", "document_id": "x"})
    assert response.status_code == 401
    assert "Upstash-Signature" in response.json()["error"]["message"]
