"""Train the injection detector's lexical layer on the development split of the corpora.

`python -m infra.train_injection_lexicon` writes `shared/safety/injection_lexicon.json`: for every word
and word pair seen at least twice in the development split (`infra.bench_safety.split`), the log ratio
of how often it appears in injections versus marketing copy (naive Bayes over word presence, Laplace
smoothing), and the prior log-odds; and the two thresholds on a sentence's log-odds, chosen by 5-fold
cross-validation on the development split: `strong` (flags alone) is the lowest whose cross-validated
false-positive rate is at most 2%, `borderline` (asks the classifier) the lowest at most 8%. The
held-out split is never read, so the figures `make bench` and the unit tests report on it stay honest.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
from collections import Counter

from infra.bench_safety import load_corpus, split
from shared.safety.injection import LEXICON_PATH, Lexicon, lexical_tokens, normalize

MIN_COUNT = 2
MIN_WEIGHT = 0.25
"""Smaller ratios carry no signal worth shipping."""


def train(injections: list[str], benign: list[str], *, alpha: float = 1.0) -> dict[str, object]:
    """Prior log-odds and per-token log-likelihood ratios of token presence."""
    seen_in: Counter[str] = Counter()
    seen_out: Counter[str] = Counter()
    for text in injections:
        seen_in.update(lexical_tokens(normalize(text).text))
    for text in benign:
        seen_out.update(lexical_tokens(normalize(text).text))
    weights: dict[str, float] = {}
    for token in sorted(set(seen_in) | set(seen_out)):
        if seen_in[token] + seen_out[token] < MIN_COUNT:
            continue
        ratio = (math.log((seen_in[token] + alpha) / (len(injections) + 2 * alpha))
                 - math.log((seen_out[token] + alpha) / (len(benign) + 2 * alpha)))
        if abs(ratio) >= MIN_WEIGHT:
            weights[token] = round(ratio, 3)
    return {"version": 1, "trained_on": {"injections": len(injections), "benign": len(benign)},
            "prior": round(math.log(len(injections) / len(benign)), 3), "weights": weights}


_SENTENCE = re.compile(r"[^.!?।\n]+")
GRID = [x / 2 for x in range(4, 25)]


def _sentence_max(trained: dict[str, object], text: str) -> float:
    model = Lexicon(prior=float(trained["prior"]), weights=trained["weights"],  # type: ignore[arg-type]
                    strong=0.0, borderline=0.0)
    normalized = normalize(text).text
    return max(model.score(p) for p in [p for p in _SENTENCE.findall(normalized) if p.strip()] or [normalized])


def thresholds(injections: list[str], benign: list[str], *, folds: int = 5) -> tuple[float, float]:
    """(strong, borderline) from cross-validated sentence scores of the benign samples."""
    rng = random.Random(7)
    order_in, order_out = rng.sample(injections, len(injections)), rng.sample(benign, len(benign))
    scores: list[float] = []
    for fold in range(folds):
        model = train([t for i, t in enumerate(order_in) if i % folds != fold],
                      [t for i, t in enumerate(order_out) if i % folds != fold])
        scores += [_sentence_max(model, t) for i, t in enumerate(order_out) if i % folds == fold]

    def lowest(max_rate: float) -> float:
        return next(x for x in GRID if sum(s >= x for s in scores) / len(scores) <= max_rate)

    return lowest(0.02), lowest(0.08)


def main() -> int:
    injections = split(load_corpus("injections"))[0]
    benign = split(load_corpus("benign"))[0]
    lexicon = train(injections, benign)
    lexicon["strong"], lexicon["borderline"] = thresholds(injections, benign)
    LEXICON_PATH.write_text(json.dumps(lexicon, ensure_ascii=False, indent=0, sort_keys=True) + "\n",
                            encoding="utf-8")
    print(f"{LEXICON_PATH}: {len(lexicon['weights'])} tokens from {len(injections)} injections and "  # type: ignore[arg-type]
          f"{len(benign)} benign samples (development split); thresholds strong {lexicon['strong']}, "
          f"borderline {lexicon['borderline']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
