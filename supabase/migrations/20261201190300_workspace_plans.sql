-- Plan tiers (issue 9): each workspace's tier (free / pro / agency, figures in shared/plans/tiers.py).
--
-- A workspace without a row is on the deployment's default tier (`MUSE_PLAN_DEFAULT_TIER`, free).
-- Billing (issue 10, UPI Autopay) sets the tier through `shared.plans.set_workspace_tier`, which records
-- `plan.changed` in the audit log. A plan's period is the calendar month (UTC), the period the spend
-- ledger keeps (`spend_periods`); the AI credits it used are that spend, so spend is tracked in one
-- place only. Members may read their workspace's plan; only the service writes it.

CREATE TABLE public.workspace_plans (
    workspace_id uuid PRIMARY KEY REFERENCES public.workspaces (id) ON DELETE CASCADE,
    tier text NOT NULL CHECK (tier IN ('free', 'pro', 'agency')),
    since timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);

ALTER TABLE public.workspace_plans ENABLE ROW LEVEL SECURITY;
CREATE POLICY workspace_plans_member_read ON public.workspace_plans FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT ON public.workspace_plans TO authenticated;
GRANT ALL ON public.workspace_plans TO service_role;
