"""Money: AI-spend caps enforced per call (reserve-then-settle), cost reports and estimates, the media budget.

- `budgets.PostgresBudgets(pool, settings).for_campaign(workspace, campaign)` is the `SpendGate` a step binds
  to its router and tool belt: every paid call reserves its worst case first (atomically, in Postgres) and
  settles its actual cost after; a cap that would be passed raises `BudgetExceeded` before anything is spent.
- `media.split_budget` makes a strategy's `budget_split` sum to its `budget_inr` exactly.
"""
