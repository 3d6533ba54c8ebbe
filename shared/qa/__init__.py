"""The QA gate: layered, explainable checks of copy against a workspace's brand kit.

- `shared.qa.gate`: `check` (one piece of copy) and `review` (a campaign's drafts): deterministic lint,
  claims check, then a model judge per guideline; score = guidelines passed ÷ guidelines tested.
- `shared.qa.correction`: the self-correction config and the targeted-rewrite planner.
- `shared.qa.lint`, `shared.qa.claims`, `shared.qa.judge`: the three layers.
"""
