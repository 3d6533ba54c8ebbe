"""Chat: the marketer's main way in. One turn of the conversation graph, streamed and durable.

`events` is the one event model a turn emits; the SSE contract and AG-UI are two renderings of it.
"""
