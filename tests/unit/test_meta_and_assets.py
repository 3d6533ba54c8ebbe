"""Pure parts of the Meta/WhatsApp adapters and the asset library: error kinds, post text, picking, images.

Why unit tests: these are tables and small functions whose every row matters; the wire is covered by the
integration tests against the emulators.
"""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from pywa.errors import WhatsAppError

from infra.local.emulators.gemini.images import png_for, wants_image
from shared.assets.images import inspect, jpeg_rendition, sniff
from shared.assets.library import Asset, fit, style_prompt, words
from shared.brandkit import BrandKit
from shared.errors import InvalidRequest
from shared.publishing.adapters import meta, whatsapp


@pytest.mark.parametrize(("status", "error", "create", "kind"), [
    (401, {"code": 190, "error_subcode": 463}, True, "reconnect"),
    (400, {"code": 190}, False, "reconnect"),
    (400, {"code": 4}, True, "retryable"),
    (400, {"code": 32}, True, "retryable"),
    (429, {}, True, "retryable"),
    (400, {"code": 9, "error_subcode": 2207042}, True, "retryable"),
    (400, {"code": 506}, True, "ambiguous"),
    (403, {"code": 200}, True, "reconnect"),
    (500, {"code": 1}, True, "ambiguous"),
    (500, {"code": 1}, False, "retryable"),
    (400, {"code": 100}, True, "permanent"),
    (400, {"code": 9004}, True, "permanent"),
])
def test_graph_errors_map_to_the_engines_kinds(status: int, error: dict[str, int], create: bool, kind: str) -> None:
    assert meta.classify(status, error, create=create)[0] == kind


def test_quota_and_policy_blocks_say_when_to_retry() -> None:
    assert meta.classify(400, {"code": 9}, create=True) == ("retryable", meta.QUOTA_RETRY_SECONDS)
    assert meta.classify(400, {"code": 4}, create=True) == ("retryable", None)


@pytest.mark.parametrize(("code", "status", "kind"), [
    (190, 401, "reconnect"), (130429, 429, "retryable"), (131056, 400, "retryable"), (131000, 500, "ambiguous"),
    (131026, 400, "permanent"), (132001, 404, "permanent"), (131049, 400, "permanent"),
])
def test_whatsapp_errors_map_to_the_engines_kinds(code: int, status: int, kind: str) -> None:
    response = httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1/v26.0/1/messages"))
    error = WhatsAppError.from_dict({"code": code, "message": "m"}, response=response)
    assert whatsapp.classify(error) == kind


def test_post_text_from_each_copy_shape() -> None:
    assert meta.post_text({"caption": " Lamps ", "hashtags": ["diwali", "#muse", ""]}) == "Lamps\n\n#diwali #muse"
    assert meta.post_text({"caption": "Only", "hashtags": []}) == "Only"
    assert meta.post_text({"text": "Hello"}) == "Hello"
    assert meta.post_text({"posts": ["one", "two"]}) == "one\n\ntwo"
    assert meta.post_text({"subject": "s", "body": "Body"}) == "Body"
    assert meta.post_text({}) == ""
    assert meta.caption_key("a  b\n c") == meta.caption_key("a b c") != meta.caption_key("a b")


def test_template_params_and_languages() -> None:
    assert whatsapp.template_params({"template_params": ["Asha", 20]}) == ["Asha", "20"]
    assert whatsapp.template_params({"text": "x" * 2000}) == ["x" * 1024]
    assert whatsapp.template_params({}) == []
    assert whatsapp.template_language("hi").value == "hi"
    assert whatsapp.template_language("or").value == "or"


def _asset(tags: tuple[str, ...], description: str = "", alt: str = "") -> Asset:
    return Asset(id="a", workspace_id="w", source="upload", storage_path="p", content_type="image/png", width=1,
                 height=1, tags=tags, description=description, alt_text=alt)


def test_fit_weighs_tags_double_and_ignores_stopwords() -> None:
    text = words("This Diwali, light up your home with clay lamps")
    assert "this" not in text and {"diwali", "lamps", "clay"} <= text
    lamps = fit(_asset(("diwali", "lamps"), "Clay diyas at dusk"), text)
    hamper = fit(_asset(("gift", "hamper"), "Chocolates in a box"), text)
    assert lamps > 0.5 and hamper == 0.0
    assert fit(_asset(()), text) == 0.0
    assert fit(_asset(("diwali",)), text) > fit(_asset((), "diwali sweets and gifts"), text)


def test_style_prompt_carries_the_kits_voice_and_never_text() -> None:
    kit = BrandKit.model_validate({"voice": ["warm"], "tone": ["festive"], "guidelines": ["Show real people."]})
    prompt = style_prompt(kit, channel="instagram_caption", text="Chai  offers\nin Pune")
    assert "instagram caption" in prompt and "Chai offers in Pune" in prompt
    assert "warm, festive" in prompt and "Show real people." in prompt and "no words" in prompt


def test_images_are_sniffed_decoded_and_rendered_as_jpeg() -> None:
    png = png_for("a prompt")
    assert png == png_for("a prompt") != png_for("another prompt")
    assert sniff(png) == "image/png" and sniff(b"GIF8") is None
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    info = inspect(png)
    assert (info.content_type, info.width, info.height) == ("image/png", 256, 256)
    jpeg = jpeg_rendition(png)
    assert jpeg.startswith(b"\xff\xd8\xff")
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG" and image.size == (256, 256)
    assert jpeg_rendition(jpeg) is jpeg
    with pytest.raises(InvalidRequest, match="does not decode"):
        inspect(png[:100])
    with pytest.raises(InvalidRequest, match="not a PNG"):
        inspect(b"%PDF-1.7")


def test_the_gemini_emulator_knows_an_image_request() -> None:
    assert wants_image({"generationConfig": {"responseModalities": ["IMAGE"]}})
    assert wants_image({"generationConfig": {"responseModalities": ["TEXT", "image"]}})
    assert not wants_image({"generationConfig": {"responseMimeType": "application/json"}})
