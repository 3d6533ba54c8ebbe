"""Prompt text of the campaign graph's agents, and the builders that put values into prompts.

Instructions come from code, the brief and the brand kit; everything read from the web, the knowledge
base, memory, human feedback, drafts or research a model condensed from those is quoted as untrusted
data (`shared.safety.untrusted`), and every system instruction ends with the rule saying so.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.safety.untrusted import quote, quote_json, quote_lines, with_rule
from shared.writing.prompting import language_instruction

PLANNER = with_rule(
    "You are Muse's campaign planner for an Indian brand. Turn the brief into a plan: objective, "
    "audience, the channels to use, measurable KPIs and up to four web research queries. "
    "A 'move' is a small, fast action: at most two channels and two queries."
)
SUMMARIZER = with_rule(
    "Condense the research into key findings. Every finding cites the ids of the sources it rests on; "
    "never state a number that is not in a source."
)
STRATEGIST = with_rule(
    "You are Muse's strategist. From the plan and research, choose the brand positioning, key messages "
    "and a budget in INR split across the plan's channels. Respect the brief's budget if it gives one. "
    "When festivals fall in the campaign's window, build on those the calendar lists for its audience."
)
WRITER = with_rule(
    "You write marketing copy for one channel, in the brand's voice, from the approved strategy. "
    "Fix every critique listed. Never use a banned term; include required disclaimers verbatim."
)
REVIEWER = with_rule(
    "You review research against a campaign plan. Propose adding a specialist only when a finding calls for it "
    "(a competitor's launch, a festival in the window, an audience shift) and dropping one only when it is moot. "
    "Give every change a one-sentence reason. Propose creative angles the findings support."
)
BRIEFER = with_rule(
    "You are the orchestrator writing a complete brief for one channel: goal, audience, key message, proof "
    "points from the research (only claims the sources support), tone, what must be included and avoided, the "
    "call to action and the content type's format rules from the canon. A writer will see nothing but this brief."
)


def language_of(brief: Mapping[str, Any], channel: str) -> str:
    """The language `channel`'s copy is written in: the brief's per-channel override, else its `language`."""
    return str((brief.get("channel_languages") or {}).get(channel) or brief.get("language") or "en")


def as_json(value: Any) -> str:
    """`value` as compact indented JSON for a prompt (non-ASCII kept as is, dates and the like as strings)."""
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _plan_without_angles(plan: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k != "angles"}


def _angles(plan: Mapping[str, Any]) -> str:
    angles = list(plan.get("angles") or [])
    return f"\nAngles suggested by the research:\n{quote_lines(angles, source='research')}" if angles else ""


def _feedback(feedback: Sequence[str], heading: str) -> str:
    return f"\n{heading}\n{quote_lines(list(feedback), source='feedback', label='human feedback')}" if feedback else ""


def plan_prompt(kind: str, brief: Mapping[str, Any], *, remembered: Sequence[str] = (),
                feedback: Sequence[str] = ()) -> str:
    """The planner's prompt: the brief (the task), then memory and feedback as quoted data."""
    prompt = f"Kind: {kind}\nBrief:\n{as_json(brief)}"
    if remembered:
        prompt += f"\nWhat this brand's memory says:\n{quote_lines(list(remembered), source='memory')}"
    return prompt + _feedback(feedback, "Feedback on the previous strategy (address it):")


def review_prompt(plan: Mapping[str, Any], findings: Sequence[Mapping[str, Any]]) -> str:
    """The review's prompt: the plan, then each finding quoted with its citation id."""
    quoted = "\n".join(quote(f"{f['title']}\n{f['content']}", source=_source_of(str(f["id"])), id=str(f["id"]))
                       for f in findings)
    return f"Plan:\n{as_json(_plan_without_angles(plan))}{_angles(plan)}\nFindings:\n{quoted or '(none)'}"


