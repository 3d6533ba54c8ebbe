"""UPI Autopay plans (issue 10): a workspace pays its plan tier monthly through a PhonePe v2 mandate.

`messages` is the `subscriptions` function's QStash message and the webhook's routing of `subscription.*`
events (import-light); `lifecycle` the mandate and its cycles: setup, activation, notify, redeem, renewal,
grace, lapse and cancellation (see its docstring); `wiring` builds the service of a deployment.
"""
