-- GST invoices (issue 10, shared.billing): a workspace's billing profile, tax invoices, credit notes and the
-- gapless number series they draw from.
--
-- Numbers come from `invoice_series`: one counter row per (supplier GSTIN, series, financial year), locked
-- FOR UPDATE and advanced in the transaction that inserts the document, so a rolled-back transaction leaves
-- no gap and two concurrent ones get consecutive numbers. One invoice per payment (`payment_ref` unique),
-- one credit note per refund (`refund_id` unique). Invoices and credit notes are tax records: a workspace's
-- erasure keeps them (shared.db.workspace_data.RETAINED_TABLES) and nobody may update their figures or
-- delete them; only the rendered PDF's path is filled in later. Members read their workspace's rows; only
-- the service writes (the API checks the caller's role before writing a profile).

CREATE TABLE public.billing_profiles (
    workspace_id uuid PRIMARY KEY REFERENCES public.workspaces (id) ON DELETE CASCADE,
    legal_name text NOT NULL CHECK (char_length(legal_name) BETWEEN 1 AND 200),
    address text NOT NULL CHECK (char_length(address) BETWEEN 1 AND 500),
    country text NOT NULL DEFAULT 'IN' CHECK (country ~ '^[A-Z]{2}$'),
    state_code text CHECK (state_code ~ '^[0-9]{2}$'),
    gstin text CHECK (gstin ~ '^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$'),
    email text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    CHECK ((country = 'IN') = (state_code IS NOT NULL)),
    CHECK (gstin IS NULL OR (country = 'IN' AND substr(gstin, 1, 2) = state_code))
);

CREATE TABLE public.invoice_series (
    supplier_gstin text NOT NULL,
    series text NOT NULL CHECK (series IN ('invoice', 'credit_note')),
    financial_year text NOT NULL CHECK (financial_year ~ '^[0-9]{4}-[0-9]{2}$'),
    last_number integer NOT NULL DEFAULT 0 CHECK (last_number >= 0),
    PRIMARY KEY (supplier_gstin, series, financial_year)
);

CREATE TABLE public.invoices (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE RESTRICT,
    payment_ref text NOT NULL UNIQUE CHECK (char_length(payment_ref) BETWEEN 1 AND 200),
    kind text NOT NULL CHECK (kind IN ('campaign', 'subscription')),
    campaign_id uuid REFERENCES public.campaigns (id) ON DELETE SET NULL,
    supplier_gstin text NOT NULL,
    financial_year text NOT NULL,
    seq integer NOT NULL CHECK (seq > 0),
    number text NOT NULL CHECK (number ~ '^[A-Z1-9][A-Z0-9/-]{0,15}$'),
    issued_at timestamptz NOT NULL,
    invoice_date date NOT NULL,
    supplier jsonb NOT NULL,
    recipient jsonb NOT NULL,
    place_of_supply text,
    supply_type text NOT NULL CHECK (supply_type IN ('intra_state', 'inter_state', 'export_lut', 'export_igst')),
    description text NOT NULL,
    sac text NOT NULL,
    rate_percent numeric(5, 2) NOT NULL,
    taxable_paise bigint NOT NULL CHECK (taxable_paise >= 0),
    cgst_paise bigint NOT NULL CHECK (cgst_paise >= 0),
    sgst_paise bigint NOT NULL CHECK (sgst_paise >= 0),
    igst_paise bigint NOT NULL CHECK (igst_paise >= 0),
    total_paise bigint NOT NULL CHECK (total_paise > 0),
    total_in_words text NOT NULL,
    pdf_path text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (supplier_gstin, number),
    UNIQUE (supplier_gstin, financial_year, seq),
    CHECK (taxable_paise + cgst_paise + sgst_paise + igst_paise = total_paise)
);
CREATE INDEX invoices_workspace_idx ON public.invoices (workspace_id, issued_at DESC, id DESC);

CREATE TABLE public.credit_notes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    invoice_id uuid NOT NULL REFERENCES public.invoices (id) ON DELETE RESTRICT,
    workspace_id uuid NOT NULL REFERENCES public.workspaces (id) ON DELETE RESTRICT,
    refund_id text NOT NULL UNIQUE CHECK (char_length(refund_id) BETWEEN 1 AND 200),
    supplier_gstin text NOT NULL,
    financial_year text NOT NULL,
    seq integer NOT NULL CHECK (seq > 0),
    number text NOT NULL CHECK (number ~ '^[A-Z1-9][A-Z0-9/-]{0,15}$'),
    issued_at timestamptz NOT NULL,
    note_date date NOT NULL,
    reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    taxable_paise bigint NOT NULL CHECK (taxable_paise >= 0),
    cgst_paise bigint NOT NULL CHECK (cgst_paise >= 0),
    sgst_paise bigint NOT NULL CHECK (sgst_paise >= 0),
    igst_paise bigint NOT NULL CHECK (igst_paise >= 0),
    total_paise bigint NOT NULL CHECK (total_paise > 0),
    total_in_words text NOT NULL,
    pdf_path text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (supplier_gstin, number),
    UNIQUE (supplier_gstin, financial_year, seq),
    CHECK (taxable_paise + cgst_paise + sgst_paise + igst_paise = total_paise)
);
CREATE INDEX credit_notes_invoice_idx ON public.credit_notes (invoice_id);

-- A tax document's figures never change and it is never deleted. Only its PDF's path is filled in, and an
-- invoice's campaign link is cleared when the workspace's campaigns are erased (ON DELETE SET NULL).
CREATE FUNCTION public.tax_document_guard() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public AS $$
DECLARE
    before_row jsonb;
    after_row jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '% rows are tax records and are never deleted', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    before_row := to_jsonb(OLD);
    after_row := to_jsonb(NEW);
    IF (after_row - 'pdf_path' - 'campaign_id') IS DISTINCT FROM (before_row - 'pdf_path' - 'campaign_id')
        OR (after_row -> 'campaign_id' IS DISTINCT FROM before_row -> 'campaign_id'
            AND after_row -> 'campaign_id' <> 'null'::jsonb) THEN
        RAISE EXCEPTION '% rows are tax records: only pdf_path may change', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON public.invoices
    FOR EACH ROW EXECUTE FUNCTION public.tax_document_guard();
CREATE TRIGGER credit_notes_guard BEFORE UPDATE OR DELETE ON public.credit_notes
    FOR EACH ROW EXECUTE FUNCTION public.tax_document_guard();

ALTER TABLE public.billing_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.invoice_series ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.credit_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY billing_profiles_member_read ON public.billing_profiles FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY invoices_member_read ON public.invoices FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
CREATE POLICY credit_notes_member_read ON public.credit_notes FOR SELECT TO authenticated
    USING (public.is_workspace_member(workspace_id));
GRANT SELECT ON public.billing_profiles, public.invoices, public.credit_notes TO authenticated;
GRANT ALL ON public.billing_profiles, public.invoice_series, public.invoices, public.credit_notes TO service_role;
