"""The guard every request passes: the token, the Host check, the security headers.

A pure ASGI middleware (not ``BaseHTTPMiddleware``) so server-sent events stream
through it untouched. Without a token the app answers only requests addressed to a
loopback name, so a web page that rebinds its DNS name to 127.0.0.1 cannot read the
archive; with a token, every request (pages, API, media, static files, events) needs
it: ``Authorization: Bearer T``, or ``?token=T`` once, which sets an HttpOnly,
SameSite=Strict cookie and redirects to the same URL without the token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "convostore_token"

#: Scripts and styles only from the app's own /static files; no inline code, no frames, no outside fetches.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (so no token is needed)."""
    import ipaddress

    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """Checks the token (or the Host, when there is none) and adds the security headers."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token is None:
            if _host_name(headers.get("host", "")).lower() not in LOOPBACK_NAMES:
                await _plain(send, 400, "this server answers only requests to 127.0.0.1 or localhost")
                return
        else:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            given = [v for k, v in query if k == "token"]
            if given:
                if not self._ok(given[-1]):
                    await _plain(send, 401, "wrong token")
                    return
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                await _redirect(send, quote(scope.get("root_path", "") + scope["path"]) + ("?" + rest if rest else ""), self.token)
                return
            if not (self._ok(_bearer(headers.get("authorization", ""))) or self._ok(_cookie(headers.get("cookie", "")))):
                await _plain(send, 401, "this server needs its token: open the URL it printed (…?token=…) or send Authorization: Bearer TOKEN")
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _ok(self, value: str | None) -> bool:
        return bool(value) and self.token is not None and hmac.compare_digest(value.encode(), self.token.encode())  # type: ignore[union-attr]


def _bearer(value: str) -> str | None:
    scheme, _, credential = value.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def _cookie(value: str) -> str | None:
    for part in value.split(";"):
        name, _, v = part.strip().partition("=")
        if name == COOKIE:
            return v
    return None


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, token: str) -> None:
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1", "replace")), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0"), (b"cache-control", b"no-store"), *HEADERS]})
    await send({"type": "http.response.body", "body": b""})
