"""Tax invoices and credit notes on real Postgres: exact paise, one document per payment or refund under
duplicates and concurrency, gapless consecutive numbers, the financial-year rollover, and the payment hook.

Each test invoices as its own supplier (a fresh valid GSTIN), so its number series starts at 1 whatever
else the session's database holds.
"""

from __future__ import annotations

import random
import string
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from shared.api.models import Decision
from shared.billing.gstin import check_character
from shared.billing.invoices import PaymentInvoicing, financial_year, issue_credit_note, issue_invoice
from shared.db import billing as bdb
from shared.db import workspace_data as wdb
from shared.db.payments import Payment, PaymentRepository
from shared.db.pool import as_service, connect
from shared.db.workspaces import ensure_workspace
from shared.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from shared.payments.confirmation import reconcile_message
from shared.settings import Settings
from tests.integration.harness import Harness, make_settings


def gstin(state: str) -> str:
    """A fresh valid GSTIN in `state` (random PAN, computed check character)."""
    letters = "".join(random.choices(string.ascii_uppercase, k=5))
    first14 = f"{state}{letters}{random.randint(1000, 9999)}{random.choice(string.ascii_uppercase)}1Z"
    return first14 + check_character(first14)


@pytest.fixture
def settings(migrated_dsn: str) -> Settings:
    """A Karnataka supplier of its own, without a Letter of Undertaking."""
    return make_settings(migrated_dsn, MUSE_GST_SUPPLIER_GSTIN=gstin("29"))


def this_year() -> str:
    """The current financial year as invoice numbers spell it (`26-27`)."""
    year = financial_year(datetime.now(UTC))
    return f"{year[2:4]}-{year[5:7]}"


