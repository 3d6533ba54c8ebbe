"""A workspace's memory in Postgres: brand facts, episodes, task records and specialist statistics.

Functions take the caller's connection (a transaction): under `as_user` row-level security scopes every
statement to the caller's workspaces; under `as_service` the explicit `workspace_id` filters do. Vectors
are stored untyped with their model key (`<model>@<dimensions>`, see `shared.db.knowledge.embedding_key`)
and compared only with vectors of the same key, by exact cosine inside one workspace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from shared.db.knowledge import vector_literal
from shared.db.pool import Conn, one

# ------------------------------------------------------------------------------------------------ facts

_LOCK_FACTS = "SELECT pg_advisory_xact_lock(hashtextextended('memory_facts:' || %s::text, 0))"
_FACT_COLUMNS = "id, fact, text_hash, source, sources, confirmations, history, updated_at"
_FACT_BY_HASH = f"""
SELECT {_FACT_COLUMNS} FROM public.memory_facts
WHERE workspace_id = %(ws)s
  AND (text_hash = %(hash)s OR history @> jsonb_build_array(jsonb_build_object('hash', %(hash)s::text)))
ORDER BY text_hash = %(hash)s DESC, id
LIMIT 1
"""
_NEAREST_FACTS = f"""
SELECT {_FACT_COLUMNS}, 1 - (embedding <=> %(vector)s::vector) AS similarity
FROM public.memory_facts
WHERE workspace_id = %(ws)s AND model = %(key)s
ORDER BY embedding <=> %(vector)s::vector, id
LIMIT %(k)s
"""
_INSERT_FACT = """
INSERT INTO public.memory_facts (workspace_id, fact, text_hash, source, sources, model, embedding)
VALUES (%s, %s, %s, %s, %s, %s, %s::vector)
RETURNING id
"""
_CONFIRM_FACT = """
UPDATE public.memory_facts SET confirmations = confirmations + 1, sources = %s, updated_at = now()
WHERE id = %s
"""
_REWORD_FACT = """
UPDATE public.memory_facts
SET confirmations = confirmations + 1, sources = %(sources)s, history = %(history)s, fact = %(fact)s,
    text_hash = %(hash)s, source = %(source)s, model = %(key)s, embedding = %(vector)s::vector, updated_at = now()
WHERE id = %(id)s
"""


def lock_facts(conn: Conn, workspace_id: str) -> None:
    """Serialize fact learning of one workspace until the transaction ends (so dedup sees every write)."""
    conn.execute(_LOCK_FACTS, (workspace_id,))


def fact_by_hash(conn: Conn, workspace_id: str, text_hash: str) -> dict[str, Any] | None:
    """The fact whose current or a superseded wording has `text_hash`, in any model's vector space."""
    return conn.execute(_FACT_BY_HASH, {"ws": workspace_id, "hash": text_hash}).fetchone()


def nearest_facts(conn: Conn, workspace_id: str, *, key: str, vector: Sequence[float], k: int) -> list[dict[str, Any]]:
    """The `k` facts closest to `vector` (cosine), among those embedded by model `key`."""
    return conn.execute(_NEAREST_FACTS, {"ws": workspace_id, "key": key, "vector": vector_literal(vector),
                                         "k": k}).fetchall()


def insert_fact(conn: Conn, workspace_id: str, *, fact: str, text_hash: str, source: str,
                sources: list[dict[str, Any]], key: str, vector: Sequence[float]) -> int:
    """A new fact; returns its id."""
    fact_id: int = one(conn.execute(_INSERT_FACT, (workspace_id, fact, text_hash, source, Jsonb(sources), key,
                                                   vector_literal(vector))))["id"]
    return fact_id


def confirm_fact(conn: Conn, fact_id: int, sources: list[dict[str, Any]]) -> None:
    """Count one more learning of the fact, keeping its wording."""
    conn.execute(_CONFIRM_FACT, (Jsonb(sources), fact_id))


def reword_fact(conn: Conn, fact_id: int, *, fact: str, text_hash: str, source: str, sources: list[dict[str, Any]],
                history: list[dict[str, Any]], key: str, vector: Sequence[float]) -> None:
    """Count one more learning of the fact and keep the new wording (the old one goes to `history`)."""
    conn.execute(_REWORD_FACT, {"id": fact_id, "fact": fact, "hash": text_hash, "source": source,
                                "sources": Jsonb(sources), "history": Jsonb(history), "key": key,
                                "vector": vector_literal(vector)})


