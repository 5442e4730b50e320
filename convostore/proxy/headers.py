"""What the proxy does to request and response headers, and what it reads from them.

Hop-by-hop headers belong to one connection and are never forwarded (RFC 9110 7.6.1);
the proxy's own headers (labels, token) are read and stripped; the app's credentials
are forwarded untouched but remembered per request, only to scrub a failed attempt's
row (they are never stored or logged).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

#: Headers of one connection, not of the message: never forwarded either way.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"expect",  # 100-continue is answered by the proxy's own server, not passed on
    }
)

LABELS_HEADER = b"x-convostore-labels"
TOKEN_HEADER = b"x-convostore-token"
#: Request headers that carry the app's credentials.
SECRET_HEADERS = frozenset({b"x-goog-api-key", b"authorization", b"x-api-key"})
#: Content codings the archive can decode with the standard library (``zlib``).
DECODABLE = frozenset({"gzip", "deflate", "identity"})

Headers = list[tuple[bytes, bytes]]


class HeaderError(ValueError):
    """A request header the proxy cannot act on (``kind`` names it in the error response)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Incoming:
    """A request's headers, sorted out: what to forward and what the proxy keeps for itself."""

    forward: Headers
    labels: dict[str, str] | None = None
    secrets: set[str] = field(default_factory=set)
    api_revision: str | None = None
    api_client: str | None = None
    content_type: bytes = b""
    accept_encoding: bytes | None = None
    has_body: bool = False


def parse_labels(value: str) -> dict[str, str]:
    """``k=v,k2=v2`` (values %-decoded) → a dict; an item without ``=`` or a key is an error."""
    labels: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, eq, val = item.partition("=")
        key = unquote(key.strip())
        if not eq or not key:
            raise HeaderError("labels", f"x-convostore-labels: expected k=v[,k2=v2], got {item.strip()[:60]!r}")
        labels[key] = unquote(val.strip())
    return labels


def _token_matches(given: bytes, token: bytes) -> bool:
    return hmac.compare_digest(given.strip(), token)


def sort_request(raw: Headers, token: str | None) -> Incoming:
    """Split the client's headers: the ones to forward, the labels, the proxy token check.

    With ``token`` set, the request must carry it (``x-convostore-token``, or
    ``Authorization: Bearer <token>``), and whichever carried it is not forwarded.
    Raises ``HeaderError`` for a missing or wrong token and for malformed labels.
    """
    expected = token.encode() if token else None
    authorized = expected is None
    incoming = Incoming(forward=[])
    connection_named: set[bytes] = set()
    for name, value in raw:
        if name == b"connection":
            connection_named |= {part.strip().lower() for part in value.split(b",")}
    for name, value in raw:
        name = name.lower()
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            incoming.has_body = True
        if name in HOP_BY_HOP or name in connection_named:
            continue
        if name == LABELS_HEADER:
            labels = parse_labels(value.decode("latin-1"))
            incoming.labels = {**(incoming.labels or {}), **labels}
            continue
        if name == TOKEN_HEADER:
            if expected is not None and _token_matches(value, expected):
                authorized = True
            continue
        if name == b"authorization" and expected is not None:
            scheme, _, given = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and _token_matches(given, expected):
                authorized = True
                continue  # the proxy's token, not the upstream's
        if name in SECRET_HEADERS:
            text = value.decode("latin-1")
            incoming.secrets.add(text)
            if text.lower().startswith("bearer "):
                incoming.secrets.add(text[7:].strip())
        elif name == b"api-revision":
            incoming.api_revision = value.decode("latin-1")
        elif name == b"x-goog-api-client":
            incoming.api_client = value.decode("latin-1")
        elif name == b"content-type":
            incoming.content_type = value
        elif name == b"accept-encoding":
            incoming.accept_encoding = value
        incoming.forward.append((name, value))
    if not authorized:
        raise HeaderError("token", "convostore proxy: missing or wrong proxy token (x-convostore-token or Authorization: Bearer)")
    return incoming


def query_secrets(query: bytes) -> set[str]:
    """``?key=`` values: credentials in the query string."""
    if b"key=" not in query:
        return set()
    return {v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=False) if k == "key" and v}


def decodable_encoding(accept: bytes | None) -> bytes:
    """The client's ``Accept-Encoding`` narrowed to codings the archive can decode, for
    Interactions calls only (their bodies are teed into the archive)."""
    if accept is None:
        return b"identity"
    kept = [part.strip() for part in accept.split(b",") if part.split(b";")[0].strip().decode("latin-1").lower() in DECODABLE]
    return b", ".join(kept) or b"identity"


def response_headers(raw: Headers) -> Headers:
    """The upstream's response headers minus hop-by-hop ones (``content-length`` is kept:
    the body is forwarded byte for byte, so it stays exact)."""
    connection_named: set[bytes] = set()
    for name, value in raw:
        if name.lower() == b"connection":
            connection_named |= {part.strip().lower() for part in value.split(b",")}
    return [(n, v) for n, v in raw if n.lower() not in HOP_BY_HOP and n.lower() not in connection_named]
