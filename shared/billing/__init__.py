"""GST billing (issue 10): GSTINs, tax on a supply, tax invoices and credit notes, and their PDFs.

Other features call `shared.billing.invoices.issue_invoice` (a payment, tax-inclusive amount) and
`shared.billing.invoices.issue_credit_note` (a refund against an invoice); both are idempotent by their key.
"""
