"""The asset library: members upload images; each visual post gets a fitting one, generated when none fits.

Images live in Supabase Storage under `<workspace id>/assets/` of the knowledge bucket (unless
`MUSE_ASSETS_BUCKET` names another), so a workspace's export and erasure include them; rows in
`public.assets`. An upload is stored before its row is written, so a row never points at nothing (an upload
that fails half-way leaves at most an unlisted object).

`pick_or_generate` scores the workspace's assets by how much of their tags, description and alt text the
post's text contains (tags count double); the best one at or above `MUSE_ASSET_MATCH_THRESHOLD` is used.
When none fits, one image is generated with Gemini's image model (`MUSE_IMAGE_MODEL`, google-genai
`generate_content` with `response_modalities=["IMAGE"]`) in the brand kit's voice and tone, and stored as a
`generated` asset under a key (the publication's or campaign's, else the channel and text): the same key
never generates twice, because the object path derives from the key (a retry overwrites the same object) and
the row is unique per key (of two concurrent calls, the second returns the first one's asset).

Generating is paid work of the workspace: it reserves against the AI-spend caps first (`shared.economics`; a
workspace over its cap gets `BudgetExceeded` and no image) and is recorded in `model_usage` under the node
`assets`, so `GET /api/v1/costs` shows it. The price table has no price for the image model yet, so each image is
charged its reserve (the dearest model's worst case), never less than it costs.

`media` gives platforms a `ports.Media` with a signed URL they can fetch (`MUSE_ASSET_URL_SECONDS`), of a JPEG
rendition when the asset is not a JPEG (Instagram takes only JPEG), stored next to the original.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from shared.assets.images import EXTENSIONS, inspect, jpeg_rendition
from shared.brandkit import BrandKit
from shared.db import assets as adb
from shared.db.brandkits import get_kit
from shared.db.pool import Pool, as_service
from shared.economics.budgets import PostgresBudgets
from shared.errors import PermanentStepError, UpstreamUnavailable
from shared.integrations.gemini import gemini_client, usage_of
from shared.integrations.storage import SupabaseObjectStore, supabase_object_store
from shared.lazy import lazy_module
from shared.ports import Usage
from shared.publishing.ports import Media
from shared.settings import Settings

if TYPE_CHECKING:
    from google.genai import errors as genai_errors
    from google.genai import types
else:
    genai_errors = lazy_module("google.genai.errors")
    types = lazy_module("google.genai.types")

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
STOPWORDS = frozenset("""the and for with this that from your our you are was were will have has had not but all any can
its into out more most new now off one only over own same some such than then them they their there these those
very what when where which while who why how just also about after again before being both each few here
other under until upon get got let make made via per image photo picture post""".split())


@dataclass(frozen=True)
class Asset:
    """An image of the library."""

    id: str
    workspace_id: str
    source: str
    storage_path: str
    content_type: str
    width: int
    height: int
    tags: tuple[str, ...]
    description: str
    alt_text: str

    @classmethod
    def of(cls, row: adb.AssetRow) -> Asset:
        return cls(id=row["id"], workspace_id=row["workspace_id"], source=row["source"],
                   storage_path=row["storage_path"], content_type=row["content_type"], width=row["width"],
                   height=row["height"], tags=tuple(row["tags"]), description=row["description"],
                   alt_text=row["alt_text"])


@dataclass(frozen=True)
class GeneratedImage:
    """What an image model answered."""

    data: bytes
    model: str
    usage: Usage | None = None


class ImageGenerator(Protocol):
    """Draws one image for a prompt."""

    def generate(self, prompt: str) -> GeneratedImage: ...


def words(text: str) -> set[str]:
    """The meaningful words of `text`, lower-cased (three letters or more, no stopwords)."""
    return {word for word in _WORD.findall(text.lower()) if word not in STOPWORDS}


def fit(asset: Asset, text_words: set[str]) -> float:
    """How well an asset fits a post: the share of its (tag-weighted) words the post's text contains."""
    tag_words = words(" ".join(asset.tags))
    other = words(f"{asset.description} {asset.alt_text}") - tag_words
    total = 2 * len(tag_words) + len(other)
    if total == 0:
        return 0.0
    return (2 * len(tag_words & text_words) + len(other & text_words)) / total


def style_prompt(kit: BrandKit, *, channel: str, text: str) -> str:
    """The image prompt: the post's gist and the brand's voice, tone and guidelines; never text in the image."""
    lines = [f"A marketing image for a {channel.replace('_', ' ')} post.",
             f"The post says: \"{' '.join(text.split())[:600]}\""]
    if kit.voice or kit.tone:
        lines.append(f"Brand style: {', '.join([*kit.voice, *kit.tone])}.")
    if kit.products:
        lines.append(f"Brand products: {', '.join(product.name for product in kit.products[:5])}.")
    if kit.guidelines:
        lines.append("Brand guidelines: " + " ".join(kit.guidelines[:5]))
    lines.append("Photographic, warm light, uncluttered composition; no words, letters, logos or watermarks.")
    return "\n".join(lines)


