-- The workspace audit log (issue 7, India's DPDP Act) and what erasing a workspace's data needs.
--
-- 1. `audit_log` is append-only: no role may UPDATE, DELETE or TRUNCATE it (privileges revoked, and
--    triggers refuse it even for the table owner). Each row is written in the transaction of the change
--    it records; `idempotency_key` makes a replayed change record nothing new. It has no foreign key to
--    `workspaces`, so it outlives the workspace's data (and the workspace row itself, should it go).
-- 2. Payments are kept when a workspace's campaigns are erased (the law keeps tax records): a payment
--    whose campaign is gone keeps its row with `campaign_id` NULL.

CREATE TABLE public.audit_log (
    id bigserial PRIMARY KEY,
    workspace_id uuid NOT NULL,
    actor text NOT NULL CHECK (actor ~ '^(system|function:[a-z_]{1,40}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$'),
    action text NOT NULL CHECK (action ~ '^[a-z_]{1,40}\.[a-z_]{1,40}$'),
    target_type text NOT NULL CHECK (target_type ~ '^[a-z_]{1,40}$'),
    target_id text CHECK (char_length(target_id) <= 200),
    details jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(details) = 'object' AND octet_length(details::text) <= 4096),
    idempotency_key text CHECK (char_length(idempotency_key) <= 300),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, idempotency_key)
);
CREATE INDEX audit_log_workspace_idx ON public.audit_log (workspace_id, created_at DESC, id DESC);
CREATE INDEX audit_log_workspace_action_idx ON public.audit_log (workspace_id, action, created_at DESC, id DESC);

CREATE FUNCTION public.audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON public.audit_log
    FOR EACH ROW EXECUTE FUNCTION public.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only();

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_member_read ON public.audit_log FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
REVOKE ALL ON public.audit_log FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SEQUENCE public.audit_log_id_seq FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT ON public.audit_log TO authenticated;
GRANT SELECT, INSERT ON public.audit_log TO service_role;
GRANT USAGE ON SEQUENCE public.audit_log_id_seq TO service_role;

ALTER TABLE public.payments ALTER COLUMN campaign_id DROP NOT NULL;
ALTER TABLE public.payments DROP CONSTRAINT payments_campaign_id_fkey;
ALTER TABLE public.payments ADD CONSTRAINT payments_campaign_id_fkey
    FOREIGN KEY (campaign_id) REFERENCES public.campaigns (id) ON DELETE SET NULL;