def workspace(pool: ConnectionPool, **profile: Any) -> str:
    """A new workspace, with a billing profile when `profile` names one."""
    with as_service(pool) as conn:
        workspace_id = ensure_workspace(conn, slug=f"ws-{uuid.uuid4().hex[:10]}", name="Acme Stores",
                                        user_id=str(uuid.uuid4()))
        if profile:
            bdb.put_profile(conn, workspace_id=workspace_id,
                            legal_name=profile.get("legal_name", "Acme Stores Pvt Ltd"),
                            address=profile.get("address", "1 Anna Salai, Chennai"),
                            country=profile.get("country", "IN"), state_code=profile.get("state_code"),
                            gstin=profile.get("gstin"), email="accounts@acme.example", actor="system")
    return workspace_id


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` in `count` threads released at once; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


class TestTaxOnTheInvoice:
    def test_same_state_buyer_pays_cgst_and_sgst(self, pool: ConnectionPool, settings: Settings) -> None:
        """A Karnataka GSTIN buying from a Karnataka supplier: CGST + SGST, exact paise, words, first number."""
        buyer = gstin("29")
        ws = workspace(pool, state_code="29", gstin=buyer)
        invoice = issue_invoice(pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=11_800_050,
                                description="Diwali campaign", kind="campaign", settings=settings,
                                at=datetime(2026, 12, 1, 9, tzinfo=UTC))
        assert invoice["number"] == "INV/26-27/000001" and invoice["financial_year"] == "2026-27"
        assert invoice["supply_type"] == "intra_state" and invoice["place_of_supply"] == "29"
        assert (invoice["taxable_paise"], invoice["cgst_paise"], invoice["sgst_paise"], invoice["igst_paise"],
                invoice["total_paise"]) == (10_000_042, 900_004, 900_004, 0, 11_800_050)
        assert invoice["total_in_words"] == "Rupees One Lakh Eighteen Thousand and Fifty Paise Only"
        assert invoice["recipient"]["gstin"] == buyer and invoice["supplier"]["gstin"] == settings.gst_supplier_gstin
        assert invoice["sac"] == "998361"

    def test_other_state_buyer_pays_igst(self, pool: ConnectionPool, settings: Settings) -> None:
        """The GSTIN's state (Maharashtra) is the place of supply even with an address elsewhere on file."""
        ws = workspace(pool, state_code="27", gstin="27AAPFU0939F1ZV")
        invoice = issue_invoice(pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=100_001,
                                description="Launch", kind="campaign", settings=settings)
        assert invoice["supply_type"] == "inter_state" and invoice["place_of_supply"] == "27"
        assert (invoice["taxable_paise"], invoice["cgst_paise"], invoice["sgst_paise"], invoice["igst_paise"]) == (
            84_747, 0, 0, 15_254)

    def test_unregistered_buyer_is_taxed_by_state_on_record_or_the_suppliers(self, pool: ConnectionPool,
                                                                          settings: Settings) -> None:
        """B2C in Tamil Nadu → IGST; a workspace with no profile at all → the supplier's state, CGST + SGST."""
        tamil = issue_invoice(pool, workspace(pool, state_code="33"), payment_ref=f"P-{uuid.uuid4().hex}",
                              amount_paise=99_999, description="Pongal", kind="campaign", settings=settings)
        assert (tamil["supply_type"], tamil["place_of_supply"], tamil["igst_paise"]) == ("inter_state", "33", 15_254)
        bare = issue_invoice(pool, workspace(pool), payment_ref=f"P-{uuid.uuid4().hex}", amount_paise=99_999,
                             description="Pongal", kind="subscription", settings=settings)
        assert (bare["supply_type"], bare["place_of_supply"], bare["cgst_paise"], bare["sgst_paise"]) == (
            "intra_state", "29", 7_627, 7_627)
        assert bare["recipient"]["legal_name"] == "Acme Stores" and bare["recipient"]["gstin"] is None

    def test_foreign_customer_is_an_export(self, pool: ConnectionPool, migrated_dsn: str) -> None:
        """Under a LUT: zero-rated, no tax at all; without one: IGST paid on the export."""
        lut = make_settings(migrated_dsn, MUSE_GST_SUPPLIER_GSTIN=gstin("29"), MUSE_GST_LUT_ARN="AD290326000123X",
                            MUSE_GST_LUT_DATE="2026-04-01")
        ws = workspace(pool, country="US", address="1 Market St, San Francisco")
        zero = issue_invoice(pool, ws, payment_ref=f"P-{uuid.uuid4().hex}", amount_paise=100_001,
                             description="Campaign", kind="campaign", settings=lut)
        assert (zero["supply_type"], zero["place_of_supply"], zero["taxable_paise"], zero["igst_paise"]) == (
            "export_lut", None, 100_001, 0)
        assert zero["supplier"]["lut_arn"] == "AD290326000123X"
        paid = issue_invoice(pool, ws, payment_ref=f"P-{uuid.uuid4().hex}", amount_paise=100_001,
                             description="Campaign", kind="campaign",
                             settings=make_settings(migrated_dsn, MUSE_GST_SUPPLIER_GSTIN=gstin("29")))
        assert (paid["supply_type"], paid["igst_paise"]) == ("export_igst", 15_254)


class TestOncePerPayment:
    def test_a_repeated_call_returns_the_same_invoice(self, pool: ConnectionPool, settings: Settings) -> None:
        ws = workspace(pool)
        ref = f"MUSE-{uuid.uuid4().hex}"
        first = issue_invoice(pool, ws, payment_ref=ref, amount_paise=50_000, description="x", kind="campaign",
                              settings=settings)
        again = issue_invoice(pool, ws, payment_ref=ref, amount_paise=50_000, description="x", kind="campaign",
                              settings=settings)
        assert again == first
        with pytest.raises(Conflict):
            issue_invoice(pool, ws, payment_ref=ref, amount_paise=60_000, description="x", kind="campaign",
                          settings=settings)
        nxt = issue_invoice(pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=50_000,
                            description="x", kind="campaign", settings=settings)
        assert nxt["seq"] == first["seq"] + 1

    def test_concurrent_calls_for_one_payment_issue_one_invoice(self, pool: ConnectionPool,
                                                                settings: Settings) -> None:
        """Eight threads at once for one payment: one invoice, one number used."""
        ws = workspace(pool)
        ref = f"MUSE-{uuid.uuid4().hex}"
        results = run_together(8, lambda _: issue_invoice(pool, ws, payment_ref=ref, amount_paise=70_000,
                                                          description="x", kind="campaign", settings=settings))
        assert {r["number"] for r in results} == {f"INV/{this_year()}/000001"}
        with connect(pool.conninfo) as conn:
            count = conn.execute("SELECT count(*) AS n FROM public.invoices WHERE payment_ref = %s", (ref,)).fetchone()
            last = conn.execute("SELECT last_number FROM public.invoice_series WHERE supplier_gstin = %s "
                                "AND series = 'invoice'", (settings.gst_supplier_gstin,)).fetchone()
        assert count["n"] == 1 and last["last_number"] == 1

    def test_concurrent_payments_get_consecutive_numbers(self, pool: ConnectionPool, settings: Settings) -> None:
        """Twelve payments at once: numbers 1..12, no gap, no repeat."""
        ws = workspace(pool)
        results = run_together(12, lambda i: issue_invoice(
            pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}-{i}", amount_paise=10_000 + i, description="x",
            kind="campaign", settings=settings, at=datetime(2026, 12, 1, tzinfo=UTC)))
        assert not [r for r in results if isinstance(r, Exception)]
        assert sorted(r["seq"] for r in results) == list(range(1, 13))
        assert sorted(r["number"] for r in results) == [f"INV/26-27/{n:06d}" for n in range(1, 13)]

    def test_a_rolled_back_transaction_leaves_no_gap(self, pool: ConnectionPool, settings: Settings) -> None:
        """An invoice issued inside a transaction that then fails takes its number with it."""
        ws = workspace(pool)
        with pytest.raises(RuntimeError), as_service(pool) as conn:
            lost = issue_invoice(conn, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=10_000,
                                 description="x", kind="campaign", settings=settings)
            assert lost["seq"] == 1
            raise RuntimeError("the payment's transaction fails after the invoice")
        kept = issue_invoice(pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=10_000,
                             description="x", kind="campaign", settings=settings)
        assert kept["seq"] == 1

    def test_the_financial_year_rollover_starts_a_new_series(self, pool: ConnectionPool, settings: Settings) -> None:
        """31 March 23:59 IST continues 2026-27; 1 April 00:00 IST starts 2027-28 at 000001."""
        ws = workspace(pool)

        def at(moment: datetime) -> str:
            return issue_invoice(pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=10_000,
                                 description="x", kind="campaign", settings=settings, at=moment)["number"]

        assert at(datetime(2027, 3, 30, 12, tzinfo=UTC)) == "INV/26-27/000001"
        assert at(datetime(2027, 3, 31, 18, 29, tzinfo=UTC)) == "INV/26-27/000002"
        assert at(datetime(2027, 3, 31, 18, 30, tzinfo=UTC)) == "INV/27-28/000001"
        assert at(datetime(2027, 4, 2, tzinfo=UTC)) == "INV/27-28/000002"


class TestCreditNotes:
    def test_partial_refunds_add_up_to_the_invoice(self, pool: ConnectionPool, settings: Settings) -> None:
        """Two refunds crediting all of an intra-state invoice: the second takes exactly what is left."""
        ws = workspace(pool)
        invoice = issue_invoice(pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=11_800_050,
                                description="x", kind="campaign", settings=settings)
        first = issue_credit_note(pool, invoice["id"], 3_333_333, "Two channels were not published",
                                  f"R-{uuid.uuid4().hex}", settings=settings)
        assert first["number"] == f"CN/{this_year()}/000001"
        # 3333333 / 1.18 = 2824858.47 → 2824858; tax 508475; CGST 9% = 254237.22 → 254237; SGST the rest.
        assert (first["taxable_paise"], first["cgst_paise"], first["sgst_paise"]) == (2_824_858, 254_237, 254_238)
        rest = issue_credit_note(pool, invoice["id"], 11_800_050 - 3_333_333, "Cancelled", f"R-{uuid.uuid4().hex}",
                                 settings=settings)
        assert rest["number"] == f"CN/{this_year()}/000002"
        for part in ("taxable_paise", "cgst_paise", "sgst_paise", "igst_paise", "total_paise"):
            assert first[part] + rest[part] == invoice[part], part
        with pytest.raises(Unprocessable):
            issue_credit_note(pool, invoice["id"], 1, "More", f"R-{uuid.uuid4().hex}", settings=settings)

    def test_one_credit_note_per_refund(self, pool: ConnectionPool, settings: Settings) -> None:
        """A replayed refund gets its note back; concurrent replays make one; another amount is a conflict."""
        invoice = issue_invoice(pool, workspace(pool, state_code="27"), payment_ref=f"MUSE-{uuid.uuid4().hex}",
                                amount_paise=100_000, description="x", kind="campaign", settings=settings)
        refund = f"R-{uuid.uuid4().hex}"
        notes = run_together(6, lambda _: issue_credit_note(pool, invoice["id"], 40_000, "Cancelled", refund,
                                                            settings=settings))
        assert len({n["id"] for n in notes}) == 1 and notes[0]["igst_paise"] == 6_102
        same = issue_credit_note(pool, str(invoice["id"]).upper(), 40_000, "Cancelled", refund, settings=settings)
        assert same == notes[0]
        with pytest.raises(Conflict):
            issue_credit_note(pool, invoice["id"], 50_000, "Cancelled", refund, settings=settings)
        for missing in (uuid.uuid4(), "not-an-invoice"):
            with pytest.raises(NotFound):
                issue_credit_note(pool, missing, 1_000, "Cancelled", f"R-{uuid.uuid4().hex}", settings=settings)

    def test_tax_documents_are_never_changed_or_deleted(self, pool: ConnectionPool, settings: Settings) -> None:
        invoice = issue_invoice(pool, workspace(pool), payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=10_000,
                                description="x", kind="campaign", settings=settings)
        for statement in ("UPDATE public.invoices SET total_paise = 1 WHERE id = %s",
                          "DELETE FROM public.invoices WHERE id = %s"):
            with pytest.raises(Exception, match="tax records"), connect(pool.conninfo) as conn:
                conn.execute(statement, (invoice["id"],))


class TestBadCalls:
    def test_callers_get_a_400_naming_the_argument_and_nothing_is_issued(self, pool: ConnectionPool,
                                                                          settings: Settings) -> None:
        ws = workspace(pool)
        good: dict[str, Any] = {"payment_ref": f"P-{uuid.uuid4().hex}", "amount_paise": 1_000, "description": "x",
                                "kind": "campaign"}
        for change, field in (({"amount_paise": 0}, "amount_paise"), ({"payment_ref": ""}, "payment_ref"),
                              ({"description": " "}, "description"), ({"kind": "refund"}, "kind")):
            with pytest.raises(InvalidRequest) as caught:
                issue_invoice(pool, ws, **{**good, **change}, settings=settings)
            assert caught.value.details["field"] == field
        invoice = issue_invoice(pool, ws, **good, settings=settings)
        assert invoice["seq"] == 1
        for args, field in (((-5, "r", "R-1"), "amount_paise"), ((5, " ", "R-1"), "reason"), ((5, "r", ""),
                                                                                               "refund_id")):
            with pytest.raises(InvalidRequest) as caught:
                issue_credit_note(pool, invoice["id"], *args, settings=settings)
            assert caught.value.details["field"] == field


class TestErasure:
    def test_erasing_a_workspace_keeps_its_tax_documents(self, pool: ConnectionPool, settings: Settings) -> None:
        """The campaign goes (the invoice's link to it is cleared), the billing profile goes, the invoice and
        its credit note stay unchanged."""
        ws = workspace(pool, state_code="29")
        campaign = uuid.uuid4()
        with as_service(pool) as conn:
            conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief) "
                         "VALUES (%s, %s, %s, 'campaign', '{}')", (campaign, ws, uuid.uuid4()))
        invoice = issue_invoice(pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=118_000,
                                description="x", kind="campaign", campaign_id=campaign, settings=settings)
        note = issue_credit_note(pool, invoice["id"], 59_000, "Cancelled", f"R-{uuid.uuid4().hex}",
                                 settings=settings)
        with as_service(pool) as conn:
            erased = wdb.erase(conn, ws)
            kept = bdb.invoice(conn, invoice["id"])
            kept_note = bdb.credit_note(conn, note["id"])
            profile = bdb.profile(conn, ws)
        assert erased.rows["campaigns"] == 1 and erased.rows["billing_profiles"] == 1 and profile is None
        assert kept is not None and kept_note == note
        assert kept == {**invoice, "campaign_id": None}


class TestPaymentHook:
    def test_one_invoice_per_payment_however_often_it_is_confirmed(self, pool: ConnectionPool,
                                                                   settings: Settings) -> None:
        """Marking a payment completed issues its invoice in that transaction; duplicate and concurrent
        confirmations find the payment completed already and issue nothing more."""
        ws = workspace(pool, state_code="29")
        order = f"MUSE-{uuid.uuid4().hex[:24]}-1"
        campaign = uuid.uuid4()
        with as_service(pool) as conn:
            conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief) "
                         "VALUES (%s, %s, %s, 'campaign', '{\"title\": \"Onam sale\"}')", (campaign, ws, uuid.uuid4()))
            conn.execute("INSERT INTO public.payments (merchant_order_id, campaign_id, workspace_id, attempt, "
                         "amount_paise, state) VALUES (%s, %s, %s, 1, 236000, 'pending')", (order, campaign, ws))
        payments = PaymentRepository(pool)
        invoicing = PaymentInvoicing(settings)
        payment = payments.by_merchant_order(order)
        assert isinstance(payment, Payment)

        def confirm(_: int) -> bool:
            return payments.mark(payment, "completed", phonepe_order_id="OMO1", event="payment.completed", data={},
                                 on_change=lambda conn: invoicing.issue(conn, payment))

        results = run_together(5, confirm)
        assert sorted(results) == [False, False, False, False, True]
        assert confirm(0) is False
        with connect(pool.conninfo) as conn:
            rows = conn.execute("SELECT number, total_paise, cgst_paise, sgst_paise, campaign_id, kind, description "
                            "FROM public.invoices "
                                "WHERE payment_ref = %s", (order,)).fetchall()
        assert rows == [{"number": f"INV/{this_year()}/000001", "total_paise": 236_000, "cgst_paise": 18_000,
                         "sgst_paise": 18_000, "campaign_id": campaign, "kind": "campaign",
                         "description": "Muse campaign: planning, content and execution - Onam sale"}]


class TestThroughTheStepRuntime:
    def test_a_paid_campaign_has_one_invoice_however_often_the_webhook_comes(self, pool: ConnectionPool,
                                                                             migrated_dsn: str) -> None:
        """The whole graph in process: approve, pay (the webhook delivered to `payments`), then the webhook
        again twice and a reconciliation: the campaign completes and its payment has exactly one invoice."""
        h = Harness(pool=pool, dsn=migrated_dsn,
                    settings=make_settings(migrated_dsn, MUSE_GST_SUPPLIER_GSTIN=gstin("29")))
        owner = h.workspace()
        campaign_id = h.create(owner)
        h.pump()
        pending = h.row(campaign_id)["pending_decision"]
        h.api.decide(owner, campaign_id, Decision(decision_id=pending["id"], action="approve"))
        h.pump()
        order = h.pay(owner, campaign_id)
        for _ in range(2):
            h.webhook(order)
        h.deliver("payments", reconcile_message(order))
        h.pump()
        assert h.row(campaign_id)["status"] == "completed"
        with connect(migrated_dsn) as conn:
            rows = conn.execute("SELECT number, campaign_id, total_paise, kind FROM public.invoices "
                                "WHERE payment_ref = %s", (order,)).fetchall()
            paid = conn.execute("SELECT amount_paise FROM public.payments WHERE merchant_order_id = %s",
                                (order,)).fetchone()
        assert rows == [{"number": f"INV/{this_year()}/000001", "campaign_id": campaign_id,
                         "total_paise": paid["amount_paise"], "kind": "campaign"}]
