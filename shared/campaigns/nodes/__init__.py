"""The nodes of the campaign graph, one module per step function that runs them.

Each node reads its state, reaches the world only through `runtime.context` (a `Deps`), and returns
a partial update. Side effects are idempotent per (campaign, channel, variant), since a node re-runs
from its first line whenever its step is retried. Changes of course are returned as
`course_changes`, which the runtime turns into `plan.changed` events with their reasons.

A module imports only what its own nodes need: a step function loads its own nodes and nobody
else's (`shared.campaigns.graph.build_campaign_graph`).
"""
