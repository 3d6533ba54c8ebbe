"""knowledge_fetch over the real knowledge tables: whole documents, never another workspace's."""

from __future__ import annotations

import uuid

from psycopg_pool import ConnectionPool

from shared.tools import PgKnowledgeFetch


def _workspace_with_document(pool: ConnectionPool, content: str) -> tuple[str, str]:
    with pool.connection() as conn:
        workspace_id = conn.execute("INSERT INTO public.workspaces (slug, name) VALUES (%s, 'Tea') RETURNING id",
                                    (f"tea-{uuid.uuid4().hex[:8]}",)).fetchone()["id"]
        document_id = conn.execute(
            "INSERT INTO public.knowledge_documents (workspace_id, title, tags, content) "
            "VALUES (%s, 'Gift box', %s, %s) RETURNING id", (workspace_id, ["product"], content)).fetchone()["id"]
    return str(workspace_id), str(document_id)


def test_a_document_is_fetched_whole_and_only_in_its_workspace(pool: ConnectionPool) -> None:
    workspace_id, document_id = _workspace_with_document(pool, "Four single-origin teas. " * 200)
    other_workspace, _ = _workspace_with_document(pool, "Other")
    fetch = PgKnowledgeFetch(pool)

    document = fetch.fetch(workspace_id, document_id)

    assert document is not None
    assert (document.title, document.tags, len(document.content)) == ("Gift box", ("product",), 25 * 200)
    assert fetch.fetch(other_workspace, document_id) is None
    assert fetch.fetch(workspace_id, str(uuid.uuid4())) is None
    assert fetch.fetch(workspace_id, "not-a-uuid") is None
