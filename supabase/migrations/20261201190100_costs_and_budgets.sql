-- Money (issue 9): the cost of every call, AI-spend caps, and an atomic reserve-then-settle ledger.
--
-- Costs are integer micro-USD priced from shared/models/prices.json (NULL: the model has no price).
-- A cap is checked before each model or tool call by reserving the call's worst-case cost, in one
-- transaction that locks the workspace's period row, then the campaign's row (always in that order):
-- concurrent campaigns of a workspace queue on the period row, so their reservations together never
-- pass a cap. After the call the reservation is settled at the actual cost (once: keyed by id).
-- Members read their workspace's figures; only the service writes them (the API audits cap changes).

ALTER TABLE public.model_usage ADD COLUMN cost_micro_usd bigint CHECK (cost_micro_usd >= 0);
CREATE INDEX model_usage_workspace_time_idx ON public.model_usage (workspace_id, created_at);

-- Paid tool calls, written when their reservation settles (keyed by it, so never twice).
CREATE TABLE public.tool_usage (
    id bigserial PRIMARY KEY,
    reservation_id uuid UNIQUE,
    campaign_id uuid REFERENCES public.campaigns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    node text NOT NULL,
    tool text NOT NULL,
    vendor text NOT NULL,
    credits numeric(12, 3) NOT NULL DEFAULT 0 CHECK (credits >= 0),
    cached boolean NOT NULL DEFAULT false,
    cost_micro_usd bigint CHECK (cost_micro_usd >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tool_usage_campaign_idx ON public.tool_usage (campaign_id);
CREATE INDEX tool_usage_workspace_time_idx ON public.tool_usage (workspace_id, created_at);

-- Caps per workspace (NULL: the deployment's default from settings).
CREATE TABLE public.budgets (
    workspace_id uuid PRIMARY KEY REFERENCES public.workspaces (id) ON DELETE CASCADE,
    monthly_cap_micro_usd bigint CHECK (monthly_cap_micro_usd >= 0),
    campaign_cap_micro_usd bigint CHECK (campaign_cap_micro_usd >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A workspace's spend in one calendar month (UTC): settled and still reserved.
CREATE TABLE public.spend_periods (
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    period date NOT NULL CHECK (extract(day FROM period) = 1),
    spent_micro_usd bigint NOT NULL DEFAULT 0,
    reserved_micro_usd bigint NOT NULL DEFAULT 0 CHECK (reserved_micro_usd >= 0),
    PRIMARY KEY (workspace_id, period)
);

-- A campaign's spend and its own cap (NULL: the workspace's campaign cap).
CREATE TABLE public.campaign_spend (
    campaign_id uuid PRIMARY KEY REFERENCES public.campaigns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    cap_micro_usd bigint CHECK (cap_micro_usd >= 0),
    spent_micro_usd bigint NOT NULL DEFAULT 0,
    reserved_micro_usd bigint NOT NULL DEFAULT 0 CHECK (reserved_micro_usd >= 0)
);

-- Kept by a workspace's data erasure with `spend_periods` (ids and amounts only): erasing them would hand the
-- month's spend back; a campaign erased meanwhile leaves its open reservations to settle against the month.
CREATE TABLE public.spend_reservations (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    campaign_id uuid REFERENCES public.campaigns (id) ON DELETE SET NULL,
    period date NOT NULL,
    amount_micro_usd bigint NOT NULL CHECK (amount_micro_usd >= 0),
    actual_micro_usd bigint CHECK (actual_micro_usd >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    settled_at timestamptz
);
CREATE INDEX spend_reservations_open_idx ON public.spend_reservations (created_at) WHERE settled_at IS NULL;

-- Reserve `p_amount` against the workspace's month and the campaign (if any), or refuse naming the cap.
CREATE FUNCTION public.reserve_spend(p_id uuid, p_workspace uuid, p_campaign uuid, p_period date, p_amount bigint,
                                     p_default_monthly bigint, p_default_campaign bigint)
RETURNS TABLE (ok boolean, scope text, cap bigint, spent bigint, reserved bigint)
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
    ws_cap bigint;
    c_cap bigint;
    s bigint;
    r bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM public.spend_reservations x WHERE x.id = p_id) THEN
        RETURN QUERY SELECT true, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    SELECT b.monthly_cap_micro_usd, b.campaign_cap_micro_usd INTO ws_cap, c_cap
    FROM public.budgets b WHERE b.workspace_id = p_workspace;
    ws_cap := coalesce(ws_cap, p_default_monthly);
    c_cap := coalesce(c_cap, p_default_campaign);
    INSERT INTO public.spend_periods AS sp (workspace_id, period) VALUES (p_workspace, p_period)
        ON CONFLICT (workspace_id, period) DO NOTHING;
    SELECT sp.spent_micro_usd, sp.reserved_micro_usd INTO s, r FROM public.spend_periods sp
    WHERE sp.workspace_id = p_workspace AND sp.period = p_period FOR UPDATE;
    IF ws_cap IS NOT NULL AND s + r + p_amount > ws_cap THEN
        RETURN QUERY SELECT false, 'workspace'::text, ws_cap, s, r;
        RETURN;
    END IF;
    IF p_campaign IS NOT NULL THEN
        INSERT INTO public.campaign_spend AS cs (campaign_id, workspace_id) VALUES (p_campaign, p_workspace)
            ON CONFLICT (campaign_id) DO NOTHING;
        SELECT coalesce(cs.cap_micro_usd, c_cap), cs.spent_micro_usd, cs.reserved_micro_usd INTO c_cap, s, r
        FROM public.campaign_spend cs WHERE cs.campaign_id = p_campaign FOR UPDATE;
        IF c_cap IS NOT NULL AND s + r + p_amount > c_cap THEN
            RETURN QUERY SELECT false, 'campaign'::text, c_cap, s, r;
            RETURN;
        END IF;
        UPDATE public.campaign_spend cs SET reserved_micro_usd = cs.reserved_micro_usd + p_amount
        WHERE cs.campaign_id = p_campaign;
    END IF;
    UPDATE public.spend_periods sp SET reserved_micro_usd = sp.reserved_micro_usd + p_amount
    WHERE sp.workspace_id = p_workspace AND sp.period = p_period;
    INSERT INTO public.spend_reservations (id, workspace_id, campaign_id, period, amount_micro_usd)
    VALUES (p_id, p_workspace, p_campaign, p_period, p_amount);
    RETURN QUERY SELECT true, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint;
END $$;

-- Settle a reservation at the actual cost (NULL: keep the reserved amount as spent); false if already settled.
CREATE FUNCTION public.settle_spend(p_id uuid, p_actual bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
    res public.spend_reservations;
    actual bigint;
BEGIN
    UPDATE public.spend_reservations x SET settled_at = now(),
        actual_micro_usd = coalesce(p_actual, x.amount_micro_usd)
    WHERE x.id = p_id AND x.settled_at IS NULL RETURNING x.* INTO res;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    actual := res.actual_micro_usd;
    UPDATE public.spend_periods sp SET reserved_micro_usd = sp.reserved_micro_usd - res.amount_micro_usd,
        spent_micro_usd = sp.spent_micro_usd + actual
    WHERE sp.workspace_id = res.workspace_id AND sp.period = res.period;
    IF res.campaign_id IS NOT NULL THEN
        UPDATE public.campaign_spend cs SET reserved_micro_usd = cs.reserved_micro_usd - res.amount_micro_usd,
            spent_micro_usd = cs.spent_micro_usd + actual
        WHERE cs.campaign_id = res.campaign_id;
    END IF;
    RETURN true;
END $$;

REVOKE ALL ON FUNCTION public.reserve_spend(uuid, uuid, uuid, date, bigint, bigint, bigint) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION public.settle_spend(uuid, bigint) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.reserve_spend(uuid, uuid, uuid, date, bigint, bigint, bigint) TO service_role;
GRANT EXECUTE ON FUNCTION public.settle_spend(uuid, bigint) TO service_role;

ALTER TABLE public.tool_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.spend_periods ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.campaign_spend ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.spend_reservations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tool_usage_member_read ON public.tool_usage FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY budgets_member_read ON public.budgets FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY spend_periods_member_read ON public.spend_periods FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY campaign_spend_member_read ON public.campaign_spend FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT ON public.tool_usage, public.budgets, public.spend_periods, public.campaign_spend TO authenticated;
GRANT ALL ON public.tool_usage, public.budgets, public.spend_periods, public.campaign_spend,
    public.spend_reservations TO service_role;
GRANT ALL ON SEQUENCE public.tool_usage_id_seq TO service_role;
