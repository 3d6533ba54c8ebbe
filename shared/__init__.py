"""Muse's Python library: everything the functions in `functions/` call.

Kept import-light on purpose: the webhook function imports only a few modules of this package so
that it answers within PhonePe's few seconds even on a cold start.
"""
