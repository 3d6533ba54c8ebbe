-- Chat (issue 8): conversation titles, newest-first listing, and a per-workspace knowledge version.
--
-- 1. `conversations.title` (optional, at most 200 characters, set with PATCH) and `last_message_at`
--    (bumped by the trigger below on every stored message), so `GET /api/v1/conversations` lists by
--    recent activity with a keyset cursor on (last_message_at, id).
-- 2. `workspaces.knowledge_version` changes whenever what a knowledge search of the workspace can
--    return changes: a resource becomes ready, a ready resource is edited (title, tags, text, screening)
--    or any resource is deleted. Cached search results are keyed by it (`shared.chat.caches`), so a
--    change makes every older result unreachable. It is bumped by triggers, in the transaction of the
--    change, whichever code path makes it. The value comes from a sequence, so it never repeats, even
--    after an erasure.
-- 3. Members may retitle their workspace's conversations (only `title`); deleting one is the API's
--    job (it checks membership under row-level security, audits, then removes the rows as the service).

ALTER TABLE public.conversations
    ADD COLUMN title text CHECK (title IS NULL OR char_length(title) BETWEEN 1 AND 200),
    ADD COLUMN last_message_at timestamptz;
UPDATE public.conversations c SET last_message_at = coalesce(
    (SELECT max(m.created_at) FROM public.conversation_messages m WHERE m.conversation_id = c.id), c.created_at);
ALTER TABLE public.conversations ALTER COLUMN last_message_at SET DEFAULT now(),
    ALTER COLUMN last_message_at SET NOT NULL;
CREATE INDEX conversations_workspace_recent_idx
    ON public.conversations (workspace_id, last_message_at DESC, id DESC);

CREATE FUNCTION public.conversation_touched() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    UPDATE public.conversations c SET last_message_at = greatest(c.last_message_at, n.at)
    FROM (SELECT conversation_id, max(created_at) AS at FROM new_rows GROUP BY conversation_id) n
    WHERE c.id = n.conversation_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversation_messages_touch AFTER INSERT ON public.conversation_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.conversation_touched();

GRANT UPDATE (title) ON public.conversations TO authenticated;
CREATE POLICY conversations_member_update ON public.conversations FOR UPDATE TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));

CREATE SEQUENCE public.knowledge_version_seq;
ALTER TABLE public.workspaces ADD COLUMN knowledge_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION public.knowledge_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE public.workspaces w SET knowledge_version = nextval('public.knowledge_version_seq')
        WHERE w.id IN (SELECT DISTINCT workspace_id FROM old_rows);
    ELSE
        UPDATE public.workspaces w SET knowledge_version = nextval('public.knowledge_version_seq')
        WHERE w.id IN (
            SELECT DISTINCT n.workspace_id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status = 'ready' OR o.status = 'ready');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER knowledge_documents_version_update AFTER UPDATE ON public.knowledge_documents
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION public.knowledge_changed();
CREATE TRIGGER knowledge_documents_version_delete AFTER DELETE ON public.knowledge_documents
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION public.knowledge_changed();
REVOKE ALL ON FUNCTION public.knowledge_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.conversation_touched() FROM PUBLIC;