@dataclass
class GeminiImageGenerator:
    """google-genai `generate_content` on the image model with `response_modalities=["IMAGE"]`."""

    settings: Settings

    def generate(self, prompt: str) -> GeneratedImage:
        model = self.settings.image_model
        config = types.GenerateContentConfig(response_modalities=["IMAGE"],
                                             http_options=types.HttpOptions(timeout=self.settings.gemini_timeout_ms))
        client = gemini_client(self.settings)
        try:
            response = client.models.generate_content(model=model, contents=prompt, config=config)
        except genai_errors.APIError as exc:
            if exc.code in (408, 429) or exc.code >= 500:
                raise UpstreamUnavailable(f"Image generation with {model} failed ({exc.code}); retry later.") from exc
            raise PermanentStepError(f"Image generation with {model} was refused: {exc.code} {exc.message}") from exc
        for candidate in response.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.inline_data is not None and part.inline_data.data:
                    return GeneratedImage(data=part.inline_data.data, model=response.model_version or model,
                                          usage=usage_of(response, model))
        raise PermanentStepError(f"{model} returned no image for the post (finish reason "
                                 f"{_finish_reason(response)}); upload a fitting asset instead.")


def _finish_reason(response: Any) -> str:
    candidates = getattr(response, "candidates", None) or []
    return str(getattr(candidates[0], "finish_reason", None)) if candidates else "none"


@dataclass
class AssetLibrary:
    """Picks, generates, stores and signs the images of one deployment's workspaces."""

    pool: Pool
    store: SupabaseObjectStore
    generator: ImageGenerator
    settings: Settings
    budgets: PostgresBudgets | None = None
    """The AI-spend gate image generation passes (None: not gated, for tests of picking alone)."""

    def pick_or_generate(self, workspace_id: str, *, channel: str, text: str, key: str | None = None) -> Asset:
        """The workspace's asset that fits the post best, else one generated for it (once per `key`)."""
        generation_key = key or "text:" + hashlib.sha256(f"{channel}\n{' '.join(text.split())}".encode()).hexdigest()
        text_words = words(text)
        with as_service(self.pool) as conn:
            existing = adb.generated_for(conn, workspace_id, generation_key)
            if existing is not None:
                return Asset.of(existing)
            candidates = [Asset.of(row) for row in adb.recent_assets(conn, workspace_id)]
            stored_kit = get_kit(conn, workspace_id)
        scored = sorted(((fit(asset, text_words), index, asset) for index, asset in enumerate(candidates)),
                        key=lambda item: (-item[0], item[1]))
        if scored and scored[0][0] >= self.settings.asset_match_threshold:
            return scored[0][2]
        return self._generate(workspace_id, channel=channel, text=text, generation_key=generation_key,
                              kit=BrandKit.from_stored(stored_kit["kit"] if stored_kit else None))

    def _generate(self, workspace_id: str, *, channel: str, text: str, generation_key: str, kit: BrandKit) -> Asset:
        prompt = style_prompt(kit, channel=channel, text=text)
        hold = None
        if self.budgets is not None:
            gate = replace(self.budgets.for_campaign(workspace_id, None), usage_node="assets")
            hold = gate.reserve_model(self.settings.image_model, prompt_chars=len(prompt))
        try:
            image = self.generator.generate(prompt)
        except BaseException:
            if hold is not None:
                hold.cancel()
            raise
        if hold is not None:
            hold.settle_model(image.usage)
        info = inspect(image.data, field="generated image")
        digest = hashlib.sha256(generation_key.encode()).hexdigest()[:32]
        path = f"{workspace_id}/assets/generated/{digest}.{EXTENSIONS[info.content_type]}"
        self.store.put(path, image.data, content_type=info.content_type)
        tags = sorted(words(text), key=lambda word: (-len(word), word))[:8]
        summary = " ".join(text.split())
        row = adb.NewAsset(
            id=str(uuid.uuid4()), workspace_id=workspace_id, created_by=None, source="generated", storage_path=path,
            content_type=info.content_type, byte_size=len(image.data), width=info.width, height=info.height,
            sha256=hashlib.sha256(image.data).hexdigest(), filename=None, tags=tags, description=summary[:500],
            alt_text=f"Image for: {summary[:200]}", generation_key=generation_key, prompt=prompt, model=image.model)
        with as_service(self.pool) as conn:
            stored = adb.insert_asset(conn, row) or adb.generated_for(conn, workspace_id, generation_key)
        assert stored is not None
        return Asset.of(stored)

    def media(self, asset: Asset) -> Media:
        """The image as platforms take it: JPEG bytes and a signed URL of them."""
        original = self.store.get(asset.storage_path)
        if asset.content_type == "image/jpeg":
            data, path = original, asset.storage_path
        else:
            data, path = jpeg_rendition(original), f"{asset.storage_path}.jpg"
            self.store.put(path, data, content_type="image/jpeg")
        url = self.store.signed_url(path, expires_in=self.settings.asset_url_seconds)
        return Media(asset_id=asset.id, content_type="image/jpeg", data=data, url=url,
                     alt_text=asset.alt_text or asset.description[:200])


def asset_store(settings: Settings) -> SupabaseObjectStore:
    """Where images are stored: `MUSE_ASSETS_BUCKET`, else the knowledge bucket."""
    return supabase_object_store(settings, bucket=settings.assets_bucket or settings.knowledge_bucket)


def asset_library(settings: Settings, pool: Pool, *, generator: ImageGenerator | None = None) -> AssetLibrary:
    """The library over the deployment's Storage and Gemini (or the given generator)."""
    return AssetLibrary(pool=pool, store=asset_store(settings), generator=generator or GeminiImageGenerator(settings),
                        settings=settings, budgets=PostgresBudgets.from_settings(pool, settings))
