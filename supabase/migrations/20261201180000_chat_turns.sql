-- Durable chat turns (issue 8). A turn runs in a worker thread of the chat function, holding its
-- conversation's one running slot (a partial unique index: a second turn while one runs is refused
-- atomically, so histories never fork) under a lease it renews while it runs. Every event the turn
-- emits is a row of `chat_events`, committed as it happens: a client that disconnects reconnects
-- with `Last-Event-ID` and gets the rest. A turn whose process died (lease expired) is marked failed
-- with a retryable `error` event by the sweeper or by the next request on the conversation.

CREATE TABLE public.chat_turns (
    id uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    lease_until timestamptz NOT NULL,
    deadline timestamptz NOT NULL,
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    FOREIGN KEY (conversation_id, workspace_id) REFERENCES public.conversations (id, workspace_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX chat_turns_one_running_idx ON public.chat_turns (conversation_id) WHERE status = 'running';
CREATE INDEX chat_turns_running_lease_idx ON public.chat_turns (lease_until) WHERE status = 'running';
CREATE INDEX chat_turns_conversation_idx ON public.chat_turns (conversation_id, started_at DESC);

CREATE TABLE public.chat_events (
    id bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL,
    turn_id uuid NOT NULL REFERENCES public.chat_turns (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    kind text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (conversation_id, workspace_id) REFERENCES public.conversations (id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX chat_events_conversation_idx ON public.chat_events (conversation_id, id);
CREATE INDEX chat_events_turn_idx ON public.chat_events (turn_id, id);

ALTER TABLE public.chat_turns ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.chat_events ENABLE ROW LEVEL SECURITY;

CREATE POLICY chat_turns_member_read ON public.chat_turns FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY chat_events_member_read ON public.chat_events FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));

REVOKE ALL ON public.chat_turns, public.chat_events FROM anon;
GRANT SELECT ON public.chat_turns, public.chat_events TO authenticated;
GRANT ALL ON public.chat_turns, public.chat_events TO service_role;
GRANT ALL ON SEQUENCE public.chat_events_id_seq TO service_role;