# --------------------------------------------------------------------------------------------- episodes

_INSERT_EPISODE = """
INSERT INTO public.memory_episodes (workspace_id, kind, content, data, dedupe_key, model, embedding, created_at,
                                    expires_at)
VALUES (%(ws)s, %(kind)s, %(content)s, %(data)s, %(key)s, %(model)s, %(vector)s::vector, %(at)s, %(expires)s)
ON CONFLICT (workspace_id, kind, dedupe_key) DO NOTHING
RETURNING id
"""
_EPISODE_BY_KEY = "SELECT id FROM public.memory_episodes WHERE workspace_id = %s AND kind = %s AND dedupe_key = %s"
_RECALL_EPISODES = """
SELECT id, kind, content, data, created_at, expires_at, 1 - (embedding <=> %(vector)s::vector) AS similarity
FROM public.memory_episodes
WHERE workspace_id = %(ws)s AND model = %(key)s
  AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
  AND (expires_at IS NULL OR expires_at > now())
ORDER BY embedding <=> %(vector)s::vector, id DESC
LIMIT %(k)s
"""
_PURGE = "SELECT memory, deleted FROM public.purge_expired_memory()"


def insert_episode(conn: Conn, workspace_id: str, *, kind: str, content: str, data: dict[str, Any],
                   dedupe_key: str | None, key: str, vector: Sequence[float], created_at: datetime,
                   expires_at: datetime | None) -> tuple[int, bool]:
    """(episode id, whether it is new): an episode whose (kind, `dedupe_key`) exists is not written again."""
    row = conn.execute(_INSERT_EPISODE, {
        "ws": workspace_id, "kind": kind, "content": content, "data": Jsonb(data), "key": dedupe_key, "model": key,
        "vector": vector_literal(vector), "at": created_at, "expires": expires_at}).fetchone()
    if row is not None:
        return row["id"], True
    return one(conn.execute(_EPISODE_BY_KEY, (workspace_id, kind, dedupe_key)))["id"], False


def recall_episodes(conn: Conn, workspace_id: str, *, key: str, vector: Sequence[float], k: int,
                    kinds: Sequence[str] | None) -> list[dict[str, Any]]:
    """The `k` unexpired episodes closest to `vector`, among those embedded by model `key`."""
    return conn.execute(_RECALL_EPISODES, {"ws": workspace_id, "key": key, "vector": vector_literal(vector),
                                           "kinds": list(kinds) if kinds else None, "k": k}).fetchall()


def purge_expired(conn: Conn) -> dict[str, int]:
    """Delete expired episodes (their task records cascade) and run keys; returns counts per memory."""
    return {row["memory"]: int(row["deleted"]) for row in conn.execute(_PURGE)}


# ------------------------------------------------------------------------------------------------ tasks

_INSERT_TASK = """
INSERT INTO public.memory_tasks (episode_id, workspace_id, task_type, steps, plan, success, quality, reused_from,
                                 created_at)
VALUES (%(episode)s, %(ws)s, %(type)s, %(steps)s, %(plan)s, %(success)s, %(quality)s, %(reused_from)s, %(at)s)
ON CONFLICT (episode_id) DO NOTHING
"""
_SIMILAR_TASKS = """
SELECT t.episode_id, e.content, t.steps, t.plan, t.success, t.quality, e.created_at,
       1 - (e.embedding <=> %(vector)s::vector) AS similarity
FROM public.memory_tasks t
JOIN public.memory_episodes e ON e.id = t.episode_id
WHERE e.workspace_id = %(ws)s AND e.model = %(key)s AND e.kind = 'task' AND t.task_type = %(type)s
  AND (e.expires_at IS NULL OR e.expires_at > now())
ORDER BY e.embedding <=> %(vector)s::vector, e.id DESC
LIMIT %(k)s
"""


def insert_task(conn: Conn, workspace_id: str, *, episode_id: int, task_type: str, steps: Sequence[str],
                plan: dict[str, Any] | None, success: bool, quality: float, reused_from: int | None,
                created_at: datetime) -> None:
    """The routing record of task episode `episode_id` (idempotent)."""
    conn.execute(_INSERT_TASK, {"episode": episode_id, "ws": workspace_id, "type": task_type,
                                "steps": Jsonb(list(steps)), "plan": Jsonb(plan) if plan is not None else None,
                                "success": success, "quality": quality, "reused_from": reused_from,
                                "at": created_at})


