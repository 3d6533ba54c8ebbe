-- Cancel and refund (issue 10).
-- 1. A campaign can end `cancelled` (terminal, like completed/failed/expired); `cancelled_at` says when, and
--    `cancel_settled_order` names the completed payment the cancel settled (refunded pro rata, in full or not
--    at all): any other payment of the campaign that completes later is refunded in full.
-- 2. `refunds`: one row per PhonePe refund (`POST /payments/v2/refund`), keyed by the merchantRefundId Muse
--    derives from the payment's merchantOrderId and the attempt, so a retried request is the same refund.
--    At most one refund of a payment is PENDING at a time (PhonePe: never start a second one meanwhile);
--    a FAILED one is re-initiated as the next attempt, under a new merchantRefundId.
--    Refunds are payment records: kept by a workspace's erasure like `payments` (campaign_id set null).

ALTER TABLE public.campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE public.campaigns ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('queued', 'running', 'awaiting_decision', 'awaiting_payment',
                      'completed', 'failed', 'expired', 'cancelled'));
ALTER TABLE public.campaigns ADD COLUMN cancelled_at timestamptz;
ALTER TABLE public.campaigns ADD COLUMN cancel_settled_order text;

DROP INDEX public.campaigns_live_lease_idx;
CREATE INDEX campaigns_live_lease_idx ON public.campaigns (lease_until)
    WHERE lease_owner IS NOT NULL AND status NOT IN ('completed', 'failed', 'expired', 'cancelled');

CREATE TABLE public.refunds (
    merchant_refund_id text PRIMARY KEY CHECK (merchant_refund_id ~ '^[A-Za-z0-9_-]{1,63}$'),
    merchant_order_id text NOT NULL REFERENCES public.payments (merchant_order_id),
    campaign_id uuid REFERENCES public.campaigns (id) ON DELETE SET NULL,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt >= 1),
    amount_paise bigint NOT NULL CHECK (amount_paise >= 100),
    reason text NOT NULL CHECK (reason IN ('cancelled_before_publication', 'cancelled_partially_published',
                                           'paid_after_cancel')),
    channels_total integer CHECK (channels_total >= 0),
    channels_unpublished integer CHECK (channels_unpublished >= 0),
    state text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'COMPLETED', 'FAILED')),
    phonepe_state text,
    phonepe_refund_id text,
    error_code text,
    credit_note_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    UNIQUE (merchant_order_id, attempt)
);
CREATE UNIQUE INDEX refunds_one_pending_per_payment ON public.refunds (merchant_order_id) WHERE state = 'PENDING';
CREATE INDEX refunds_campaign_idx ON public.refunds (campaign_id, created_at DESC);
CREATE INDEX refunds_unsettled_idx ON public.refunds (updated_at)
    WHERE state = 'PENDING' OR (state = 'COMPLETED' AND credit_note_id IS NULL);

ALTER TABLE public.refunds ENABLE ROW LEVEL SECURITY;
CREATE POLICY refunds_member_read ON public.refunds FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT ON public.refunds TO authenticated;
GRANT ALL ON public.refunds TO service_role;
