-- Knowledge base v2: resources ingested as chained steps, hybrid search, and embeddings of any model.
--
-- Embeddings leave `knowledge_chunks` for `knowledge_embeddings`, keyed by (chunk, model), where `model`
-- is `<model name>@<dimensions>` and the column is an untyped `vector`. Switching the embedding model then
-- never changes the schema: the new model's vectors are added next to the old ones (re-embedding), search
-- reads only the configured model's rows, and the old rows are pruned after the switch. Each model gets a
-- partial HNSW index over `embedding::vector(<dims>)` (pgvector 0.6 indexes need a fixed dimension); the
-- search casts the same way, so the planner uses it. `shared.db.knowledge.ensure_vector_index` creates the
-- index of a model that is not listed below.

ALTER TABLE public.knowledge_documents
    ADD COLUMN kind text NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'markdown', 'html', 'pdf', 'url')),
    ADD COLUMN status text NOT NULL DEFAULT 'ready' CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    ADD COLUMN error text,
    ADD COLUMN storage_path text,
    ADD COLUMN content_type text,
    ADD COLUMN byte_size bigint,
    ADD COLUMN chunk_count integer NOT NULL DEFAULT 0,
    ADD COLUMN created_by uuid,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE public.knowledge_documents ALTER COLUMN status SET DEFAULT 'queued', ALTER COLUMN content SET DEFAULT '';
UPDATE public.knowledge_documents SET kind = source WHERE source IN ('text', 'markdown', 'html', 'pdf', 'url');
UPDATE public.knowledge_documents d
    SET chunk_count = (SELECT count(*) FROM public.knowledge_chunks c WHERE c.document_id = d.id);
CREATE INDEX knowledge_documents_workspace_idx ON public.knowledge_documents (workspace_id, created_at DESC);
CREATE INDEX knowledge_documents_tags_idx ON public.knowledge_documents USING gin (tags);

-- Chunks keep their place in the document (for citations) and the document title (weighted in full text).
ALTER TABLE public.knowledge_chunks
    ADD COLUMN heading text NOT NULL DEFAULT '',
    ADD COLUMN char_start integer,
    ADD COLUMN char_end integer,
    ADD COLUMN page integer;
UPDATE public.knowledge_chunks c SET heading = d.title FROM public.knowledge_documents d WHERE d.id = c.document_id;

CREATE TABLE public.knowledge_embeddings (
    chunk_id bigint NOT NULL REFERENCES public.knowledge_chunks (id) ON DELETE CASCADE,
    model text NOT NULL CHECK (model ~ '^[A-Za-z0-9._:/-]+@[0-9]{1,5}$'),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE CASCADE,
    embedding vector NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chunk_id, model),
    CONSTRAINT knowledge_embeddings_dimensions CHECK (vector_dims(embedding) = split_part(model, '@', 2)::integer)
);
CREATE INDEX knowledge_embeddings_workspace_idx ON public.knowledge_embeddings (workspace_id, model);
-- The vectors written so far came from the default configuration (gemini-embedding-001 at 768 dimensions).
INSERT INTO public.knowledge_embeddings (chunk_id, model, workspace_id, embedding)
    SELECT id, 'gemini-embedding-001@768', workspace_id, embedding FROM public.knowledge_chunks;
DROP INDEX public.knowledge_chunks_embedding_idx;
ALTER TABLE public.knowledge_chunks DROP COLUMN embedding;

CREATE INDEX knowledge_embeddings_hnsw_gemini_embedding_001_768 ON public.knowledge_embeddings
    USING hnsw ((embedding::vector(768)) vector_cosine_ops) WHERE model = 'gemini-embedding-001@768';
CREATE INDEX knowledge_embeddings_hnsw_multilingual_e5_small_384 ON public.knowledge_embeddings
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE model = 'multilingual-e5-small@384';

-- Full text: English stemming (other scripts such as Devanagari pass through unstemmed), title weighted A.
ALTER TABLE public.knowledge_chunks DROP COLUMN fts;
ALTER TABLE public.knowledge_chunks ADD COLUMN fts tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', heading), 'A') || setweight(to_tsvector('english', content), 'B')
) STORED;
CREATE INDEX knowledge_chunks_fts_idx ON public.knowledge_chunks USING gin (fts);

ALTER TABLE public.knowledge_embeddings ENABLE ROW LEVEL SECURITY;
CREATE POLICY embeddings_member ON public.knowledge_embeddings FOR ALL TO authenticated
    USING (public.is_workspace_member(workspace_id)) WITH CHECK (public.is_workspace_member(workspace_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON public.knowledge_embeddings TO authenticated;
GRANT ALL ON public.knowledge_embeddings TO service_role;

-- Members create resources and may retitle or retag them; status, text and counts belong to the pipeline.
REVOKE INSERT, UPDATE ON public.knowledge_documents FROM authenticated;
GRANT INSERT (id, workspace_id, title, kind, source, tags, storage_path, content_type, byte_size, created_by)
    ON public.knowledge_documents TO authenticated;
GRANT UPDATE (title, tags) ON public.knowledge_documents TO authenticated;
