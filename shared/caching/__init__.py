"""Caches on Upstash Redis that sit in front of ports (`chat`: the chat's session, canon and knowledge caches).

A package of its own so that both the chat and the API (which drops a deleted conversation's cached
context) can use it without importing each other.
"""
