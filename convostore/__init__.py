"""convostore: a local, lossless archive of Gemini Interactions API conversations.

    import convostore
    from google import genai

    store = convostore.Store()                      # SQLite in the user data dir
    client = convostore.record(genai.Client(), store=store)
    # ... use client.interactions as usual; every exchange is archived ...
    convostore.history(store, interaction_id)       # the stateless input that continues it

Names are imported lazily so `import convostore` stays cheap for the CLI.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Store": ("convostore.store", "Store"),
    "record": ("convostore.recorder", "record"),
    "annotate": ("convostore.recorder", "annotate"),
    "history": ("convostore.rebuild", "history"),
    "replay": ("convostore.replaying", "replay"),
    "compare": ("convostore.comparison", "compare"),
    "Sandbox": ("convostore.sandbox", "Sandbox"),
    "delete": ("convostore.removal", "delete"),
    "purge": ("convostore.removal", "purge"),
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers: the names are re-exported ("as")
    from .comparison import compare as compare
    from .rebuild import history as history
    from .recorder import annotate as annotate, record as record
    from .removal import delete as delete, purge as purge
    from .replaying import replay as replay
    from .sandbox import Sandbox as Sandbox
    from .store import Store as Store


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'convostore' has no attribute {name!r}") from None
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
