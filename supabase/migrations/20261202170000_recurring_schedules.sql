-- Recurring work (issue 11): a cron in the workspace's timezone plus a move brief template. Each tick of
-- the schedule's QStash schedule starts one move (acting as the member who created the schedule), which
-- pauses for approval as usual. The QStash schedule id is derived from the row id (`muse-schedule-<id>`),
-- so creating, pausing, resuming and deleting are idempotent on both sides.

CREATE TABLE public.recurring_schedules (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    created_by uuid NOT NULL,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 120),
    cron text NOT NULL,
    timezone text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('campaign', 'move')),
    brief jsonb NOT NULL,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    ticks integer NOT NULL DEFAULT 0,
    last_tick_at timestamptz,
    last_campaign_id uuid,
    last_error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recurring_schedules_workspace ON public.recurring_schedules (workspace_id, created_at DESC);

ALTER TABLE public.recurring_schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY recurring_schedules_member_read ON public.recurring_schedules FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY recurring_schedules_member_write ON public.recurring_schedules FOR INSERT TO authenticated
    WITH CHECK (public.is_workspace_member(workspace_id) AND created_by = auth.uid());
CREATE POLICY recurring_schedules_member_update ON public.recurring_schedules FOR UPDATE TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
CREATE POLICY recurring_schedules_member_delete ON public.recurring_schedules FOR DELETE TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON public.recurring_schedules TO authenticated;
GRANT ALL ON public.recurring_schedules TO service_role;