def similar_tasks(conn: Conn, workspace_id: str, *, task_type: str, key: str, vector: Sequence[float],
                  k: int) -> list[dict[str, Any]]:
    """The `k` unexpired tasks of `task_type` whose descriptions are closest to `vector`."""
    return conn.execute(_SIMILAR_TASKS, {"ws": workspace_id, "type": task_type, "key": key,
                                         "vector": vector_literal(vector), "k": k}).fetchall()


# ---------------------------------------------------------------------------------------- specialists

_CLAIM_RUN = """
INSERT INTO public.memory_specialist_runs (workspace_id, run_key, task_type, specialist, variant, success, quality)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (workspace_id, run_key) DO NOTHING
"""
_COUNT_RUN = """
INSERT INTO public.memory_specialist_stats AS s (workspace_id, task_type, specialist, variant, runs, successes,
                                                 quality_sum)
VALUES (%s, %s, %s, %s, 1, %s, %s)
ON CONFLICT (workspace_id, task_type, specialist, variant) DO UPDATE
SET runs = s.runs + 1, successes = s.successes + EXCLUDED.successes, quality_sum = s.quality_sum + EXCLUDED.quality_sum,
    updated_at = now()
"""
_STATS = """
SELECT task_type, specialist, variant, runs, successes, quality_sum
FROM public.memory_specialist_stats
WHERE workspace_id = %(ws)s
  AND (%(type)s::text IS NULL OR task_type = %(type)s)
  AND (%(specialist)s::text IS NULL OR specialist = %(specialist)s)
ORDER BY task_type, specialist, variant
"""


def record_run(conn: Conn, workspace_id: str, *, task_type: str, specialist: str, variant: str, success: bool,
               quality: float, run_key: str | None) -> bool:
    """Count one run of a variant; False (nothing counted) if `run_key` was counted before."""
    if run_key is not None:
        claimed = conn.execute(_CLAIM_RUN, (workspace_id, run_key, task_type, specialist, variant, success,
                                            quality)).rowcount
        if claimed == 0:
            return False
    conn.execute(_COUNT_RUN, (workspace_id, task_type, specialist, variant, int(success), quality))
    return True


def specialist_stats(conn: Conn, workspace_id: str, *, task_type: str | None = None,
                     specialist: str | None = None) -> list[dict[str, Any]]:
    """Every counted variant of the workspace (of `task_type` and `specialist`, if given)."""
    return conn.execute(_STATS, {"ws": workspace_id, "type": task_type, "specialist": specialist}).fetchall()


# ------------------------------------------------------------------------------------------ re-embedding

_STALE = {
    "facts": "SELECT id, fact AS text FROM public.memory_facts WHERE model <> %(key)s"
             " AND (%(ws)s::uuid IS NULL OR workspace_id = %(ws)s::uuid) ORDER BY id LIMIT %(limit)s",
    "episodes": "SELECT id, content AS text FROM public.memory_episodes WHERE model <> %(key)s"
                " AND (%(ws)s::uuid IS NULL OR workspace_id = %(ws)s::uuid) ORDER BY id LIMIT %(limit)s",
}
_REEMBED = {
    "facts": "UPDATE public.memory_facts SET model = %s, embedding = %s::vector WHERE id = %s",
    "episodes": "UPDATE public.memory_episodes SET model = %s, embedding = %s::vector WHERE id = %s",
}


def stale_embeddings(conn: Conn, table: str, *, key: str, limit: int,
                     workspace_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of `table` (`facts` or `episodes`) embedded by a model other than `key`: (id, text)."""
    return conn.execute(_STALE[table], {"key": key, "ws": workspace_id, "limit": limit}).fetchall()


def replace_embeddings(conn: Conn, table: str, key: str, rows: Sequence[tuple[int, Sequence[float]]]) -> None:
    """Give rows of `table` their vector of model `key`."""
    with conn.cursor() as cur:
        cur.executemany(_REEMBED[table], [(key, vector_literal(vector), row_id) for row_id, vector in rows])
