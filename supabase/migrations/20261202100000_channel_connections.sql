-- Channel connections (issue 11): each workspace's LinkedIn, X, Meta, email and WhatsApp connection, the
-- single-use OAuth states of connects in flight, and the workspace's own Gemini and Tavily keys.
--
-- Secrets (tokens, API keys, PKCE verifiers) are stored only sealed by `shared.security.envelope`
-- (AES-256-GCM under a per-secret data key wrapped by a key-encryption key held outside the database);
-- the columns hold `{v, kid, wn, wdek, n, ct}`, never plaintext; a disconnected (revoked) connection keeps
-- no secret at all. Members read a connection's status and account but not its sealed columns (column
-- grants); only the service writes.

CREATE TABLE public.channel_connections (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    provider text NOT NULL CHECK (provider IN ('linkedin', 'x', 'meta', 'email', 'whatsapp')),
    status text NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'needs_reconnect', 'revoked')),
    status_reason text,
    account_id text NOT NULL,
    account_name text NOT NULL DEFAULT '',
    scopes text[] NOT NULL DEFAULT '{}',
    settings jsonb NOT NULL DEFAULT '{}',
    access_token jsonb,
    refresh_token jsonb,
    expires_at timestamptz,
    connected_by uuid,
    connected_at timestamptz NOT NULL DEFAULT now(),
    refreshed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'revoked' OR (access_token ? 'ct' AND access_token ? 'kid')),
    CHECK (refresh_token IS NULL OR refresh_token ? 'ct')
);
CREATE UNIQUE INDEX channel_connections_one_live ON public.channel_connections (workspace_id, provider)
    WHERE status <> 'revoked';

CREATE TABLE public.oauth_states (
    state_hash bytea PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    provider text NOT NULL CHECK (provider IN ('linkedin', 'x', 'meta')),
    code_verifier jsonb,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (used_at IS NULL OR code_verifier IS NULL)
);
CREATE INDEX oauth_states_expiry ON public.oauth_states (expires_at);
COMMENT ON TABLE public.oauth_states IS 'OAuth connects in flight, by SHA-256 of their state; a used state keeps '
    'its row (verifier erased) for a day so a replay is told apart from a state never issued.';

CREATE TABLE public.workspace_keys (
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    service text NOT NULL CHECK (service IN ('gemini', 'tavily')),
    secret jsonb NOT NULL CHECK (secret ? 'ct' AND secret ? 'kid'),
    updated_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, service)
);

ALTER TABLE public.channel_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.oauth_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.workspace_keys ENABLE ROW LEVEL SECURITY;

CREATE POLICY channel_connections_member_read ON public.channel_connections FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY workspace_keys_member_read ON public.workspace_keys FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));

GRANT SELECT (id, workspace_id, provider, status, status_reason, account_id, account_name, scopes, settings,
              expires_at, connected_by, connected_at, refreshed_at, updated_at)
    ON public.channel_connections TO authenticated;
GRANT SELECT (workspace_id, service, updated_by, updated_at) ON public.workspace_keys TO authenticated;
GRANT ALL ON public.channel_connections, public.oauth_states, public.workspace_keys TO service_role;
