"""`make bench` (safety): recall and false-positive rate of the prompt-injection detector on labelled corpora.

The corpora live in `tests/unit/data/injection/` (`injections.txt`, `benign.txt`, one sample per line).
Each is split by a digest of the line into a development part (patterns were tuned looking at it)
and a held-out part (never tuned on); the figures printed are on the held-out part, plus the share of
the knowledge benchmark's brand-document chunks (`infra/data/knowledge_bench.json`) and of the Tavily
emulator's articles that the rules flag (text outside the corpora, all benign):

- `injection_pattern_*`: the regular-expression patterns and cue rules alone, flagging only `high`;
- `injection_rules_*`: patterns plus the lexical layer (`shared/safety/injection_lexicon.json`, trained
  on the development split by `infra.train_injection_lexicon`): everything that runs without a model;
- `injection_recall` / `injection_false_positive_rate`: the full detector, borderline texts settled
  by the fast-tier classifier through the model router and the official SDK.

Against the local stack the classifier is the Gemini emulator's stand-in (a keyword heuristic that
recognises the classifier's requests, `infra/local/emulators/gemini/injection.py`), so the detector
figures measure patterns plus that stand-in, not Gemini Flash; with `GEMINI_API_KEY` and network
access (`MUSE_BENCH_REAL_GEMINI=1`) the same code asks the real model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.safety.injection import InjectionDetector, ScanResult, scan

CORPUS_DIR = Path(__file__).resolve().parent.parent / "tests" / "unit" / "data" / "injection"
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})|\\n")


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2)
    return chr(int(code, 16)) if code else "\n"


def load_corpus(name: str) -> list[str]:
    """The samples of corpus `name` (`injections` or `benign`): `#` lines skipped, escapes decoded."""
    lines = (CORPUS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [_ESCAPE.sub(_unescape, line) for line in lines if line.strip() and not line.startswith("#")]


def held_out(sample: str) -> bool:
    """Whether `sample` belongs to the held-out split (about 40%, fixed by its digest)."""
    return hashlib.sha256(sample.encode()).digest()[0] % 5 >= 3


def split(samples: Sequence[str]) -> tuple[list[str], list[str]]:
    """(development, held-out) parts of `samples`."""
    return [s for s in samples if not held_out(s)], [s for s in samples if held_out(s)]


def rates(judge: Callable[[str], ScanResult], injections: Sequence[str],
          benign: Sequence[str]) -> tuple[float, float]:
    """(recall on `injections`, false-positive rate on `benign`) of `judge`'s `flagged`."""
    caught = sum(judge(s).flagged for s in injections)
    false = sum(judge(s).flagged for s in benign)
    return caught / len(injections), false / len(benign)


def brand_document_chunks() -> list[str]:
    """Chunks of the knowledge benchmark's brand documents: real-looking text outside the corpora."""
    from shared.retrieval.text import chunk_text

    documents = json.loads((Path(__file__).parent / "data" / "knowledge_bench.json").read_text(encoding="utf-8"))
    return [c.content for d in documents["documents"] for c in chunk_text(d["content"])]


def web_results() -> list[str]:
    """The Tavily emulator's articles as research sees them (title, then content): marketing news, all benign."""
    path = Path(__file__).parent / "local" / "emulators" / "data" / "tavily_corpus.json"
    return [f"{a['title']}\n{a['content']}" for a in json.loads(path.read_text(encoding="utf-8"))]


def _classifier_model() -> tuple[object, Callable[[], None]]:
    """The fast tier through the model router: the real Gemini if asked, else the emulator on loopback."""
    from google import genai
    from google.genai import types

    from infra.local.emulators.config import EmulatorConfig
    from infra.local.emulators.gemini import create_app
    from infra.local.serve import serve_in_thread
    from shared.integrations.gemini import GeminiBackend
    from shared.models import CircuitBreakers, ModelRouter

    if os.environ.get("MUSE_BENCH_REAL_GEMINI") == "1":
        from shared.integrations.gemini import structured_model
        from shared.settings import get_settings
        return structured_model(get_settings()), lambda: None
    config = EmulatorConfig(database_url="")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = serve_in_thread(create_app(config))
    client = genai.Client(api_key=config.gemini_api_key, http_options=types.HttpOptions(base_url=server.url))
    router = ModelRouter(backend=GeminiBackend(lambda: client), cascades={"fast": ("gemini-2.5-flash",),
                                                                          "strong": ("gemini-2.5-pro",)},
                         breakers=CircuitBreakers(failure_threshold=1000))

    def stop() -> None:
        client.close()
        server.stop()

    return router, stop


def main() -> int:
    injections = split(load_corpus("injections"))[1]
    benign = split(load_corpus("benign"))[1]
    print(f"injection_corpus_held_out: {len(injections)} injections, {len(benign)} benign")
    recall, false_rate = rates(lambda s: scan(s, lexical=False), injections, benign)
    print(f"injection_pattern_recall: {recall:.3f} ratio")
    print(f"injection_pattern_false_positive_rate: {false_rate:.3f} ratio")
    started = time.perf_counter()
    recall, false_rate = rates(scan, injections, benign)
    per_text = (time.perf_counter() - started) / (len(injections) + len(benign)) * 1000
    print(f"injection_rules_recall: {recall:.3f} ratio")
    print(f"injection_rules_false_positive_rate: {false_rate:.3f} ratio")
    print(f"injection_scan_ms: {per_text:.3f} ms")
    chunks = brand_document_chunks()
    flagged = sum(scan(c).flagged for c in chunks)
    print(f"injection_brand_document_chunks_flagged: {flagged / len(chunks):.3f} ratio ({flagged} of {len(chunks)})")
    pages = web_results()
    flagged = sum(scan(p).flagged for p in pages)
    print(f"injection_web_results_flagged: {flagged / len(pages):.3f} ratio ({flagged} of {len(pages)})")
    model, stop = _classifier_model()
    try:
        detector = InjectionDetector(model=model)  # type: ignore[arg-type]
        classified = sum(scan(s).level == "medium" for s in [*injections, *benign])
        recall, false_rate = rates(detector.assess, injections, benign)
    finally:
        stop()
    print(f"injection_classifier_calls: {classified} calls")
    print(f"injection_recall: {recall:.3f} ratio")
    print(f"injection_false_positive_rate: {false_rate:.3f} ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
