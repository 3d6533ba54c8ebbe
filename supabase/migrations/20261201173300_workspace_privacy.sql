-- A workspace's personal-data policy (India's DPDP Act): what happens to Aadhaar numbers, PANs, mobile numbers,
-- emails, card numbers and UPI ids found in what Muse stores for it (ingested knowledge, memory facts).
-- No row means the default: everything redacted. `overrides` maps a kind to its own mode.

CREATE TABLE public.workspace_privacy (
    workspace_id uuid PRIMARY KEY REFERENCES public.workspaces (id) ON DELETE CASCADE,
    mode text NOT NULL DEFAULT 'redact' CHECK (mode IN ('redact', 'mask', 'allow')),
    overrides jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (
        jsonb_typeof(overrides) = 'object'
        AND overrides - ARRAY['aadhaar', 'pan', 'phone', 'email', 'card', 'upi'] = '{}'::jsonb
        AND NOT jsonb_path_exists(overrides,
                                  '$.* ? (@.type() != "string" || !(@ == "redact" || @ == "mask" || @ == "allow"))')
    ),
    version integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_by uuid,
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE public.workspace_privacy ENABLE ROW LEVEL SECURITY;

-- Members read and change their workspace's policy; the functions read it as the service.
CREATE POLICY workspace_privacy_member ON public.workspace_privacy FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));

GRANT SELECT, INSERT, UPDATE ON public.workspace_privacy TO authenticated;
GRANT ALL ON public.workspace_privacy TO service_role;
