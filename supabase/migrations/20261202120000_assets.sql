-- Asset library (issue 11): a workspace's images for visual posts, uploaded by members or generated
-- when none fits a post. The bytes live in the private Storage bucket `MUSE_ASSETS_BUCKET` under
-- `<workspace id>/...`; platforms fetch them through signed URLs. A generated asset carries the key of
-- what it was generated for (a publication, or a campaign's channel and text), unique per workspace, so
-- the same post never pays for a second image.

CREATE TABLE public.assets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    created_by uuid,
    source text NOT NULL CHECK (source IN ('upload', 'generated')),
    storage_path text NOT NULL,
    content_type text NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/webp')),
    byte_size integer NOT NULL CHECK (byte_size > 0),
    width integer NOT NULL CHECK (width > 0),
    height integer NOT NULL CHECK (height > 0),
    sha256 text NOT NULL,
    filename text,
    tags text[] NOT NULL DEFAULT '{}',
    description text NOT NULL DEFAULT '',
    alt_text text NOT NULL DEFAULT '',
    generation_key text,
    prompt text,
    model text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, storage_path)
);
CREATE UNIQUE INDEX assets_generation_key ON public.assets (workspace_id, generation_key)
    WHERE generation_key IS NOT NULL;
CREATE INDEX assets_workspace_recent ON public.assets (workspace_id, created_at DESC, id DESC);

ALTER TABLE public.assets ENABLE ROW LEVEL SECURITY;
CREATE POLICY assets_member_read ON public.assets FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY assets_member_upload ON public.assets FOR INSERT TO authenticated
    WITH CHECK (public.is_workspace_member(workspace_id) AND source = 'upload' AND generation_key IS NULL);
GRANT SELECT, INSERT ON public.assets TO authenticated;
GRANT ALL ON public.assets TO service_role;
