-- Prompt-injection findings of ingested knowledge (issue 7: untrusted text stays data).
--
-- The ingest step scans every chunk (patterns, then the fast-tier classifier for borderline ones) in the
-- transaction that saves the chunks: `knowledge_documents.risk` keeps the document's level and findings
-- (rule, reason, chunk and character span in the extracted text) for `GET /api/v1/knowledge/{id}`, and
-- `knowledge_chunks.injection_flagged` marks the chunks agents' knowledge search never returns. Both
-- belong to the pipeline: members read them (existing row-level security) but cannot write them.

ALTER TABLE public.knowledge_documents ADD COLUMN risk jsonb;
ALTER TABLE public.knowledge_chunks ADD COLUMN injection_flagged boolean NOT NULL DEFAULT false;
CREATE INDEX knowledge_chunks_injection_flagged_idx ON public.knowledge_chunks (document_id) WHERE injection_flagged;

-- Chunks are written by the ingest step only; members keep reading and deleting them (with their resource).
REVOKE INSERT, UPDATE ON public.knowledge_chunks FROM authenticated;
