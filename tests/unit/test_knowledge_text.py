"""Extraction (HTML, Markdown, PDF, text) and chunking of knowledge resources."""

from __future__ import annotations

import pytest

from shared.errors import InvalidRequest
from shared.retrieval.text import (
    chunk_text,
    extract,
    html_to_text,
    markdown_to_text,
    normalize_text,
    pdf_to_text,
)
from tests.pdfgen import make_pdf


class TestChunking:
    def test_chunks_are_exact_slices_with_offsets(self) -> None:
        text = " ".join(f"Sentence {i} is about Darjeeling tea and Diwali gifting." for i in range(80))
        chunks = chunk_text(text, size=400, overlap=80)
        assert len(chunks) > 5
        assert [c.position for c in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert text[chunk.start:chunk.end] == chunk.content
            assert len(chunk.content) <= 400

    def test_chunks_overlap_and_cover_everything(self) -> None:
        text = " ".join(f"word{i}" for i in range(2000))
        chunks = chunk_text(text, size=300, overlap=60)
        for before, after in zip(chunks, chunks[1:], strict=False):
            assert after.start < before.end, "consecutive chunks must overlap"
            assert before.end - after.start <= 60
            assert after.start > before.start
        assert chunks[0].start == 0 and chunks[-1].end == len(text)
        assert all(not c.content.startswith(("ord", "rd")) for c in chunks), "overlap must start on a word"

    def test_prefers_paragraph_then_sentence_boundaries(self) -> None:
        first = "Tea gardens in Assam produce strong, malty black tea. " * 6
        second = "Darjeeling's first flush is light and floral. " * 6
        chunks = chunk_text(first.strip() + "\n\n" + second.strip(), size=500, overlap=50)
        assert chunks[0].content.endswith("malty black tea.")
        assert all(c.content.rstrip().endswith((".", "tea")) or c is chunks[-1] for c in chunks)

    def test_sentence_end_in_devanagari(self) -> None:
        text = "दिवाली पर चाय के उपहार बॉक्स बहुत लोकप्रिय हैं। " * 30
        chunks = chunk_text(text.strip(), size=300, overlap=40)
        assert len(chunks) > 3
        assert all(c.content.endswith("।") for c in chunks)

    def test_a_word_longer_than_the_chunk_is_cut(self) -> None:
        text = "x" * 1000
        chunks = chunk_text(text, size=300, overlap=0)
        assert "".join(c.content for c in chunks) == text

    def test_empty_and_whitespace(self) -> None:
        assert chunk_text("") == []
        assert chunk_text("   \n\n  ") == []

    def test_short_text_is_one_chunk(self) -> None:
        [chunk] = chunk_text("  A single short note.  ")
        assert chunk.content == "A single short note." and chunk.start == 2

    def test_pages_follow_offsets(self) -> None:
        pages = ["alpha " * 100, "beta " * 100, "gamma " * 100]
        text = "\n\n".join(p.strip() for p in pages)
        starts = (0, len(pages[0].strip()) + 2, len(pages[0].strip()) + len(pages[1].strip()) + 4)
        chunks = chunk_text(text, size=200, overlap=20, page_starts=starts)
        for chunk in chunks:
            assert chunk.page == 1 + sum(chunk.start >= s for s in starts[1:])
        assert {c.page for c in chunks} == {1, 2, 3}

    @pytest.mark.parametrize(("size", "overlap"), [(10, 0), (100, 50), (100, -1)])
    def test_rejects_bad_parameters(self, size: int, overlap: int) -> None:
        with pytest.raises(ValueError, match="chunk size|overlap"):
            chunk_text("some text", size=size, overlap=overlap)


class TestHtml:
    def test_visible_text_and_title(self) -> None:
        html = """<!doctype html><html><head><title>Chai &amp; Co — About</title>
        <style>p { color: red }</style><script>var x = "<p>hidden</p>";</script></head>
        <body><nav>Home</nav><h1>Our   story</h1><p>Founded in <b>Kolkata</b>,<br>we blend tea.</p>
        <ul><li>Assam</li><li>Nilgiri</li></ul><noscript>enable js</noscript>
        <pre>  keep   spacing</pre></body></html>"""
        result = html_to_text(html)
        assert result.title == "Chai & Co — About"
        assert "hidden" not in result.text and "color" not in result.text and "enable js" not in result.text
        assert "Our story" in result.text
        assert "Founded in Kolkata,\nwe blend tea." in result.text
        assert "- Assam\n- Nilgiri" in result.text
        assert result.text.endswith("keep spacing")

    def test_title_falls_back_to_first_h1(self) -> None:
        assert html_to_text("<body><h1>Monsoon <i>sale</i></h1><p>x</p></body>").title == "Monsoon sale"

    def test_head_without_closing_tag_keeps_body(self) -> None:
        assert "Body text" in html_to_text("<html><head><meta charset=utf-8><body><p>Body text").text


class TestMarkdown:
    def test_syntax_is_removed_and_code_kept(self) -> None:
        markdown = """---
title: ignored front matter
tags: [a, b]
---
# Diwali *gift* boxes

Our **single-origin** teas ship in [three sizes](https://example.in/sizes) ![box](box.png).
Use the code `DIWALI10` at checkout. snake_case_words stay.

> Customers love the *Assam* box.

1. Order before 20 Oct
- [x] Free shipping

| Box | Price |
|-----|------:|
| Small | ₹499 |

```python
print("# not a heading")
```
***
[ref]: https://example.in
"""
        result = markdown_to_text(markdown)
        assert result.title == "Diwali gift boxes"
        text = result.text
        assert "ignored front matter" not in text
        assert "Our single-origin teas ship in three sizes box." in text
        assert "Use the code DIWALI10 at checkout. snake_case_words stay." in text
        assert "Customers love the Assam box." in text
        assert "Order before 20 Oct" in text and "Free shipping" in text and "[x]" not in text
        assert "Small ₹499" in text and "---" not in text
        assert 'print("# not a heading")' in text
        assert "https://example.in" not in text

    def test_setext_heading_is_the_title(self) -> None:
        assert markdown_to_text("Brand voice\n===========\n\nWarm, plain.").title == "Brand voice"

    def test_a_leading_rule_is_not_front_matter(self) -> None:
        result = markdown_to_text("---\nThis paragraph, sadly, is prose? It is: here.\n\nMore text\n---\n")
        assert "More text" in result.text


class TestPdfAndText:
    def test_pdf_pages_and_metadata_title(self) -> None:
        data = make_pdf(["Assam tea (malty)\nSecond line.", "Page two: Nilgiri."], title="Tea Guide 2026")
        result = pdf_to_text(data)
        assert result.title == "Tea Guide 2026"
        assert result.text == "Assam tea (malty)\nSecond line.\n\nPage two: Nilgiri."
        assert result.page_starts == (0, len("Assam tea (malty)\nSecond line.") + 2)

    def test_pdf_without_text_layer(self) -> None:
        with pytest.raises(InvalidRequest, match="no text layer"):
            pdf_to_text(make_pdf([""]))

    def test_not_a_pdf(self) -> None:
        with pytest.raises(InvalidRequest, match="not a readable PDF"):
            pdf_to_text(b"%PDF-1.4 this is not really a pdf")

    def test_text_title_is_the_first_line_and_non_utf8_is_refused(self) -> None:
        result = extract("text", b"\n  Brand voice notes  \r\nBe warm.\r\n")
        assert result.title == "Brand voice notes" and result.text == "Brand voice notes\nBe warm."
        with pytest.raises(InvalidRequest, match="UTF-8"):
            extract("text", "café".encode("latin-1"))
        assert extract("text", "café".encode("latin-1"), charset="latin-1").text == "café"

    def test_normalize(self) -> None:
        assert normalize_text("a\u00a0\u00a0b \t c  \n\n\n\nd  \r\n e") == "a b c\n\nd\ne"
