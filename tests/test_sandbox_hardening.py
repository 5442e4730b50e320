"""The sandbox answers malformed or hostile requests with a clear HTTP error, never a dropped
connection or a traceback: users point their own CI at it."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys

import urllib.error
import urllib.request
import orjson
import pytest

from convostore.sandbox import Sandbox

MODEL = "gemini-2.5-flash"


def raw(sb: Sandbox, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send a hand-written request on a raw socket; the status, headers and body of the answer."""
    host, port = sb._server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"connection dropped without an answer: {data!r}"
            data += chunk
        header_blob, _, rest = data.partition(b"\r\n\r\n")
        lines = header_blob.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(rest) < length:
            chunk = s.recv(65536)
            assert chunk, "answer cut short"
            rest += chunk
    return status, headers, rest


def call(method: str, url: str, body: object = None, key: bool = True) -> tuple[int, bytes]:
    """An ordinary HTTP client's request: (status, body)."""
    req = urllib.request.Request(url, method=method, data=orjson.dumps(body) if body is not None else None)
    if key:
        req.add_header("x-goog-api-key", "k")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post_head(path: str, length: str, key: str = "x-goog-api-key: k") -> str:
    return f"POST {path} HTTP/1.1\nHost: sandbox\n{key}\nContent-Type: application/json\nContent-Length: {length}\n"


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "12 34", "+7"])
def test_a_bad_content_length_is_a_400_not_a_dropped_connection(sandbox, length):
    status, _, body = raw(sandbox, post_head("/v1/interactions", length), b'{"model": "x"}')
    assert status == 400
    assert "Content-Length" in orjson.loads(body)["error"]["message"]


def test_a_body_past_the_limit_is_a_413_before_it_is_read():
    with Sandbox(max_body=1024) as sb:
        status, headers, body = raw(sb, post_head("/v1/interactions", str(10 * 1024 * 1024)))
        assert status == 413 and headers.get("connection") == "close"
        assert "1024" in orjson.loads(body)["error"]["message"]
        status, _ = call("POST", f"{sb.base_url}/v1/interactions", {"model": MODEL, "input": "x" * 900})
        assert status == 200  # a body within the limit is served


def test_the_default_body_limit_is_32_mib(sandbox):
    status, _, _ = raw(sandbox, post_head("/v1/interactions", str(32 * 1024 * 1024 + 1)))
    assert status == 413
    assert sandbox.state.max_body == 32 * 1024 * 1024


@pytest.mark.parametrize("auth", ["Authorization: Bearer", "Authorization: Bearer   ", "Authorization: Basic abc",
                                  "x-goog-api-key: "])
def test_an_empty_or_foreign_credential_is_a_401(sandbox, auth):
    body = orjson.dumps({"model": MODEL, "input": "hi"})
    status, _, _ = raw(sandbox, post_head("/v1/interactions", str(len(body)), key=auth), body)
    assert status == 401
    status, _, _ = raw(sandbox, post_head("/v1/interactions", str(len(body)), key="Authorization: Bearer tok"), body)
    assert status == 200


@pytest.mark.parametrize("query", ["status=99", "status=200", "status=600", "status=abc", "count=-1", "retry_after=-2",
                                   "retry_after=nan"])
def test_an_invalid_injected_failure_is_a_400_and_injects_nothing(sandbox, query):
    status, body = call("POST", f"{sandbox.base_url}/_sandbox/fail?{query}", key=False)
    assert status == 400 and orjson.loads(body)["error"]["message"]
    status, _ = call("POST", f"{sandbox.base_url}/v1/interactions", {"model": MODEL, "input": "hi"})
    assert status == 200


def test_an_invalid_status_is_refused_in_process_too(sandbox):
    with pytest.raises(ValueError, match="400-599"):
        sandbox.fail(99)


@pytest.mark.parametrize("last", ["abc", "1.5", "0x10"])
def test_a_bad_last_event_id_is_a_400(sandbox, last):
    _, sse = call("POST", f"{sandbox.base_url}/v1/interactions", {"model": MODEL, "input": "hi", "stream": True})
    first = next(line for line in sse.decode().splitlines() if line.startswith("data: {"))
    iid = orjson.loads(first[6:])["interaction"]["id"]
    status, body = call("GET", f"{sandbox.base_url}/v1/interactions/{iid}?stream=true&last_event_id={last}")
    assert status == 400 and "last_event_id" in orjson.loads(body)["error"]["message"]


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed or killed client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_the_served_sandbox_survives_clients_that_go_away_without_a_traceback():
    proc = subprocess.Popen([sys.executable, "-m", "convostore", "sandbox", "--port", "0", "--max-body", "4096"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        host, port = url.removeprefix("http://").split(":")
        body = orjson.dumps({"model": MODEL, "input": "Tell me a long story " * 50, "stream": True})
        for request in (
            b"POST /v1/interactions HTT",  # reset in the middle of the request line
            b"POST /v1/interactions HTTP/1.1\r\nHost: x\r\nx-goog-api-key: k\r\nContent-Length: 500\r\n\r\n{\"mo",  # body cut
            b"POST /v1/interactions HTTP/1.1\r\nHost: x\r\nx-goog-api-key: k\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body),  # a stream abandoned after its first bytes
        ):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(request)
            if request.endswith(b"}"):
                assert s.recv(64)
            _reset(s)
        status, _ = call("POST", f"{url}/v1/interactions", {"model": MODEL, "input": "still there?"})
        assert status == 200
        status, _ = call("POST", f"{url}/v1/interactions", {"model": MODEL, "input": "x" * 5000})
        assert status == 413  # --max-body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err, err
