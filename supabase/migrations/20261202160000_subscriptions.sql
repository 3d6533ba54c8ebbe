-- UPI Autopay plans (issue 10, shared.subscriptions): a workspace's PhonePe mandate and its monthly cycles.
--
-- `subscriptions` is one mandate (PhonePe v2 subscription) for one paid tier. Its ids at PhonePe are derived
-- from the row (merchant subscription id `MS<workspace>-<n>`, setup order `<that>-S`), so a retried setup
-- never makes a second mandate. A workspace has at most one live mandate (`pending`, `active`, `grace`).
-- `cancelled` keeps the tier until `downgrade_at` (the end of the paid period); `lapsed` is a mandate whose
-- grace period ended unpaid; `ended` a cancelled one whose period is over; `failed` a setup that never
-- became active.
--
-- `subscription_cycles` is one attempt to collect one period: notify (pre-debit notification), then redeem
-- at least 24 h later. Its merchant order id is derived from (subscription, cycle, attempt), so every call
-- about it is idempotent at PhonePe and here; a failed attempt is retried with the next attempt number.
-- Members may read both; only the service writes them.

CREATE TABLE public.subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    seq integer NOT NULL CHECK (seq >= 1),
    merchant_subscription_id text NOT NULL UNIQUE CHECK (merchant_subscription_id ~ '^[A-Za-z0-9_-]{1,63}$'),
    setup_order_id text NOT NULL UNIQUE CHECK (setup_order_id ~ '^[A-Za-z0-9_-]{1,63}$'),
    tier text NOT NULL CHECK (tier IN ('pro', 'agency')),
    amount_paise bigint NOT NULL CHECK (amount_paise >= 100),
    state text NOT NULL CHECK (state IN ('pending', 'active', 'grace', 'cancelled', 'lapsed', 'ended', 'failed')),
    phonepe_subscription_id text,
    intent_url text,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    paid_through timestamptz,
    grace_until timestamptz,
    cancelled_at timestamptz,
    downgrade_at timestamptz,
    ended_at timestamptz,
    reason text CHECK (char_length(reason) <= 500),
    UNIQUE (workspace_id, seq)
);
CREATE UNIQUE INDEX subscriptions_one_live_per_workspace ON public.subscriptions (workspace_id)
    WHERE state IN ('pending', 'active', 'grace');

CREATE TABLE public.subscription_cycles (
    subscription_id uuid NOT NULL REFERENCES public.subscriptions (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    cycle integer NOT NULL CHECK (cycle >= 1),
    attempt integer NOT NULL CHECK (attempt >= 1),
    merchant_order_id text NOT NULL UNIQUE CHECK (merchant_order_id ~ '^[A-Za-z0-9_-]{1,63}$'),
    amount_paise bigint NOT NULL CHECK (amount_paise >= 100),
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL CHECK (period_end > period_start),
    state text NOT NULL CHECK (state IN ('notifying', 'notified', 'redeeming', 'completed', 'failed')),
    phonepe_order_id text,
    redeem_after timestamptz,
    notified_at timestamptz,
    redeemed_at timestamptz,
    completed_at timestamptz,
    failed_at timestamptz,
    error_code text CHECK (char_length(error_code) <= 100),
    invoice_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, cycle, attempt)
);
CREATE UNIQUE INDEX subscription_cycles_one_paid ON public.subscription_cycles (subscription_id, cycle)
    WHERE state = 'completed';

ALTER TABLE public.subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.subscription_cycles ENABLE ROW LEVEL SECURITY;
CREATE POLICY subscriptions_member_read ON public.subscriptions FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY subscription_cycles_member_read ON public.subscription_cycles FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT ON public.subscriptions, public.subscription_cycles TO authenticated;
GRANT ALL ON public.subscriptions, public.subscription_cycles TO service_role;
