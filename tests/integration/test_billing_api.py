"""The billing profile and invoice APIs through the dispatcher, PDFs in the Storage emulator on the wire, and
the payment hook through `PaymentConfirmer` with duplicate webhooks, on real Postgres."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import flask
import jwt
import pypdf
import pytest
from fontTools.ttLib import TTFont
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.supabase_storage import LOCAL_SERVICE_ROLE_KEY
from infra.local.emulators.supabase_storage import create_app as create_storage
from infra.local.serve import RunningServer, serve_in_thread
from shared.api import billing as billing_api
from shared.api import invoices as invoices_api
from shared.api import plan as plan_api
from shared.api.app import dispatch
from shared.api.openapi import openapi_document
from shared.auth import Principal
from shared.billing.gstin import check_character
from shared.billing.invoices import InvoicePdfs, PaymentInvoicing, issue_credit_note, issue_invoice
from shared.db import audit
from shared.db import billing as bdb
from shared.db.payments import PaymentRepository
from shared.db.pool import as_service, as_user, connect
from shared.db.workspaces import ensure_workspace
from shared.errors import UpstreamUnavailable
from shared.messages import PaymentEvent
from shared.outbox import Outbox
from shared.payments.confirmation import PaymentConfirmer
from shared.settings import Settings, get_settings
from shared.testing.fakes import RecordingQueue
from shared.testing.payments import FakePhonePe
from tests.integration.harness import TEST_ENV, make_settings

SECRET = "billing-test-secret-of-at-least-32-bytes!"


def gstin(state: str, pan: str = "AACCB1234K") -> str:
    first14 = f"{state}{pan}1Z"
    return first14 + check_character(first14)


@pytest.fixture(scope="module")
def storage(migrated_dsn: str) -> Iterator[RunningServer]:
    app = create_storage(EmulatorConfig(database_url=migrated_dsn))
    server = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/supabase/storage": app}))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Api:
    """The API dispatcher with this test's services, and a token per member."""

    pool: ConnectionPool
    settings: Settings
    pdfs: InvoicePdfs

    def member(self, *, role: str = "owner", workspace_id: str | None = None) -> Principal:
        user_id = str(uuid.uuid4())
        with connect(self.pool.conninfo) as conn, conn.transaction():
            if workspace_id is None:
                workspace_id = ensure_workspace(conn, slug=f"bi-{uuid.uuid4().hex[:10]}", name="Chai Point",
                                                user_id=user_id)
            else:
                conn.execute("INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (%s, %s, %s)",
                             (workspace_id, user_id, role))
        claims = {"sub": user_id, "aud": "authenticated", "role": "authenticated",
                  "app_metadata": {"workspace_id": workspace_id}}
        return Principal(user_id=uuid.UUID(user_id), claims=claims)

    def call(self, principal: Principal, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> flask.Response:
        token = jwt.encode({**principal.claims, "exp": 4102444800}, SECRET, algorithm="HS256")
        with flask.Flask("billing-test").test_request_context(
                path, method=method, json=body, headers={"Authorization": f"Bearer {token}", **(headers or {})}):
            return dispatch(flask.request)


@pytest.fixture
def api(pool: ConnectionPool, storage: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    for name, value in {**TEST_ENV, "SUPABASE_JWT_SECRET": SECRET, "DATABASE_URL": pool.conninfo}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    plan_api.service.cache_clear()
    settings = make_settings(pool.conninfo, SUPABASE_JWT_SECRET=SECRET, SUPABASE_URL=f"{storage.url}/supabase",
                             SUPABASE_SERVICE_ROLE_KEY=LOCAL_SERVICE_ROLE_KEY,
                             MUSE_GST_SUPPLIER_GSTIN=gstin("29", f"AAACM{uuid.uuid4().int % 9000 + 1000}M"))
    pdfs = InvoicePdfs(pool, settings)
    monkeypatch.setattr(billing_api, "service", lambda: billing_api.BillingApi(pool=pool))
    monkeypatch.setattr(invoices_api, "service", lambda: invoices_api.InvoicesApi(pool=pool, settings=settings,
                                                                                   pdfs=pdfs))
    try:
        yield Api(pool=pool, settings=settings, pdfs=pdfs)
    finally:
        if plan_api.service.cache_info().currsize:
            plan_api.service().pool.close()
        plan_api.service.cache_clear()
        get_settings.cache_clear()


def workspace_of(principal: Principal) -> str:
    return str(principal.claims["app_metadata"]["workspace_id"])


PROFILE = {"legal_name": "Chai Point Beverages Pvt Ltd", "address": "80 Feet Road, Koramangala, Bengaluru 560034",
           "state": "Karnataka", "email": "accounts@chaipoint.example"}


class TestProfile:
    def test_a_b2b_profile_is_stored_read_and_audited(self, api: Api) -> None:
        owner = api.member()
        put = api.call(owner, "PUT", "/api/v1/billing/profile", {**PROFILE, "gstin": gstin("29").lower()})
        assert put.status_code == 200, put.get_json()
        stored = put.get_json()
        assert (stored["gstin"], stored["state_code"], stored["state"], stored["tax_treatment"]) == (
            gstin("29"), "29", "Karnataka", "b2b")
        assert api.call(owner, "GET", "/api/v1/billing/profile").get_json() == stored
        again = api.call(owner, "PUT", "/api/v1/billing/profile", {**PROFILE, "state": "29", "gstin": None})
        assert again.get_json()["tax_treatment"] == "b2c"
        with as_user(api.pool, owner.claims) as conn:
            entries = audit.list_entries(conn, workspace_of(owner), actions=["billing_profile.updated"])
        assert sorted(e["details"]["fields"] for e in entries) == [
            ["address", "country", "email", "gstin", "legal_name", "state_code"], ["gstin"]]

    def test_a_foreign_customer_is_an_export(self, api: Api) -> None:
        owner = api.member()
        body = {"legal_name": "Globex Inc", "address": "1 Market St, San Francisco", "country": "US",
                "email": "ap@globex.example"}
        put = api.call(owner, "PUT", "/api/v1/billing/profile", body)
        assert put.status_code == 200 and put.get_json()["tax_treatment"] == "export"

    @pytest.mark.parametrize(("change", "field", "rule"), [
        ({"gstin": "29AACCB1234K1Z"}, "gstin", "format"),
        ({"gstin": "41AACCB1234K1ZA"}, "gstin", "state_code"),
        ({"gstin": gstin("29")[:14] + ("A" if gstin("29")[14] != "A" else "B")}, "gstin", "checksum"),
        ({"gstin": "27AAPFU0939F1ZV"}, "state", "gstin_state"),
        ({"state": "Atlantis"}, "state", "state"),
        ({"state": None}, "state", "required"),
        ({"country": "US", "gstin": "27AAPFU0939F1ZV", "state": None}, "gstin", "india_only"),
    ])
    def test_bad_input_is_a_400_naming_the_field_and_the_rule(self, api: Api, change: dict[str, Any], field: str,
                                                              rule: str) -> None:
        """Nothing is stored when a rule is broken."""
        owner = api.member()
        response = api.call(owner, "PUT", "/api/v1/billing/profile", {**PROFILE, **change})
        error = response.get_json()["error"]
        assert response.status_code == 400 and error["details"] == {"field": field, "rule": rule}, error
        assert api.call(owner, "GET", "/api/v1/billing/profile").status_code == 404

    def test_malformed_bodies_and_members_are_refused(self, api: Api) -> None:
        owner = api.member()
        for body in ({**PROFILE, "email": "not-an-email"}, {**PROFILE, "colour": "red"}, {**PROFILE, "legal_name": " "},
                     {"legal_name": "x"}, [PROFILE]):
            response = api.call(owner, "PUT", "/api/v1/billing/profile", body)
            assert response.status_code == 400, body
        member = api.member(role="member", workspace_id=workspace_of(owner))
        assert api.call(member, "PUT", "/api/v1/billing/profile", PROFILE).status_code == 403
        assert api.call(member, "GET", "/api/v1/billing/profile").status_code == 404


class TestInvoices:
    def test_list_json_and_pdf(self, api: Api) -> None:
        owner = api.member()
        ws = workspace_of(owner)
        assert api.call(owner, "PUT", "/api/v1/billing/profile", {**PROFILE, "state": "27",
                                                                 "gstin": "27AAPFU0939F1ZV"}).status_code == 200
        first = issue_invoice(api.pool, ws, payment_ref=f"MUSE-{uuid.uuid4().hex}", amount_paise=100_001,
                              description="Holi campaign", kind="campaign", settings=api.settings)
        second = issue_invoice(api.pool, ws, payment_ref=f"SUB-{uuid.uuid4().hex}", amount_paise=99_900,
                               description="Pro plan, December 2026", kind="subscription", settings=api.settings)
        page = api.call(owner, "GET", "/api/v1/invoices?limit=1").get_json()
        assert [i["number"] for i in page["items"]] == [second["number"]] and page["next_cursor"]
        rest = api.call(owner, "GET", f"/api/v1/invoices?limit=1&cursor={page['next_cursor']}").get_json()
        assert [i["number"] for i in rest["items"]] == [first["number"]] and rest["next_cursor"] is None

        shown = api.call(owner, "GET", f"/api/v1/invoices/{first['id']}").get_json()
        assert shown["supply_type"] == "inter_state" and shown["place_of_supply"] == {"state_code": "27",
                                                                                      "state": "Maharashtra"}
        assert shown["taxes"] == [{"tax": "IGST", "rate_percent": "18", "amount_paise": 15_254,
                                   "amount": "₹152.54"}]
        assert (shown["taxable_paise"], shown["total"], shown["sac"]) == (84_747, "₹1,000.01", "998361")
        assert shown["recipient"]["gstin"] == "27AAPFU0939F1ZV" and shown["supplier"]["state"] == "Karnataka"
        assert shown["total_in_words"] == "Rupees One Thousand and One Paise Only"

        negotiated = api.call(owner, "GET", f"/api/v1/invoices/{first['id']}", headers={"Accept": "application/pdf"})
        assert negotiated.status_code == 200 and negotiated.mimetype == "application/pdf"
        data = negotiated.get_data()
        assert data.startswith(b"%PDF")
        with connect(api.pool.conninfo) as conn:
            stored = bdb.invoice(conn, first["id"])
        assert stored is not None and stored["pdf_path"] == f"{ws}/{first['number'].replace('/', '_')}.pdf"
        assert api.pdfs.store.get(stored["pdf_path"]) == data
        assert api.call(owner, "GET", f"/api/v1/invoices/{first['id']}/pdf").get_data() == data
        storage_down = InvoicePdfs(api.pool, api.settings, store_override=FailingStore())
        assert storage_down.invoice_pdf(stored) == data, "rendered again, byte for byte, while Storage is down"

    def test_the_pdf_embeds_fonts_that_carry_the_rupee_sign_and_devanagari(self, api: Api) -> None:
        owner = api.member()
        api.call(owner, "PUT", "/api/v1/billing/profile", {**PROFILE, "legal_name": "शर्मा ट्रेडर्स प्राइवेट लिमिटेड"})
        invoice = issue_invoice(api.pool, workspace_of(owner), payment_ref=f"MUSE-{uuid.uuid4().hex}",
                                amount_paise=11_800_050, description="Diwali campaign", kind="campaign",
                                settings=api.settings)
        data = api.call(owner, "GET", f"/api/v1/invoices/{invoice['id']}/pdf").get_data()
        reader = pypdf.PdfReader(io.BytesIO(data))
        fonts: dict[str, bool] = {}
        rupee_outlines = []
        for ref in reader.pages[0]["/Resources"]["/Font"].values():
            font = ref.get_object()
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
            fonts[str(font["/BaseFont"]).split("+")[-1]] = "/FontFile2" in descriptor
            program = TTFont(io.BytesIO(descriptor["/FontFile2"].get_object().get_data()))
            glyph = program.getBestCmap().get(0x20B9) if "cmap" in program else None
            if glyph is not None:
                rupee_outlines.append(program["glyf"][glyph].numberOfContours)
        assert fonts == {"NotoSans": True, "NotoSansDevanagari": True}
        assert rupee_outlines and all(contours > 0 for contours in rupee_outlines)
        text = reader.pages[0].extract_text()
        assert "₹1,18,000.50" in text and "₹9,000.04" in text
        assert "कर" in text and "शर्मा" in text
        assert "Rupees One Lakh Eighteen Thousand and Fifty Paise Only" in text
        assert invoice["number"] in text and "Karnataka (code 29)" in text

    def test_credit_notes_show_on_the_invoice_and_as_pdf(self, api: Api) -> None:
        owner = api.member()
        invoice = issue_invoice(api.pool, workspace_of(owner), payment_ref=f"MUSE-{uuid.uuid4().hex}",
                                amount_paise=236_000, description="Onam", kind="campaign", settings=api.settings)
        note = issue_credit_note(api.pool, invoice["id"], 118_000, "Two channels not published",
                                 f"R-{uuid.uuid4().hex}", settings=api.settings)
        shown = api.call(owner, "GET", f"/api/v1/invoices/{invoice['id']}").get_json()
        assert shown["credited_paise"] == 118_000
        assert [(n["number"], n["taxable_paise"], [t["amount_paise"] for t in n["taxes"]])
                for n in shown["credit_notes"]] == [(note["number"], 100_000, [9_000, 9_000])]
        pdf = api.call(owner, "GET", shown["credit_notes"][0]["pdf_url"])
        assert pdf.status_code == 200 and pdf.get_data().startswith(b"%PDF")
        assert invoice["number"] in pypdf.PdfReader(io.BytesIO(pdf.get_data())).pages[0].extract_text()

    def test_other_workspaces_and_bad_input(self, api: Api) -> None:
        owner, stranger = api.member(), api.member()
        invoice = issue_invoice(api.pool, workspace_of(owner), payment_ref=f"MUSE-{uuid.uuid4().hex}",
                                amount_paise=10_000, description="x", kind="campaign", settings=api.settings)
        for path in (f"/api/v1/invoices/{invoice['id']}", f"/api/v1/invoices/{invoice['id']}/pdf",
                     f"/api/v1/invoices/{invoice['id']}/credit-notes/{uuid.uuid4()}/pdf",
                     f"/api/v1/invoices/{uuid.uuid4()}"):
            assert api.call(stranger, "GET", path).status_code == 404, path
        assert api.call(stranger, "GET", "/api/v1/invoices").get_json()["items"] == []
        for path, field in (("/api/v1/invoices/nope", "invoice_id"), ("/api/v1/invoices?limit=0", "limit"),
                            ("/api/v1/invoices?limit=101", "limit"), ("/api/v1/invoices?cursor=zz", "cursor"),
                            ("/api/v1/invoices?page=2", "page")):
            response = api.call(owner, "GET", path)
            assert response.status_code == 400 and response.get_json()["error"]["details"]["field"] == field, path
        assert {"/api/v1/invoices", "/api/v1/invoices/{invoice_id}", "/api/v1/invoices/{invoice_id}/pdf",
                "/api/v1/billing/profile"} <= set(openapi_document()["paths"])


class FailingStore:
    """Storage that is down."""

    def put(self, path: str, data: bytes, *, content_type: str) -> None:
        raise UpstreamUnavailable("Supabase Storage is unreachable")

    def get(self, path: str) -> bytes:
        raise UpstreamUnavailable("Supabase Storage is unreachable")


class TestPaymentHook:
    def _payment(self, pool: ConnectionPool, phonepe: FakePhonePe, amount: int) -> tuple[str, str]:
        with as_service(pool) as conn:
            ws = ensure_workspace(conn, slug=f"hk-{uuid.uuid4().hex[:10]}", name="Hook", user_id=str(uuid.uuid4()))
            campaign = uuid.uuid4()
            conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief) "
                         "VALUES (%s, %s, %s, 'campaign', '{\"title\": \"Pongal\"}')", (campaign, ws, uuid.uuid4()))
            order = f"MUSE-{campaign.hex[:24]}-1"
            conn.execute("INSERT INTO public.payments (merchant_order_id, campaign_id, workspace_id, attempt, "
                         "amount_paise, state) VALUES (%s, %s, %s, 1, %s, 'pending')", (order, campaign, ws, amount))
        phonepe.create_order(merchant_order_id=order, amount_paise=amount, redirect_url="https://x.test/")
        phonepe.settle(order)
        return ws, order

    def _confirmer(self, api: Api, phonepe: FakePhonePe, pdfs: InvoicePdfs) -> PaymentConfirmer:
        return PaymentConfirmer(payments=PaymentRepository(api.pool), phonepe=phonepe,  # type: ignore[arg-type]
                                outbox=Outbox(pool=api.pool, queue=RecordingQueue()), recheck_seconds=[5],
                                invoices=PaymentInvoicing(api.settings, pdfs))

    def test_duplicate_webhooks_confirm_once_and_invoice_once(self, api: Api) -> None:
        """The webhook delivered three times: every delivery confirms, one invoice exists, its PDF is stored."""
        phonepe = FakePhonePe()
        _, order = self._payment(api.pool, phonepe, 590_000)
        confirmer = self._confirmer(api, phonepe, api.pdfs)
        event = PaymentEvent(merchant_order_id=order, event="checkout.order.completed", state="COMPLETED")
        assert all(confirmer.confirm(event) is not None for _ in range(3))
        with connect(api.pool.conninfo) as conn:
            rows = conn.execute("SELECT number, pdf_path, cgst_paise, sgst_paise, total_paise FROM public.invoices "
                                "WHERE payment_ref = %s", (order,)).fetchall()
        assert len(rows) == 1 and rows[0]["pdf_path"] and (rows[0]["cgst_paise"], rows[0]["sgst_paise"]) == (
            45_000, 45_000)
        assert api.pdfs.store.get(rows[0]["pdf_path"]).startswith(b"%PDF")

    def test_a_rendering_failure_never_fails_the_payment(self, api: Api) -> None:
        """Storage down: the payment is confirmed and invoiced; the PDF is rendered on its first download."""
        phonepe = FakePhonePe()
        ws, order = self._payment(api.pool, phonepe, 118_000)
        confirmer = self._confirmer(api, phonepe, InvoicePdfs(api.pool, api.settings, store_override=FailingStore()))
        event = PaymentEvent(merchant_order_id=order, event="checkout.order.completed", state="COMPLETED")
        assert confirmer.confirm(event) is not None
        with connect(api.pool.conninfo) as conn:
            invoice = bdb.invoice_by_payment(conn, order)
        assert invoice is not None and invoice["pdf_path"] is None
        owner = api.member(workspace_id=ws)
        data = api.call(owner, "GET", f"/api/v1/invoices/{invoice['id']}/pdf").get_data()
        assert data.startswith(b"%PDF")
        with connect(api.pool.conninfo) as conn:
            assert (bdb.invoice(conn, invoice["id"]) or {}).get("pdf_path")
