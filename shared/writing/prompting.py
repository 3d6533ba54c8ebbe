"""How every writing prompt states the language to write in, shared by the campaign graph's writers and the tool
belt's content executor (the chat's Tier 2), so copy is asked for in one way wherever it is written."""

from __future__ import annotations

from collections.abc import Sequence

from shared.writing.specs import LANGUAGE_NAMES, language_label


def language_instruction(language: str, *, keep: Sequence[str] = (), code_mixing: bool = False) -> str:
    """How every writing prompt states the language: a `Write in:` line (the form the Gemini emulator reads
    too), the script, what keeps its form, and whether code-mixing is allowed."""
    line = f"Write in: {language_label(language)}."
    kept = ", ".join(dict.fromkeys(keep))
    if language == "en":
        return line + (f" Keep these exactly as written: {kept}." if kept else "")
    name = LANGUAGE_NAMES[language]
    line += (f" Every sentence is natural {name} written in its own script, not a word-for-word translation. "
             "The research and strategy are in English: carry over their ideas, facts and dates, not their "
             "English sentences.")
    if kept:
        line += f" Keep brand names, product names and approved terms exactly as written, in Latin script: {kept}."
    if code_mixing:
        line += (f" The brand allows code-mixing: English words {name} speakers use every day may stay in English "
                 "where that is how the audience talks.")
    else:
        line += f" Do not mix in English words or romanised {name}: the brand publishes in {name} script only."
    return line
