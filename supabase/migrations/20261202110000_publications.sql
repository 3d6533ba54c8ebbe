-- Publications (issue 11): one row per (artifact, target provider, variant), the unit the publishing engine
-- fires exactly once (shared.publishing.engine).
--
-- status: scheduled -> sending -> published | failed | unconfirmed; cancelled (DELETE before it fired);
-- waiting (its channel is not connected, or its connection needs a reconnect: `waiting_reason`).
-- `version` grows with every reschedule, so a delayed message for an older time finds a newer version and
-- does nothing. `attempts` counts create calls; a delivery names the attempt it fires, so a stale or
-- duplicate one is a no-op. `sending` (with `attempt_started_at` and `content_hash`) is committed before
-- the platform call; `next_attempt_at` is when the row next needs attention: its time while scheduled, and
-- while sending the instant after which the call is presumed dead and the post is reconciled (looked up by
-- `content_hash`) before anything else. `reconcile_first` marks an attempt whose outcome is unknown: a
-- publication re-queued after a reconnect looks that post up before it may create one.

CREATE TABLE public.publications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    campaign_id uuid NOT NULL REFERENCES public.campaigns (id) ON DELETE CASCADE,
    artifact_id uuid NOT NULL REFERENCES public.artifacts (id) ON DELETE CASCADE,
    channel text NOT NULL,
    provider text NOT NULL CHECK (provider IN ('linkedin', 'x', 'facebook', 'instagram', 'email', 'whatsapp')),
    variant text NOT NULL,
    status text NOT NULL CHECK (status IN ('scheduled', 'sending', 'published', 'failed', 'unconfirmed',
                                           'cancelled', 'waiting')),
    waiting_reason text CHECK (waiting_reason IN ('not_connected', 'needs_reconnect')),
    scheduled_at timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    recreates integer NOT NULL DEFAULT 0 CHECK (recreates >= 0),
    reconcile_first boolean NOT NULL DEFAULT false,
    attempt_started_at timestamptz,
    content_hash text CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    asset_id text CHECK (char_length(asset_id) <= 200),
    connection_id text CHECK (char_length(connection_id) <= 200),
    external_id text CHECK (char_length(external_id) <= 500),
    url text CHECK (char_length(url) <= 2000),
    parts jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(parts) = 'array'),
    published_at timestamptz,
    error text CHECK (char_length(error) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (artifact_id, provider, variant),
    CHECK ((status = 'waiting') = (waiting_reason IS NOT NULL)),
    CHECK (status <> 'published' OR external_id IS NOT NULL)
);
CREATE INDEX publications_campaign_idx ON public.publications (campaign_id, scheduled_at);
CREATE INDEX publications_waiting_idx ON public.publications (workspace_id, provider) WHERE status = 'waiting';
CREATE INDEX publications_due_idx ON public.publications (next_attempt_at) WHERE status IN ('scheduled', 'sending');

ALTER TABLE public.publications ENABLE ROW LEVEL SECURITY;
CREATE POLICY publications_member_read ON public.publications FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
REVOKE ALL ON public.publications FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.publications TO authenticated;
GRANT ALL ON public.publications TO service_role;

-- A channel that becomes `connected` (a first connect, or a reconnect after `needs_reconnect`) re-queues the
-- workspace's publications waiting for it, in the transaction of the connection change: each gets a new
-- version and its `publish` message in the outbox (the sweeper sends it), due at its time or now if that
-- has passed. One whose last attempt's outcome is unknown goes back to `sending`, due now, so the engine
-- looks its post up before it may create one. The message is `shared.publishing.messages.PublishMessage`.
CREATE FUNCTION public.requeue_waiting_publications() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    p record;
BEGIN
    IF NEW.status <> 'connected' OR (TG_OP = 'UPDATE' AND OLD.status = 'connected') THEN
        RETURN NEW;
    END IF;
    FOR p IN
        UPDATE public.publications SET waiting_reason = NULL, error = NULL, version = version + 1, updated_at = now(),
            status = CASE WHEN reconcile_first THEN 'sending' ELSE 'scheduled' END,
            next_attempt_at = CASE WHEN reconcile_first THEN now() ELSE greatest(scheduled_at, now()) END
        WHERE workspace_id = NEW.workspace_id AND status = 'waiting'
            AND provider = ANY (CASE WHEN NEW.provider = 'meta' THEN ARRAY['facebook', 'instagram']
                                     ELSE ARRAY[NEW.provider] END)
        RETURNING id, campaign_id, version, attempts, next_attempt_at
    LOOP
        INSERT INTO public.step_outbox (campaign_id, function, message, dedup_id, not_before)
        VALUES (p.campaign_id, 'publish',
                jsonb_build_object('kind', 'publish', 'publication_id', p.id, 'version', p.version,
                                   'attempt', p.attempts, 'purpose', 'fire'),
                format('pub-%s-v%s-a%s-fire', p.id, p.version, p.attempts),
                date_trunc('second', p.next_attempt_at)
                    + CASE WHEN date_trunc('second', p.next_attempt_at) = p.next_attempt_at THEN interval '0'
                           ELSE interval '1 second' END);
    END LOOP;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION public.requeue_waiting_publications() FROM PUBLIC, anon, authenticated;
CREATE TRIGGER channel_connected_requeues_publications
    AFTER INSERT OR UPDATE OF status ON public.channel_connections
    FOR EACH ROW EXECUTE FUNCTION public.requeue_waiting_publications();
