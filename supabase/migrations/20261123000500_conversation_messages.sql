-- Conversations (chat threads, and a campaign's own history) with their messages kept outside the
-- LangGraph checkpoint: one append-only row per message, so storage grows linearly with turns and a
-- turn reads only the rolling summary and its recent window. The conversation id is the thread id.

CREATE TABLE public.conversations (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    kind text NOT NULL DEFAULT 'chat' CHECK (kind IN ('chat', 'campaign')),
    campaign_id uuid REFERENCES public.campaigns (id) ON DELETE CASCADE,
    summary jsonb NOT NULL DEFAULT '{}'::jsonb,
    summary_through_seq integer NOT NULL DEFAULT -1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, workspace_id)
);
CREATE INDEX conversations_workspace_idx ON public.conversations (workspace_id, created_at DESC);

CREATE TABLE public.conversation_messages (
    conversation_id uuid NOT NULL,
    seq integer NOT NULL CHECK (seq >= 0),
    workspace_id uuid NOT NULL,
    role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content text NOT NULL,
    usage jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq),
    FOREIGN KEY (conversation_id, workspace_id) REFERENCES public.conversations (id, workspace_id) ON DELETE CASCADE
);

ALTER TABLE public.conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.conversation_messages ENABLE ROW LEVEL SECURITY;

CREATE POLICY conversations_member_read ON public.conversations FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY conversation_messages_member_read ON public.conversation_messages FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));

GRANT SELECT ON public.conversations, public.conversation_messages TO authenticated;