def summary_prompt(objective: str, sources: Sequence[Mapping[str, Any]]) -> str:
    """The research summary's prompt: each source quoted with the id to cite it by."""
    quoted = "\n".join(quote(f"{s['title']}\n{s['content']}", source=_source_of(str(s["id"])), id=str(s["id"]))
                       for s in sources)
    return f"Objective: {objective}\nSources (cite them by their id):\n{quoted or '(none)'}"


def strategy_prompt(brief: Mapping[str, Any], plan: Mapping[str, Any], research: Mapping[str, Any], *,
                    constraints: Mapping[str, Any] | None = None, feedback: Sequence[str] = (),
                    festivals: Sequence[Mapping[str, Any]] = ()) -> str:
    """The strategist's prompt: brief, plan, the festival calendar's festivals and workspace constraints;
    research and feedback quoted."""
    prompt = (f"Brief:\n{as_json(brief)}\nPlan:\n{as_json(_plan_without_angles(plan))}{_angles(plan)}\n"
              f"Research:\n{quote_json(research, source='research', label='research summary')}")
    if festivals:
        prompt += "\nFestivals in the campaign window (festival calendar):\n" + "\n".join(
            f"- {f['name']}: {f['date']} ({f['scope']}; selling from {f['window_start']})" for f in festivals)
    if constraints:
        prompt += f"\nBudget constraints:\n{as_json(constraints)}"
    return prompt + _feedback(feedback, "Human feedback to address:")


def brief_context(strategy: Mapping[str, Any], research: Mapping[str, Any], plan: Mapping[str, Any],
                  voice: Sequence[str]) -> str:
    """What the briefs of all channels of a campaign share: strategy, research summary, angles, voice."""
    return (f"Strategy:\n{as_json(strategy)}\n"
            f"Research:\n{quote_json(research, source='research', label='research summary')}"
            f"{_angles(plan)}\nBrand voice: {', '.join(voice)}")


def brief_prompt(channel: str, canon: Mapping[str, Any], strategy: Mapping[str, Any], research: Mapping[str, Any],
                 plan: Mapping[str, Any], voice: Sequence[str], *, facts: Sequence[str] = (),
                 feedback: Sequence[str] = (), language: str = "en", keep: Sequence[str] = (),
                 code_mixing: bool = False) -> str:
    """Tier 1's prompt for one channel: approved strategy and brand voice, then canon; research, memory
    and feedback quoted. The part every channel shares (`brief_context`) comes first, so it can be sent
    once as a context cache (`shared.models.context`). The brief is written in the channel's language, so
    the writer reads it in the language it writes."""
    prompt = (f"{brief_context(strategy, research, plan, voice)}\n"
              f"Channel: {channel}\nWrite this brief in the copy's language. "
              f"{language_instruction(language, keep=keep, code_mixing=code_mixing)}\n"
              f"Canon for this content type:\n{as_json(canon)}")
    if facts:
        prompt += f"\nBrand memory:\n{quote_lines(list(facts), source='memory')}"
    return prompt + _feedback(feedback, "Human feedback:")


def writer_prompt(channel: str, style: str, brief: Mapping[str, Any], *, variant: str = "a",
                  current: Mapping[str, Any] | None = None, fixes: Mapping[str, Any] | None = None,
                  language: str = "en", keep: Sequence[str] = (), code_mixing: bool = False) -> str:
    """A Tier 2 writer's prompt: its brief alone, the language to write in; on a revision the current copy
    (quoted) and what to fix."""
    prompt = (f"Write {channel} copy from this brief alone.\n"
              f"{language_instruction(language, keep=keep, code_mixing=code_mixing)}\n"
              f"Style: {style}\nBrief:\n{as_json(brief)}")
    if variant != "a":
        prompt += f"\nThis is variant {variant.upper()} of an A/B test: use a clearly different hook."
    if current is not None and fixes is not None:
        prompt += (f"\nCurrent copy:\n{quote_json(dict(current), source='copy', label='current draft')}\n"
                   f"Rewrite ONLY these fields, fixing:\n{as_json(fixes)}")
    return prompt


def _source_of(source_id: str) -> Any:
    return "knowledge" if source_id.startswith("kb:") else "research" if source_id.startswith("festival:") else "web"
