"""Chat: the marketer's main way in. One turn of the conversation graph, streamed and durable.

`shared.conversations.events` is the one event model a turn emits; `encoding` renders it as the SSE contract
and as AG-UI.
"""
