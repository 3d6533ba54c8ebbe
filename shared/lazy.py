"""Heavy third-party SDKs, imported when first used instead of when a function starts.

A cold start pays for every module imported before the first answer: google-genai alone costs about
0.2 s, and a step that never calls Gemini should not pay for it. A module binds such an SDK like this:

    if TYPE_CHECKING:
        from google.genai import types
    else:
        types = lazy_module("google.genai.types")

Type checkers see the real module and the code uses it as if it were imported normally; the import
runs on the first attribute read (`types.HttpOptions`), under Python's import lock, and every later
read is a `sys.modules` lookup.
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    """Stands in for a module until an attribute of it is read."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """A stand-in for module `name` that imports it on the first attribute read."""
    return _LazyModule(name)
