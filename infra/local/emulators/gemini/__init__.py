"""A wire-compatible emulator of the Gemini Developer API for the local stack and tests.

The official `google-genai` SDK talks to it unchanged through `HttpOptions(base_url=...)`. Answers are
deterministic (same request, same answer) and visibly marked as emulated; structured output is
generated to satisfy the request's schema, so `response.parsed` validates. Tests steer it through a
small control plane under `/_emulator/`: scripted answers, injected errors and delays, and a log of
every request served.

Function calling: a scripted response `{"function_calls": [{"name": ..., "args": {...}}]}` answers with
`functionCall` parts instead of text. The request must declare every called function in its `tools`
(else 400, as a wrong script is a test bug); the next turn, carrying the `functionResponse`, is
answered by the next matching rule (use `times` to order a conversation). A request whose
`toolConfig` sets function calling to `NONE` gets the default text answer instead, as on the real API.
A scripted `text` next to `function_calls` is what the model says before calling: streamed first, the
calls in the last chunk. Any scripted response may add `thoughts` (a `thought: true` part first, as with
`include_thoughts`) and, for `streamGenerateContent?alt=sse`, `chunks` (how many pieces its text
streams in, default 3; each chunk is a whole `GenerateContentResponse`, the last with finish reason and usage).

Modules, one concept each: `app` (routes and the API-key check), `actions` (the model actions),
`scripting` (rules, request log, admission), `generation` (deterministic answers and streaming),
`schema` (schema-valid structured output), `function_calling`, `embeddings`, `caches`
(`cachedContents`), `text` (request text, tokens, seeds) and `errors`.
"""

from infra.local.emulators.gemini.app import API_VERSIONS, create_app
from infra.local.emulators.gemini.embeddings import DEFAULT_EMBEDDING_DIMENSIONS, embed_text
from infra.local.emulators.gemini.schema import SchemaFaker
from infra.local.emulators.gemini.scripting import GENERATION_ACTIONS
from infra.local.emulators.gemini.text import estimate_tokens, keywords, request_text

__all__ = [
    "API_VERSIONS",
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "GENERATION_ACTIONS",
    "SchemaFaker",
    "create_app",
    "embed_text",
    "estimate_tokens",
    "keywords",
    "request_text",
]
