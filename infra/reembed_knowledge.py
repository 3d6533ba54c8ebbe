"""Switching embedding models: index, re-embed, then (optionally) prune the old model's vectors.

Run after changing `MUSE_EMBEDDING_PROVIDER` / `MUSE_EMBEDDING_MODEL` / `MUSE_EMBEDDING_DIMENSIONS`, with
the new settings in the environment (`python -m infra.reembed_knowledge [--workspace ID] [--prune]`):

1. creates the new model's partial HNSW index (`CREATE INDEX CONCURRENTLY`, no table lock);
2. embeds every chunk that lacks a vector of the new model, in short resumable batches — meanwhile
   search keeps answering: chunks not yet re-embedded are still found by full text;
3. with `--prune`, deletes the vectors of every other model once all chunks have the new one.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from shared.db.knowledge import Embedder, PgVectorKnowledge, ensure_vector_index, prune_embeddings
from shared.db.pool import as_service, connect, create_pool
from shared.integrations.embeddings import embedder_from_settings
from shared.settings import Settings, get_settings


@dataclass(frozen=True)
class Reembedded:
    """What one run did."""

    model: str
    index: str
    embedded: int
    pruned: int


def reembed(settings: Settings, *, embedder: Embedder | None = None, workspace_id: str | None = None,
            prune: bool = False, batch: int = 64) -> Reembedded:
    """Bring the knowledge base to the configured embedding model (see the module docstring)."""
    pool = create_pool(settings.database_url, max_size=2)
    try:
        knowledge = PgVectorKnowledge(pool=pool, embedder=embedder or embedder_from_settings(settings))
        with connect(settings.database_url) as conn:
            index = ensure_vector_index(conn, knowledge.key)
        embedded = knowledge.reembed(workspace_id=workspace_id, batch=batch)
        pruned = 0
        if prune:
            with as_service(pool) as conn:
                pruned = prune_embeddings(conn, knowledge.key, workspace_id=workspace_id)
        return Reembedded(model=knowledge.key, index=index, embedded=embedded, pruned=pruned)
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default=None, help="only this workspace (default: all)")
    parser.add_argument("--prune", action="store_true", help="delete other models' vectors afterwards")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    result = reembed(get_settings(), workspace_id=args.workspace, prune=args.prune, batch=args.batch)
    print(f"model {result.model}: index {result.index}, {result.embedded} chunks embedded, "
          f"{result.pruned} old vectors pruned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
