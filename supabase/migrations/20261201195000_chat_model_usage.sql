-- Chat turns' model calls (issue 9): recorded in `model_usage` like a campaign's, without a campaign.
-- A call recorded when its spend reservation settles is keyed by that reservation, so it is never recorded twice.
ALTER TABLE public.model_usage ALTER COLUMN campaign_id DROP NOT NULL;
ALTER TABLE public.model_usage ADD COLUMN reservation_id uuid UNIQUE;
