-- The transactional outbox of the step chain, and what the sweeper needs to heal a crash.
-- Every QStash message the product sends (start, continue, resume, decision timeout, payment
-- reconciliation) is first a row here, written in the same transaction as the state change that
-- calls for it; it is published after commit and marked `published_at`. A sweeper (a QStash
-- schedule) publishes rows that a crash left unpublished and re-drives threads whose lease expired.

CREATE TABLE public.step_outbox (
    id bigserial PRIMARY KEY,
    campaign_id uuid REFERENCES public.campaigns (id) ON DELETE CASCADE,
    function text NOT NULL,
    message jsonb NOT NULL,
    dedup_id text NOT NULL CHECK (dedup_id ~ '^[A-Za-z0-9_.-]{1,200}$'),
    not_before timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX step_outbox_unpublished_idx ON public.step_outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX step_outbox_campaign_idx ON public.step_outbox (campaign_id, id DESC);

-- The message a lease holder is working on, so that a delivery lost with a crashed holder can be re-sent.
ALTER TABLE public.campaigns ADD COLUMN lease_message jsonb;
ALTER TABLE public.campaigns ADD COLUMN redriven_fence bigint;
-- What the approved budget makes due; a campaign can only complete with a completed payment of exactly this.
ALTER TABLE public.campaigns ADD COLUMN amount_due_paise bigint;
ALTER TABLE public.campaigns DROP COLUMN outbox;
CREATE INDEX campaigns_live_lease_idx ON public.campaigns (lease_until)
    WHERE lease_owner IS NOT NULL AND status NOT IN ('completed', 'failed', 'expired');

ALTER TABLE public.step_outbox ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.step_outbox FROM anon, authenticated;
REVOKE ALL ON SEQUENCE public.step_outbox_id_seq FROM anon, authenticated;
GRANT ALL ON public.step_outbox TO service_role;
GRANT ALL ON SEQUENCE public.step_outbox_id_seq TO service_role;
