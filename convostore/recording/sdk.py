"""Which google-genai release a client comes from, and the private seams ``record()`` needs.

The seam is the SDK's own httpx client objects (``_api_client._httpx_client`` and
``_async_httpx_client``), which no release documents. Every release in the tested range
has them (the SDK matrix in ``tests/test_sdk_matrix.py`` proves it); a release that moves
them makes ``record()`` raise ``SdkCompatibilityError`` instead of recording nothing.
"""

from __future__ import annotations

import re
import sys
import warnings
from typing import Any, Literal

from ..errors import SdkCompatibilityError

#: The releases the SDK matrix runs (oldest and newest of each generation); see the README.
TESTED_OLDEST = (1, 55, 0)
TESTED_NEWEST = (3, 6)  # any 3.6.x
TESTED_RANGE = "1.55.0 to 3.6.x"

_warned: set[str] = set()


def version_of(client: Any) -> str | None:
    """The ``google-genai`` version the client's class comes from (None if unknown)."""
    package = type(client).__module__.split(".client", 1)[0]
    module = sys.modules.get(package) or sys.modules.get("google.genai")
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else None


def _parse(version: str) -> tuple[int, ...] | None:
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(g) for g in m.groups()) if m else None


def in_tested_range(version: str) -> bool:
    parsed = _parse(version)
    return parsed is not None and TESTED_OLDEST <= parsed and parsed[:2] <= TESTED_NEWEST


def warn_if_untested(client: Any) -> None:
    """Warn once per process and version when the SDK is outside the tested range."""
    version = version_of(client)
    if version is None or in_tested_range(version) or version in _warned:
        return
    _warned.add(version)
    warnings.warn(
        f"convostore is tested with google-genai {TESTED_RANGE}; {version} is outside that range, "
        "so check that your calls are recorded (convostore list)",
        RuntimeWarning,
        stacklevel=3,
    )


def generation(client: Any, resource: Any) -> Literal["turns", "steps"]:
    """``turns`` ({role, content}) for the retired 1.x SDK, ``steps`` for 2.0+.

    Decided by the release, not the client class: 2.0 still uses the Stainless
    ``_interactions`` client of 1.x, but speaks ``steps``.
    """
    parsed = _parse(version_of(client) or "")
    if parsed is not None:
        return "turns" if parsed[0] < 2 else "steps"
    return "turns" if ".genai._interactions" in type(resource).__module__ else "steps"


def http_clients(client: Any) -> tuple[Any, Any]:
    """The SDK's sync and async httpx clients, which ``record()`` attaches to.

    Raises ``SdkCompatibilityError`` when a release has moved them, or when there is no
    sync client to record (a client that authenticates through google-auth sessions).
    The async one may be None for such clients; then ``aio`` calls are not recorded, and
    a warning says so.
    """
    api = getattr(client, "_api_client", None)
    if api is None:
        raise TypeError(f"record() expects a google.genai Client, got {type(client).__name__}")
    version = version_of(client) or "unknown"
    missing = [name for name in ("_httpx_client", "_async_httpx_client") if not hasattr(api, name)]
    if missing:
        raise SdkCompatibilityError(
            f"google-genai {version} has no Client._api_client.{missing[0]}, the HTTP client convostore "
            f"records through (tested: {TESTED_RANGE}); nothing would be recorded, so record() refuses: "
            "pin google-genai to the tested range or upgrade convostore"
        )
    sync, async_ = api._httpx_client, api._async_httpx_client
    for name, http in (("_httpx_client", sync), ("_async_httpx_client", async_)):
        if http is not None and not callable(getattr(http, "send", None)):
            raise SdkCompatibilityError(
                f"google-genai {version}: Client._api_client.{name} has no send() method, "
                f"so convostore cannot record through it (tested: {TESTED_RANGE})"
            )
    if sync is None:
        raise SdkCompatibilityError(
            f"this google-genai {version} client has no httpx client to record through "
            "(it authenticates with google-auth sessions); use an API key client"
        )
    if async_ is None:
        warnings.warn("this client has no async httpx client: client.aio calls will not be recorded",
                      RuntimeWarning, stacklevel=3)
    return sync, async_
