-- Muse core schema: workspaces, campaigns as LangGraph threads, their events, decisions, artifacts and
-- payments, and the workspace knowledge base. Every table is scoped to a workspace by row-level security.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE public.workspaces (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name text NOT NULL,
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.workspace_members (
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    role text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON public.workspace_members (user_id);

CREATE TABLE public.brand_kits (
    workspace_id uuid PRIMARY KEY REFERENCES public.workspaces (id) ON DELETE CASCADE,
    kit jsonb NOT NULL,
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.knowledge_documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    title text NOT NULL,
    source text NOT NULL DEFAULT 'text',
    tags text[] NOT NULL DEFAULT '{}',
    content text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.knowledge_chunks (
    id bigserial PRIMARY KEY,
    document_id uuid NOT NULL REFERENCES public.knowledge_documents (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    position integer NOT NULL,
    content text NOT NULL,
    embedding vector(768) NOT NULL,
    fts tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
    UNIQUE (document_id, position)
);
CREATE INDEX knowledge_chunks_embedding_idx ON public.knowledge_chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX knowledge_chunks_fts_idx ON public.knowledge_chunks USING gin (fts);
CREATE INDEX knowledge_chunks_workspace_idx ON public.knowledge_chunks (workspace_id);

CREATE TABLE public.campaigns (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    created_by uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('campaign', 'move')),
    brief jsonb NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'awaiting_decision', 'awaiting_payment',
                          'completed', 'failed', 'expired')),
    current_step text,
    pending_decision jsonb,
    failure_reason text,
    idempotency_key text,
    -- Single-writer lease over the campaign's LangGraph thread; `fence` grows with every grant.
    lease_owner text,
    lease_until timestamptz,
    fence bigint NOT NULL DEFAULT 0,
    -- Transactional outbox: the next QStash message, written with the step's outcome.
    outbox jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, idempotency_key)
);
CREATE INDEX campaigns_workspace_idx ON public.campaigns (workspace_id, created_at DESC);

CREATE TABLE public.campaign_events (
    id bigserial PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES public.campaigns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    type text NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaign_events_campaign_idx ON public.campaign_events (campaign_id, id);

CREATE TABLE public.decisions (
    id text PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES public.campaigns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    kind text NOT NULL,
    action text NOT NULL CHECK (action IN ('approve', 'reject', 'edit', 'expire')),
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    source text NOT NULL CHECK (source IN ('user', 'timeout')),
    decided_by uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_campaign_idx ON public.decisions (campaign_id);

CREATE TABLE public.artifacts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id uuid NOT NULL REFERENCES public.campaigns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    channel text NOT NULL,
    content jsonb NOT NULL,
    model text NOT NULL,
    usage jsonb NOT NULL DEFAULT '{}'::jsonb,
    revision integer NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    published_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, channel)
);

CREATE TABLE public.payments (
    merchant_order_id text PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES public.campaigns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    amount_paise bigint NOT NULL CHECK (amount_paise >= 100),
    state text NOT NULL CHECK (state IN ('creating', 'pending', 'completed', 'failed')),
    phonepe_order_id text,
    redirect_url text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, attempt)
);
CREATE UNIQUE INDEX payments_one_open_per_campaign ON public.payments (campaign_id)
    WHERE state IN ('creating', 'pending', 'completed');

-- Row-level security: a signed-in user sees and writes only the rows of workspaces they belong to.
CREATE FUNCTION public.is_workspace_member(ws uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT EXISTS (SELECT 1 FROM public.workspace_members m WHERE m.workspace_id = ws AND m.user_id = auth.uid())
$$;
REVOKE ALL ON FUNCTION public.is_workspace_member(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.is_workspace_member(uuid) TO authenticated, service_role;

ALTER TABLE public.workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.workspace_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.brand_kits ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.knowledge_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.knowledge_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.campaigns ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.campaign_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.artifacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.payments ENABLE ROW LEVEL SECURITY;

CREATE POLICY workspaces_member_read ON public.workspaces FOR SELECT TO authenticated
    USING (public.is_workspace_member(id));
CREATE POLICY members_self_read ON public.workspace_members FOR SELECT TO authenticated
    USING (user_id = auth.uid());
CREATE POLICY brand_kits_member ON public.brand_kits FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
CREATE POLICY documents_member ON public.knowledge_documents FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
CREATE POLICY chunks_member ON public.knowledge_chunks FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
CREATE POLICY campaigns_member_read ON public.campaigns FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY campaigns_member_insert ON public.campaigns FOR INSERT TO authenticated
    WITH CHECK (public.is_workspace_member(workspace_id) AND created_by = auth.uid());
CREATE POLICY events_member_read ON public.campaign_events FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY decisions_member_read ON public.decisions FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY artifacts_member_read ON public.artifacts FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY payments_member_read ON public.payments FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));

GRANT SELECT ON public.workspaces, public.workspace_members TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.brand_kits, public.knowledge_documents, public.knowledge_chunks
    TO authenticated;
GRANT SELECT ON public.campaigns, public.campaign_events, public.decisions, public.artifacts, public.payments
    TO authenticated;
-- A user may create a campaign but never set its status, lease or outbox: those belong to the runtime.
GRANT INSERT (id, workspace_id, created_by, kind, brief, idempotency_key) ON public.campaigns TO authenticated;
GRANT USAGE ON SEQUENCE public.knowledge_chunks_id_seq TO authenticated;
GRANT ALL ON ALL TABLES IN SCHEMA public TO service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO service_role;
