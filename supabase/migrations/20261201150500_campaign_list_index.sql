-- `GET /api/v1/campaigns` pages a workspace's campaigns newest first with a keyset cursor on
-- (created_at, id): this index serves both the order and the `(created_at, id) < cursor` bound, so a
-- page costs one index range scan however deep it is. It supersedes the (workspace_id, created_at DESC) one.

CREATE INDEX campaigns_workspace_recent_idx ON public.campaigns (workspace_id, created_at DESC, id DESC);
DROP INDEX public.campaigns_workspace_idx;
