-- Guards on LangGraph's checkpoint tables (created by the setup step before migrations run).
-- 1. History stays linear: two writers advancing the same checkpoint cannot both commit a child.
-- 2. Checkpoints are service-only: the API roles get no access, whatever PostgREST exposes.

CREATE UNIQUE INDEX IF NOT EXISTS checkpoints_linear_history
    ON public.checkpoints (thread_id, checkpoint_ns, parent_checkpoint_id)
    WHERE parent_checkpoint_id IS NOT NULL AND (metadata ->> 'source') IN ('loop', 'input');

ALTER TABLE public.checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.checkpoint_blobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.checkpoint_writes ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.checkpoint_migrations ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.checkpoints, public.checkpoint_blobs, public.checkpoint_writes,
    public.checkpoint_migrations FROM anon, authenticated;
