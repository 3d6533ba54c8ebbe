"""The asset library: `POST/GET /api/v1/assets` through the API dispatcher (real Postgres under RLS, images in the
Storage emulator on the wire), and `pick_or_generate` / `media` against the Storage and Gemini emulators."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import flask
import httpx
import pytest
from PIL import Image
from psycopg_pool import ConnectionPool
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import gemini
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.gemini.images import IMAGE_TOKENS
from infra.local.emulators.supabase_storage import LOCAL_SERVICE_ROLE_KEY
from infra.local.emulators.supabase_storage import create_app as create_storage
from infra.local.serve import RunningServer, serve_in_thread
from infra.local.token import mint
from shared.api import app as api_app
from shared.api import assets
from shared.assets.library import Asset, AssetLibrary, asset_library
from shared.db import brandkits
from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.errors import BudgetExceeded
from shared.integrations.storage import supabase_object_store
from shared.settings import Settings, get_settings
from tests.integration.harness import TEST_ENV, make_settings

SECRET = "assets-test-secret-of-at-least-32-bytes!"
MAX_BYTES = 64 * 1024


def _image(fmt: str = "PNG", size: tuple[int, int] = (40, 30), color: tuple[int, int, int] = (200, 90, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def emulators(migrated_dsn: str) -> Iterator[str]:
    """Storage under `/supabase/storage` and Gemini under `/gemini`, as the local stack mounts them."""
    config = EmulatorConfig(database_url=migrated_dsn)
    server: RunningServer = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {
        "/supabase/storage": create_storage(config), "/gemini": gemini.create_app(config)}))
    try:
        yield server.url
    finally:
        server.stop()


def _env(migrated_dsn: str, emulators: str) -> dict[str, str]:
    return {**TEST_ENV, "DATABASE_URL": migrated_dsn, "SUPABASE_JWT_SECRET": SECRET,
            "SUPABASE_URL": f"{emulators}/supabase", "SUPABASE_SERVICE_ROLE_KEY": LOCAL_SERVICE_ROLE_KEY,
            "GEMINI_BASE_URL": f"{emulators}/gemini", "GEMINI_API_KEY": EmulatorConfig(database_url="").gemini_api_key,
            "MUSE_ASSETS_MAX_UPLOAD_BYTES": str(MAX_BYTES)}


@pytest.fixture
def settings(migrated_dsn: str, emulators: str) -> Settings:
    return make_settings(migrated_dsn, **_env(migrated_dsn, emulators))


@pytest.fixture
def client(pool: ConnectionPool, settings: Settings, migrated_dsn: str, emulators: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in _env(migrated_dsn, emulators).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    api_app.api.cache_clear()
    service = assets.AssetsApi(pool=pool, settings=get_settings())
    monkeypatch.setattr(assets, "service", lambda: service)
    server = flask.Flask(__name__)
    server.add_url_rule("/<path:path>", "api", lambda path: api_app.dispatch(flask.request),
                        methods=["GET", "POST"])
    try:
        yield server.test_client()
    finally:
        get_settings.cache_clear()
        api_app.api.cache_clear()


@dataclass
class Member:
    workspace_id: str
    headers: dict[str, str]


def _member(dsn: str) -> Member:
    slug, user_id = f"as-{uuid.uuid4().hex[:10]}", str(uuid.uuid4())
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
    token = mint(SECRET, user_id=user_id, workspace_id=workspace_id, slug=slug, issuer="http://127.0.0.1/auth/v1")
    return Member(workspace_id=workspace_id, headers={"Authorization": f"Bearer {token}"})


def _upload(client: Any, member: Member, data: bytes, name: str = "lamp.png", **fields: Any) -> Any:
    return client.post("/api/v1/assets", headers=member.headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), name), **fields})


class TestApi:
    def test_upload_then_list_newest_first_with_a_cursor(self, client: Any, migrated_dsn: str,
                                                         settings: Settings) -> None:
        """Each upload is stored in Storage (in the workspace's folder, where export and erasure look) and listed
        with its tags; pages follow `next_cursor`."""
        member = _member(migrated_dsn)
        png = _image("PNG")
        first = _upload(client, member, png, tags="Diwali, lamps", description="Clay lamps at dusk",
                        alt_text="Five lit diyas")
        assert first.status_code == 201, first.get_json()
        body = first.get_json()
        assert body["content_type"] == "image/png" and (body["width"], body["height"]) == (40, 30)
        assert body["tags"] == ["diwali", "lamps"] and body["alt_text"] == "Five lit diyas"
        assert body["source"] == "upload" and body["byte_size"] == len(png)
        second = _upload(client, member, _image("JPEG"), name="box.jpg", tags=["gift", "box"])
        third = _upload(client, member, _image("WEBP"), name="w.webp")
        assert second.get_json()["content_type"] == "image/jpeg" and third.get_json()["content_type"] == "image/webp"
        page = client.get("/api/v1/assets?limit=2", headers=member.headers).get_json()
        assert [a["id"] for a in page["items"]] == [third.get_json()["id"], second.get_json()["id"]]
        rest = client.get(f"/api/v1/assets?limit=2&cursor={page['next_cursor']}", headers=member.headers).get_json()
        assert [a["id"] for a in rest["items"]] == [body["id"]] and rest["next_cursor"] is None
        path = f"{member.workspace_id}/assets/{body['id']}.png"
        files = supabase_object_store(settings)
        assert files.get(path) == png
        assert path in files.list_under(f"{member.workspace_id}/")
        other = _member(migrated_dsn)
        assert client.get("/api/v1/assets", headers=other.headers).get_json()["items"] == []

    @pytest.mark.parametrize(("data", "name", "fields", "status", "fragment"), [
        (b"just some text, not an image", "a.png", {}, 400, "not a PNG, JPEG or WebP"),
        (_image("PNG")[:60], "cut.png", {}, 400, "does not decode"),
        (b"GIF89a" + bytes(40), "a.gif", {}, 400, "not a PNG, JPEG or WebP"),
        (_image("PNG", size=(400, 400)) + bytes(MAX_BYTES), "big.png", {}, 413, "MUSE_ASSETS_MAX_UPLOAD_BYTES"),
        (_image("PNG"), "a.png", {"colour": "red"}, 400, "colour"),
        (_image("PNG"), "a.png", {"tags": ",".join(f"t{i}" for i in range(25))}, 400, "tags"),
        (_image("PNG"), "a.png", {"description": "x" * 1001}, 400, "description"),
    ])
    def test_bad_uploads_are_4xx_naming_the_problem(self, client: Any, migrated_dsn: str, data: bytes, name: str,
                                                    fields: dict[str, Any], status: int, fragment: str) -> None:
        member = _member(migrated_dsn)
        response = _upload(client, member, data, name, **fields)
        assert response.status_code == status, response.get_json()
        assert fragment in response.get_json()["error"]["message"]
        assert client.get("/api/v1/assets", headers=member.headers).get_json()["items"] == []

    def test_requests_without_a_file_or_with_bad_paging_are_400(self, client: Any, migrated_dsn: str) -> None:
        member = _member(migrated_dsn)
        json_body = client.post("/api/v1/assets", headers=member.headers, json={"file": "x"})
        assert json_body.status_code == 400 and "multipart/form-data" in json_body.get_json()["error"]["message"]
        no_file = client.post("/api/v1/assets", headers=member.headers, content_type="multipart/form-data",
                              data={"tags": "a"})
        assert no_file.status_code == 400 and "`file`" in no_file.get_json()["error"]["message"]
        for query, fragment in (("limit=0", "limit"), ("limit=abc", "limit"), ("cursor=nope", "cursor"),
                                ("page=2", "page")):
            answer = client.get(f"/api/v1/assets?{query}", headers=member.headers)
            assert answer.status_code == 400 and fragment in answer.get_json()["error"]["message"]
        assert client.get("/api/v1/assets").status_code == 401


class TestPickOrGenerate:
    def _library(self, settings: Settings, pool: ConnectionPool) -> AssetLibrary:
        return asset_library(settings, pool)

    def _image_requests(self, emulators: str) -> list[dict[str, Any]]:
        return [r for r in httpx.get(f"{emulators}/gemini/_emulator/requests").json()
                if r["model"] == "gemini-2.5-flash-image"]

    def test_a_fitting_upload_is_picked_without_generating(self, client: Any, settings: Settings,
                                                           pool: ConnectionPool, migrated_dsn: str,
                                                           emulators: str) -> None:
        member = _member(migrated_dsn)
        _upload(client, member, _image("JPEG"), "box.jpg", tags="gift box, chocolate", description="A gift hamper")
        lamp = _upload(client, member, _image("PNG"), tags="diwali,lamps", description="Clay diyas glowing at dusk",
                       alt_text="Lit diyas").get_json()
        before = len(self._image_requests(emulators))
        picked = self._library(settings, pool).pick_or_generate(
            member.workspace_id, channel="instagram_caption", text="This Diwali, light up your home with clay lamps")
        assert picked.id == lamp["id"] and picked.source == "upload"
        assert len(self._image_requests(emulators)) == before

    def test_none_fits_so_one_is_generated_once_in_the_brands_style(self, settings: Settings, pool: ConnectionPool,
                                                                     migrated_dsn: str, emulators: str) -> None:
        member = _member(migrated_dsn)
        with connect(migrated_dsn) as conn, conn.transaction():
            brandkits.save_kit(conn, member.workspace_id, {"voice": ["warm"], "tone": ["festive"]})
        library = self._library(settings, pool)
        text = "Monsoon chai offers at every outlet in Bengaluru"
        before = len(self._image_requests(emulators))
        asset = library.pick_or_generate(member.workspace_id, channel="instagram_caption", text=text, key="pub-1")
        assert asset.source == "generated" and asset.content_type == "image/png"
        data = library.store.get(asset.storage_path)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size == (asset.width, asset.height) == (256, 256)
        requests = self._image_requests(emulators)
        assert len(requests) == before + 1
        assert "warm, festive" in requests[-1]["text"] and "Monsoon chai" in requests[-1]["text"]
        again = library.pick_or_generate(member.workspace_id, channel="instagram_caption", text=text, key="pub-1")
        assert again.id == asset.id and len(self._image_requests(emulators)) == before + 1
        other = self._library(settings, pool).pick_or_generate(member.workspace_id, channel="linkedin_post",
                                                               text="Quarterly results for investors", key="pub-2")
        assert other.id != asset.id and len(self._image_requests(emulators)) == before + 2

    def test_generating_passes_the_spend_cap_and_is_recorded(self, settings: Settings, pool: ConnectionPool,
                                                             migrated_dsn: str, emulators: str) -> None:
        """Over the workspace's AI-spend cap no image is drawn (429 `budget_exceeded`); within it the image is a
        `model_usage` row of node `assets`, which `GET /api/v1/costs` reads."""
        member = _member(migrated_dsn)
        capped = asset_library(make_settings(migrated_dsn, **{**_env(migrated_dsn, emulators),
                                                              "MUSE_BUDGET_MONTHLY_CAP_USD": "0"}), pool)
        before = len(self._image_requests(emulators))
        with pytest.raises(BudgetExceeded) as refused:
            capped.pick_or_generate(member.workspace_id, channel="instagram_caption", text="Kite festival", key="k1")
        assert refused.value.http_status == 429 and len(self._image_requests(emulators)) == before
        asset = self._library(settings, pool).pick_or_generate(member.workspace_id, channel="instagram_caption",
                                                               text="Kite festival", key="k1")
        assert asset.source == "generated"
        with connect(migrated_dsn) as conn:
            rows = conn.execute("SELECT node, model, output_tokens, cost_micro_usd FROM public.model_usage "
                                "WHERE workspace_id = %s", (member.workspace_id,)).fetchall()
        assert [(r["node"], r["model"], r["output_tokens"]) for r in rows] == [
            ("assets", "gemini-2.5-flash-image", IMAGE_TOKENS)]
        assert rows[0]["cost_micro_usd"] > 0

    def test_media_is_a_fetchable_jpeg_url(self, settings: Settings, pool: ConnectionPool, migrated_dsn: str,
                                           emulators: str) -> None:
        """Platforms fetch the signed URL with no key and get a JPEG (Instagram takes only JPEG)."""
        member = _member(migrated_dsn)
        library = self._library(settings, pool)
        asset: Asset = library.pick_or_generate(member.workspace_id, channel="instagram_caption",
                                                text="Handloom sarees, new weaves", key="pub-m")
        media = library.media(asset)
        assert media.content_type == "image/jpeg" and media.data.startswith(b"\xff\xd8\xff")
        fetched = httpx.get(media.url)
        assert fetched.status_code == 200 and fetched.content == media.data
        assert fetched.headers["content-type"] == "image/jpeg"
        tampered = media.url.replace(".jpg?", ".png?")
        assert httpx.get(tampered).status_code == 400
        assert media.alt_text.startswith("Image for: Handloom")
