-- `POST /api/v1/campaigns` with an `Idempotency-Key`: the key is stored with a SHA-256 fingerprint of the
-- canonical request body, so a retry with the same body replays the first answer while the same key with a
-- different body is refused (422), as payment APIs do. Rows created before this column have none and replay.

ALTER TABLE public.campaigns ADD COLUMN idempotency_fingerprint text
    CHECK (idempotency_fingerprint IS NULL OR idempotency_fingerprint ~ '^[0-9a-f]{64}$');
GRANT INSERT (idempotency_fingerprint) ON public.campaigns TO authenticated;
