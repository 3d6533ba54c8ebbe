-- Memory of a workspace: semantic (evergreen brand facts), episodic (interactions, outcomes, task history,
-- critiques), task records for memory-aware routing and specialist statistics for adaptive selection.
--
-- Embeddings follow the knowledge base's rule: `model` is `<model name>@<dimensions>` and the column is an
-- untyped `vector`, so switching the embedding model never changes the schema; reads filter by the configured
-- model and `shared.memory.pg.reembed_memory` rewrites the other rows in place. Memory is searched exactly
-- inside one workspace (btree on workspace and model, then cosine over a few thousand rows at most), not
-- through HNSW, whose post-filtering would lose recall under a workspace filter.
--
-- Retention: episodes carry `expires_at` (task history 30 days, critiques 7, set by the writer) and
-- `public.purge_expired_memory()` deletes what has expired; recall already ignores expired rows.

CREATE TABLE public.memory_facts (
    id bigserial PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    fact text NOT NULL CHECK (length(fact) BETWEEN 1 AND 2000),
    -- sha256 of the normalized fact (NFKC, case-folded, whitespace and end punctuation collapsed).
    text_hash text NOT NULL CHECK (text_hash ~ '^[0-9a-f]{64}$'),
    -- Kind of the source whose wording is kept: a merge keeps the newest wording unless it comes from a
    -- weaker source (edit, manual > decision > artifact).
    source text NOT NULL CHECK (source IN ('artifact', 'decision', 'edit', 'manual')),
    sources jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(sources) = 'array'),
    confirmations integer NOT NULL DEFAULT 1 CHECK (confirmations >= 1),
    history jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(history) = 'array'),
    model text NOT NULL CHECK (model ~ '^[A-Za-z0-9._:/-]+@[0-9]{1,5}$'),
    embedding vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, text_hash),
    CONSTRAINT memory_facts_dimensions CHECK (vector_dims(embedding) = split_part(model, '@', 2)::integer)
);
CREATE INDEX memory_facts_workspace_idx ON public.memory_facts (workspace_id, model);

CREATE TABLE public.memory_episodes (
    id bigserial PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('interaction', 'outcome', 'task', 'critique')),
    content text NOT NULL CHECK (length(content) BETWEEN 1 AND 8000),
    data jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
    -- The writer's idempotency key (e.g. campaign and step): a retried delivery records nothing new.
    dedupe_key text CHECK (length(dedupe_key) BETWEEN 1 AND 200),
    model text NOT NULL CHECK (model ~ '^[A-Za-z0-9._:/-]+@[0-9]{1,5}$'),
    embedding vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz CHECK (expires_at > created_at),
    UNIQUE (id, workspace_id),
    UNIQUE (workspace_id, kind, dedupe_key),
    CONSTRAINT memory_episodes_dimensions CHECK (vector_dims(embedding) = split_part(model, '@', 2)::integer)
);
CREATE INDEX memory_episodes_workspace_idx ON public.memory_episodes (workspace_id, model, kind);
CREATE INDEX memory_episodes_expiry_idx ON public.memory_episodes (expires_at) WHERE expires_at IS NOT NULL;

-- A task's routing record; its description and embedding are its `task` episode (and expire with it).
CREATE TABLE public.memory_tasks (
    episode_id bigint PRIMARY KEY,
    workspace_id uuid NOT NULL,
    task_type text NOT NULL CHECK (length(task_type) BETWEEN 1 AND 100),
    steps jsonb NOT NULL CHECK (jsonb_typeof(steps) = 'array' AND jsonb_array_length(steps) >= 1),
    plan jsonb CHECK (plan IS NULL OR jsonb_typeof(plan) = 'object'),
    success boolean NOT NULL,
    quality real NOT NULL CHECK (quality BETWEEN 0 AND 1),
    reused_from bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (episode_id, workspace_id) REFERENCES public.memory_episodes (id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX memory_tasks_type_idx ON public.memory_tasks (workspace_id, task_type);

CREATE TABLE public.memory_specialist_stats (
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    task_type text NOT NULL CHECK (length(task_type) BETWEEN 1 AND 100),
    specialist text NOT NULL CHECK (length(specialist) BETWEEN 1 AND 100),
    variant text NOT NULL CHECK (length(variant) BETWEEN 1 AND 100),
    runs integer NOT NULL DEFAULT 0 CHECK (runs >= 0),
    successes integer NOT NULL DEFAULT 0 CHECK (successes BETWEEN 0 AND runs),
    quality_sum double precision NOT NULL DEFAULT 0 CHECK (quality_sum >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, task_type, specialist, variant)
);

-- Runs recorded with a key, so a retried step never counts twice; kept as long as task history.
CREATE TABLE public.memory_specialist_runs (
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    run_key text NOT NULL CHECK (length(run_key) BETWEEN 1 AND 200),
    task_type text NOT NULL,
    specialist text NOT NULL,
    variant text NOT NULL,
    success boolean NOT NULL,
    quality real NOT NULL CHECK (quality BETWEEN 0 AND 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '30 days',
    PRIMARY KEY (workspace_id, run_key)
);
CREATE INDEX memory_specialist_runs_expiry_idx ON public.memory_specialist_runs (expires_at);

-- Deletes expired episodes (their task records go with them) and expired run keys. Run it daily from a
-- schedule (a QStash schedule calling the service, or pg_cron where available).
CREATE FUNCTION public.purge_expired_memory() RETURNS TABLE (memory text, deleted bigint)
    LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM public.memory_episodes WHERE expires_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    memory := 'episodes'; deleted := n; RETURN NEXT;
    DELETE FROM public.memory_specialist_runs WHERE expires_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    memory := 'specialist_runs'; deleted := n; RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION public.purge_expired_memory() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.purge_expired_memory() TO service_role;

ALTER TABLE public.memory_facts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.memory_episodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.memory_tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.memory_specialist_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.memory_specialist_runs ENABLE ROW LEVEL SECURITY;

-- Members curate their workspace's memory (read, teach, forget); the statistics belong to the runtime.
CREATE POLICY memory_facts_member ON public.memory_facts FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
CREATE POLICY memory_episodes_member ON public.memory_episodes FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
CREATE POLICY memory_tasks_member ON public.memory_tasks FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
CREATE POLICY memory_specialist_stats_member_read ON public.memory_specialist_stats FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY memory_specialist_runs_member_read ON public.memory_specialist_runs FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));

GRANT SELECT, INSERT, UPDATE, DELETE ON public.memory_facts, public.memory_episodes, public.memory_tasks
    TO authenticated;
GRANT SELECT ON public.memory_specialist_stats, public.memory_specialist_runs TO authenticated;
GRANT USAGE ON SEQUENCE public.memory_facts_id_seq, public.memory_episodes_id_seq TO authenticated;
GRANT ALL ON public.memory_facts, public.memory_episodes, public.memory_tasks, public.memory_specialist_stats,
    public.memory_specialist_runs TO service_role;
GRANT ALL ON SEQUENCE public.memory_facts_id_seq, public.memory_episodes_id_seq TO service_role;
