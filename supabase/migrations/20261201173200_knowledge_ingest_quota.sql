-- The per-workspace knowledge ingestion quota (issue 7: upload cost is bounded).
--
-- One row per resource whose chunks were counted against its workspace's rolling-day quota
-- (`MUSE_KNOWLEDGE_DAILY_CHUNKS`): written in the transaction that accepts the resource (text,
-- Markdown, HTML: chunked at submit) or that saves its chunks (PDF, URL: known at ingest). The
-- resource id is the key, so a retried or duplicate delivery never counts twice. There is no foreign
-- key to the resource: deleting a resource does not give its chunks back within the day. Members may
-- read their workspace's usage; only the service writes it.

CREATE TABLE public.knowledge_ingest_usage (
    document_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    chunks integer NOT NULL CHECK (chunks >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_ingest_usage_window_idx ON public.knowledge_ingest_usage (workspace_id, created_at);

ALTER TABLE public.knowledge_ingest_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY knowledge_ingest_usage_member_read ON public.knowledge_ingest_usage FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT ON public.knowledge_ingest_usage TO authenticated;
GRANT ALL ON public.knowledge_ingest_usage TO service_role;
