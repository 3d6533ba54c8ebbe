"""Knowledge-search benchmark: recall@5 of hybrid (vector + full text, RRF) vs vector-only search.

`python -m infra.bench_knowledge` ingests the labelled set `infra/data/knowledge_bench.json` (30
resources of a fictional Indian tea brand, 4 of them in Hindi, and 36 queries with the resources that
answer them) into a fresh database — `DATABASE_URL`'s server, else an embedded pgserver — embeds it
with the local multilingual-e5-small model, and prints `name: value unit` lines:

    knowledge_recall_at5_hybrid / _vector / _text   mean over queries of |relevant ∩ top-5 resources| / |relevant|
    knowledge_recall_hybrid_vs_vector               the ratio of the first two
    knowledge_search_p50_*                          SQL time of one search (query already embedded)
    knowledge_query_embed_p50                       time to embed one query with e5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT / "infra" / "data" / "knowledge_bench.json"
MODES = ("hybrid", "vector", "text")


@contextmanager
def _server() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    from infra.local.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="muse-bench-kb-") as data_dir:
        server = EmbeddedPostgres.start(Path(data_dir))
        try:
            yield server.uri
        finally:
            server.stop()


@contextmanager
def _fresh_database(server_dsn: str) -> Iterator[str]:
    name = f"muse_bench_kb_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(server_dsn, dbname=name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _recall(found: list[str], relevant: list[str]) -> float:
    return len(set(found) & set(relevant)) / len(relevant)


def run(dsn: str, data: dict[str, Any], *, k: int = 5) -> list[tuple[str, float, str]]:
    """Ingest the labelled set into the migrated database `dsn`, search it in every mode, return the metrics."""
    from infra.local.stack import BOOTSTRAP_SQL
    from shared.db.knowledge import PgVectorKnowledge
    from shared.db.migrate import setup_database
    from shared.db.pool import as_service, connect, create_pool
    from shared.db.workspaces import ensure_workspace
    from shared.integrations.embeddings import LocalE5Embedder
    from shared.retrieval.text import extract

    setup_database(dsn, bootstrap_sql=BOOTSTRAP_SQL)
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug="bench-knowledge", name="Bench", user_id=str(uuid.uuid4()))
    pool = create_pool(dsn, max_size=2)
    try:
        knowledge = PgVectorKnowledge(pool=pool, embedder=LocalE5Embedder())
        labels: dict[str, str] = {}
        started = time.perf_counter()
        for doc in data["documents"]:
            text = extract(doc["kind"], doc["content"].encode("utf-8")).text
            with as_service(pool) as conn:
                stored = knowledge.add_document(conn, workspace_id=workspace_id, title=doc["title"], content=text,
                                                tags=doc["tags"], kind=doc["kind"])
            labels[stored] = doc["id"]
        ingest_seconds = time.perf_counter() - started

        recalls: dict[str, list[float]] = {mode: [] for mode in MODES}
        by_language: dict[tuple[str, str], list[float]] = {}
        timings: dict[str, list[float]] = {mode: [] for mode in MODES}
        embed_ms: list[float] = []
        for query in data["queries"]:
            started = time.perf_counter()
            vector = knowledge.query_vector(query["query"])
            embed_ms.append((time.perf_counter() - started) * 1000)
            for mode in MODES:
                with as_service(pool) as conn:
                    started = time.perf_counter()
                    hits = knowledge.search_in(conn, workspace_id, query["query"], k=k, mode=mode, vector=vector)
                    timings[mode].append((time.perf_counter() - started) * 1000)
                found = list(dict.fromkeys(labels[str(hit.document_id)] for hit in hits))
                recall = _recall(found, query["relevant"])
                recalls[mode].append(recall)
                by_language.setdefault((mode, query["language"]), []).append(recall)
    finally:
        pool.close()

    mean = {mode: statistics.fmean(values) for mode, values in recalls.items()}
    results: list[tuple[str, float, str]] = [(f"knowledge_recall_at{k}_{mode}", mean[mode], "ratio") for mode in MODES]
    results.append(("knowledge_recall_hybrid_vs_vector", mean["hybrid"] / mean["vector"], "x"))
    for (mode, language), values in sorted(by_language.items()):
        if mode != "text":
            results.append((f"knowledge_recall_at{k}_{mode}_{language}", statistics.fmean(values), "ratio"))
    results += [(f"knowledge_search_p50_{mode}", statistics.median(timings[mode]), "ms") for mode in MODES]
    results.append(("knowledge_query_embed_p50", statistics.median(embed_ms), "ms"))
    results.append(("knowledge_ingest_per_resource", ingest_seconds * 1000 / len(data["documents"]), "ms"))
    results.append(("knowledge_bench_queries", float(len(data["queries"])), "count"))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one `name: value unit` line per metric."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="labelled set (JSON)")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args(argv)
    data = json.loads(args.data.read_text(encoding="utf-8"))
    with _server() as server_dsn, _fresh_database(server_dsn) as dsn:
        results = run(dsn, data, k=args.k)
    for name, value, unit in results:
        print(f"{name}: {value:.3f} {unit}" if unit != "count" else f"{name}: {value:.0f} {unit}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
