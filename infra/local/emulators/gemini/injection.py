"""The emulator's stand-in for the prompt-injection classifier (`shared.safety.injection`).

A request whose system instruction is the classifier's gets a verdict from a small keyword heuristic
instead of schema-shaped random JSON, so the local stack and `make bench` exercise the classifier path
end to end with answers that depend on the passage. It is not a model: it counts cue words aimed at
an AI reader and at an agent's controls, minus shopping words, in the quoted passage. Figures measured
against it describe this heuristic, not Gemini.
"""

from __future__ import annotations

import re
from typing import Any

from infra.local.emulators.gemini.text import content_texts, user_text

CLASSIFIER_MARK = "prompt-injection classifier"
_PASSAGE = re.compile(r"⟦untrusted [^\n]*⟧\n(.*)\n⟦/untrusted tag=[0-9a-f]+⟧", re.DOTALL)
_WORD = re.compile(r"[\w']+", re.UNICODE)
_READER = frozenset("ai assistant assistants model models llm llms chatbot bot gpt chatgpt gemini agent agents "
                    "system prompt prompts instructions instruction rules developer developers एआई असिस्टेंट "
                    "निर्देश".split())
_STEER = frozenset("ignore disregard forget override bypass reveal print repeat pretend approve approval "
                   "auto-approve publish budget secret secrets password passwords credentials confidential "
                   "hidden jailbreak unrestricted nirdesh bhool batao dikhao अनदेखा बताओ".split())
_SHOPPING = frozenset("buy order shop sale offer discount price prices delivery free shipping cashback "
                      "₹ rs inr off".split())


def is_classifier_request(body: dict[str, Any]) -> bool:
    """Whether the request is the injection classifier's (by its system instruction)."""
    system = body.get("systemInstruction") or body.get("system_instruction")
    return isinstance(system, dict) and any(CLASSIFIER_MARK in t for t in content_texts([system]))


def verdict(body: dict[str, Any]) -> dict[str, Any]:
    """An `InjectionVerdict` for the quoted passage of a classifier request."""
    prompt = user_text(body)
    match = _PASSAGE.search(prompt)
    words = {w.lower() for w in _WORD.findall(match.group(1) if match else prompt)}
    reader = len(words & _READER)
    steer = len(words & _STEER)
    shopping = len(words & _SHOPPING)
    score = min(reader, 3) + min(steer, 3) - min(shopping, 2)
    injection = reader >= 1 and steer >= 1 and score >= 3
    return {"injection": injection, "confidence": round(min(0.95, 0.35 + 0.1 * max(score, 0)), 2),
            "reason": (f"[emulated classifier] {reader} words aimed at an AI reader, {steer} steering words, "
                       f"{shopping} shopping words")}
