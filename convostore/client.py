"""A recorded ``genai.Client`` built from the environment, for the CLI's commands that call the API."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import MissingAPIKeyError

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def api_key_from_env() -> str:
    """The key from ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``, or a clear error."""
    for var in KEY_VARS:
        value = os.environ.get(var)
        if value:
            return value
    raise MissingAPIKeyError(
        "no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY); "
        "for the offline sandbox any value works with GOOGLE_GEMINI_BASE_URL"
    )


def make_client(store: "Store", *, api_key: str | None = None, base_url: str | None = None, **record_options: Any) -> Any:
    """A ``genai.Client`` recording into ``store``.

    ``GOOGLE_GEMINI_BASE_URL`` (read by the SDK itself) or ``base_url`` points it at a
    sandbox. The key is used for the calls and never stored.
    """
    from google import genai
    from google.genai import types

    from .recorder import record

    key = api_key or api_key_from_env()
    base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL")
    http_options = types.HttpOptions(base_url=base_url) if base_url else None
    return record(genai.Client(api_key=key, http_options=http_options), store=store, **record_options)
