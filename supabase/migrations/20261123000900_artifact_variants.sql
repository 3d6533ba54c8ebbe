-- A/B variants: a campaign may produce several variants of each channel's copy.
ALTER TABLE public.artifacts ADD COLUMN variant text NOT NULL DEFAULT 'a' CHECK (variant ~ '^[a-z]$');
ALTER TABLE public.artifacts DROP CONSTRAINT artifacts_campaign_id_channel_key;
ALTER TABLE public.artifacts ADD CONSTRAINT artifacts_campaign_channel_variant_key UNIQUE (campaign_id, channel, variant);
-- Usage of every model call, per node and campaign.
CREATE TABLE public.model_usage (
    id bigserial PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES public.campaigns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    node text NOT NULL,
    model text NOT NULL,
    prompt_tokens integer NOT NULL DEFAULT 0,
    cached_tokens integer NOT NULL DEFAULT 0,
    output_tokens integer NOT NULL DEFAULT 0,
    thinking_tokens integer NOT NULL DEFAULT 0,
    fallbacks integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_usage_campaign_idx ON public.model_usage (campaign_id);
ALTER TABLE public.model_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_usage_member_read ON public.model_usage FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT ON public.model_usage TO authenticated;
GRANT ALL ON public.model_usage TO service_role;
GRANT ALL ON SEQUENCE public.model_usage_id_seq TO service_role;
