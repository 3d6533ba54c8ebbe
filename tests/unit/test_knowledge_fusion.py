"""Reciprocal rank fusion, and the boundary models of the knowledge API."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from shared.errors import InvalidRequest
from shared.knowledge.models import IngestMessage, SearchQuery, TextResource
from shared.knowledge.service import kind_of_upload, provisional_title, safe_filename, validate_original
from shared.retrieval.fusion import reciprocal_rank_fusion


class TestReciprocalRankFusion:
    def test_scores_are_sums_of_reciprocal_ranks(self) -> None:
        fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60))
        assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
        assert fused["b"] == pytest.approx(1 / 62)
        assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)

    def test_agreement_beats_a_single_first_place(self) -> None:
        order = [item for item, _ in reciprocal_rank_fusion([["x", "both"], ["y", "both"]])]
        assert order[0] == "both"

    def test_item_in_one_list_only_still_appears(self) -> None:
        assert [i for i, _ in reciprocal_rank_fusion([["a"], []])] == ["a"]
        assert reciprocal_rank_fusion([[], []]) == []

    def test_ties_break_by_best_rank_then_first_seen(self) -> None:
        order = [item for item, _ in reciprocal_rank_fusion([["a", "b"], ["b", "a"], ["c"]])]
        assert order[:2] == ["a", "b"]
        order = [item for item, _ in reciprocal_rank_fusion([["p"], ["q"]])]
        assert order == ["p", "q"]

    def test_duplicates_within_a_list_count_once(self) -> None:
        fused = dict(reciprocal_rank_fusion([["a", "a", "b"]]))
        assert fused["a"] == pytest.approx(1 / 61) and fused["b"] == pytest.approx(1 / 63)

    def test_weights(self) -> None:
        order = [item for item, _ in reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0, 2.0])]
        assert order == ["b", "a"]
        with pytest.raises(ValueError, match="one weight per ranking"):
            reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
        with pytest.raises(ValueError, match="at least 1"):
            reciprocal_rank_fusion([["a"]], k=0)


class TestBoundaries:
    def test_text_resource_needs_content_or_url(self) -> None:
        with pytest.raises(ValidationError, match="`content` is required"):
            TextResource.model_validate({"kind": "markdown"})
        with pytest.raises(ValidationError, match="`url` is required"):
            TextResource.model_validate({"kind": "url"})
        with pytest.raises(ValidationError, match="not an http"):
            TextResource.model_validate({"kind": "url", "url": "file:///etc/passwd"})
        body = TextResource.model_validate({"kind": "url", "url": " https://example.in/a ", "tags": [" Brand "]})
        assert body.url == "https://example.in/a" and body.tags == ["brand"]

    def test_search_query_bounds(self) -> None:
        assert SearchQuery.model_validate({"q": " tea "}).q == "tea"
        for bad in ({"q": "  "}, {"q": "tea", "k": 0}, {"q": "tea", "k": 51}, {"q": "tea", "type": ["doc"]},
                    {"q": "tea", "mode": "fuzzy"}, {"q": "tea", "limit": 3}):
            with pytest.raises(ValidationError):
                SearchQuery.model_validate(bad)

    def test_ingest_dedup_id_per_round(self) -> None:
        document_id = uuid.uuid4()
        assert IngestMessage(document_id=document_id).dedup_id() == f"ingest-{document_id}-0"
        assert IngestMessage(document_id=document_id, round=3).dedup_id().endswith("-3")

    @pytest.mark.parametrize(("filename", "content_type", "kind"), [
        ("brand.PDF", None, "pdf"), ("notes.md", "text/plain", "markdown"), ("page.htm", None, "html"),
        ("blob", "application/pdf", "pdf"), ("readme", "text/plain; charset=utf-8", "text")])
    def test_kind_of_upload(self, filename: str, content_type: str | None, kind: str) -> None:
        assert kind_of_upload(filename, content_type, None) == kind

    def test_unknown_upload_kind_names_the_fix(self) -> None:
        with pytest.raises(InvalidRequest, match=r"\.pdf, \.md, \.html or \.txt"):
            kind_of_upload("deck.pptx", "application/vnd.ms-powerpoint", None)

    def test_safe_filenames(self) -> None:
        assert safe_filename("../../etc/pass wd.pdf", "pdf") == "pass_wd.pdf"
        assert safe_filename("..", "pdf") == "original.pdf"
        assert safe_filename("ब्रांड.md", "markdown") == "md"

    def test_validate_original(self) -> None:
        with pytest.raises(InvalidRequest, match="does not start with %PDF-"):
            validate_original("pdf", b"hello", None)
        with pytest.raises(InvalidRequest, match="empty"):
            validate_original("text", b"  \n", None)
        with pytest.raises(InvalidRequest, match="not valid utf-8"):
            validate_original("markdown", "é".encode("latin-1"), "text/markdown; charset=utf-8")

    def test_provisional_titles(self) -> None:
        assert provisional_title("pdf", filename="Brand Book.pdf", url=None, data=None) == "Brand Book"
        assert provisional_title("markdown", filename=None, url=None, data=b"\n## Voice\ntext") == "Voice"
        assert provisional_title("url", filename=None, url="https://a.in/x", data=None) == "https://a.in/x"
