"""Apps in other languages: the real JavaScript SDK (``@google/genai`` from npm, run with
node) and curl, pointed at ``convostore proxy`` in front of the sandbox, and (the JS SDK)
straight at the sandbox, which shows the sandbox speaks what that SDK sends.

One sandbox, one archive, one proxy and one node process per module; tests that need a
short upstream timeout or a broken upstream start their own small proxy. Waits are on
events (the sandbox's ``hold``/``hold_streams``/``release``/``settle``/``advance``), never
sleeps; the timeouts below only bound how long a broken proxy can make a test hang.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from convostore.proxy import RunningProxy, running
from convostore.sandbox import Sandbox
from convostore.store import Store
from tests.js_client import JsClient, ensure_node
from tests.upstreams import resetting_server

MODEL = "gemini-2.5-flash"
JS_KEY = "js-key-4d1c8e2b"
CURL_KEY = "curl-header-key-9a7f31"
QUERY_KEY = "curl-query-key-6e02b5"
RETENTION = 3600  # the sandbox forgets after an hour of its own clock: advance() gets there at once

pytestmark = pytest.mark.timeout(120)


# --- the module's parts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> str:
    return ensure_node()


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(retention=RETENTION) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(tmp_path_factory.mktemp("proxy-clients") / "archive.db")
    yield store
    store.close()


@pytest.fixture(scope="module")
def proxy(archive: Store, sb: Sandbox) -> Iterator[RunningProxy]:
    with running(archive, upstream=sb.base_url) as p:
        yield p


@pytest.fixture(scope="module")
def js(node: str, proxy: RunningProxy) -> Iterator[JsClient]:
    client = JsClient(node, proxy.url, JS_KEY)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _sandbox_released(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that failed while the sandbox held its gate must not hang the next one."""
    yield
    for name in ("sb", "direct_sandbox"):
        if name in request.fixturenames:
            request.getfixturevalue(name).release()


def rows(proxy: RunningProxy, *ids: str) -> list[Any]:
    """The archived rows, once the proxy has recorded everything it answered (the app has
    its answer before the proxy's recorder thread has written it, off the request path)."""
    assert proxy.flush(30), "the proxy did not finish recording within 30 s"
    store = proxy.app.capture.store
    return [store.get(i) for i in ids]


# --- curl ------------------------------------------------------------------------------------


CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")


def curl(url: str, body: dict[str, Any] | None = None, *, key: str | None = CURL_KEY, method: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """One curl call as a shell user types it: status, response headers, JSON body."""
    args = [CURL or "curl", "-sS", "--max-time", "60", "-D", "-"]
    if key:
        args += ["-H", f"x-goog-api-key: {key}"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if body is not None:
        args += ["-H", "content-type: application/json", "-d", orjson.dumps(body).decode()]
    if method:
        args += ["-X", method]
    done = subprocess.run([*args, url], capture_output=True, timeout=90)
    assert done.returncode == 0, done.stderr.decode()
    head, _, payload = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    got = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), got, orjson.loads(payload) if payload.strip() else None


def curl_text(interaction: dict[str, Any]) -> str:
    """The model's words (a GET carries the turn's input steps too)."""
    return "".join(block.get("text", "") for step in interaction.get("steps", []) if step.get("type") == "model_output"
                   for block in step.get("content", []))


class CurlStream:
    """``curl -N``: an event stream read line by line as curl prints it."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [CURL or "curl", "-sS", "-N", "--max-time", "60", "-H", f"x-goog-api-key: {CURL_KEY}",
             "-H", "content-type: application/json", "-d", orjson.dumps({**body, "stream": True}).decode(), url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def event(self, timeout: float = 30) -> dict[str, Any] | None:
        """The next ``data:`` event (None at the end of the stream)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"curl printed no event for {timeout} s") from None
            if line is None:
                return None
            if line.startswith(b"data: ") and line.strip() != b"data: [DONE]":
                event: dict[str, Any] = orjson.loads(line[6:])
                return event

    def rest(self) -> list[dict[str, Any]]:
        out = []
        while (event := self.event()) is not None:
            out.append(event)
        return out

    def close(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=60)
        stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        return code, stderr


# --- the JavaScript SDK straight at the sandbox --------------------------------------------------


@pytest.fixture(scope="module")
def direct_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def js_direct(node: str, direct_sandbox: Sandbox) -> Iterator[JsClient]:
    client = JsClient(node, direct_sandbox.base_url, JS_KEY)
    yield client
    client.close()


def test_the_js_sdk_holds_a_conversation_with_the_sandbox(js_direct, direct_sandbox):
    first = js_direct.call("create", params={"model": MODEL, "input": "Hi, my name is Ada. I like chess."})
    second = js_direct.call("create", params={"model": MODEL, "input": "What is my name?",
                                              "previous_interaction_id": first["id"]})
    assert first["status"] == second["status"] == "completed"
    assert "Your name is Ada" in second["text"]
    assert direct_sandbox.requests[-1]["previous_interaction_id"] == first["id"]
    assert direct_sandbox.calls[-1] == ("POST", "/v1/interactions")  # the current API, steps


def test_the_js_sdk_yields_sandbox_events_one_by_one(js_direct, direct_sandbox):
    direct_sandbox.hold_streams(3)
    js_direct.send("stream", params={"model": MODEL, "input": "Tell me a story."})
    early = [js_direct.line()["event"]["event_type"] for _ in range(3)]
    assert early == ["interaction.created", "interaction.status_update", "step.start"]
    direct_sandbox.release()
    events, answer = js_direct.answer()
    assert events[-1]["event_type"] == "interaction.completed"
    assert "Tell me a story" in answer["ok"]["text"]


def test_the_js_sdk_polls_a_background_interaction_on_the_sandbox(js_direct, direct_sandbox):
    started = js_direct.call("create", params={"model": MODEL, "input": "Think in the background.", "background": True})
    assert started["status"] == "in_progress"
    assert js_direct.call("get", id=started["id"])["status"] == "in_progress"
    direct_sandbox.settle()
    done = js_direct.call("get", id=started["id"])
    assert done["status"] == "completed" and "Think in the background" in done["text"]


# --- the JavaScript SDK through the proxy ---------------------------------------------------------


def test_a_js_conversation_through_the_proxy_is_archived_linked_and_labelled(js, proxy, sb):
    labels = {"x-convostore-labels": "app=node,team=search"}
    t1 = js.call("create", params={"model": MODEL, "input": "Hi, my name is Ada. I like chess."}, headers=labels)
    t2 = js.call("create", params={"model": MODEL, "input": "What is my name?", "previous_interaction_id": t1["id"]},
                 headers=labels)
    assert "Your name is Ada" in t2["text"]
    r1, r2 = rows(proxy, t1["id"], t2["id"])
    assert (r1.link, r2.link) == ("root", "server")
    assert r2.parent_id == r1.id and r1.conversation_id == r2.conversation_id == r1.id
    assert r1.labels == r2.labels == {"app": "node", "team": "search"}
    assert r2.input_text == "What is my name?" and r2.output_text == t2["text"]
    assert sb.requests[-1]["previous_interaction_id"] == t1["id"]  # chained on the server, not rebuilt


def test_js_stream_events_arrive_one_by_one_through_the_proxy(js, proxy, sb):
    sb.hold_streams(3)  # the sandbox sends three events, then waits for release()
    js.send("stream", params={"model": MODEL, "input": "Tell me a story, slowly."})
    early = [js.line(timeout=20)["event"]["event_type"] for _ in range(3)]  # arrive while the upstream holds the rest
    assert early == ["interaction.created", "interaction.status_update", "step.start"]
    sb.release()
    events, answer = js.answer()
    assert events[-1]["event_type"] == "interaction.completed"
    (row,) = rows(proxy, answer["ok"]["id"])
    assert row.stream and not row.partial and row.status == "completed"
    assert row.output_text == answer["ok"]["text"]


def test_a_js_chain_the_server_forgot_is_rebuilt_from_the_archive(js, proxy, sb):
    t1 = js.call("create", params={"model": MODEL, "input": "Hi, my name is Grace. I like sailing."})
    t2 = js.call("create", params={"model": MODEL, "input": "What do I like?", "previous_interaction_id": t1["id"]})
    sb.advance(RETENTION + 1)  # the sandbox's retention passes: both turns are gone upstream
    t3 = js.call("create", params={"model": MODEL, "input": "What is my name?", "previous_interaction_id": t2["id"]})
    assert "Your name is Grace" in t3["text"] and "3 user turns" in t3["text"]
    sent = sb.requests[-1]
    assert "previous_interaction_id" not in sent  # sent statelessly, the history from the archive
    assert [s.get("content") for s in sent["input"] if s.get("type") == "user_input"][0][0]["text"].startswith("Hi, my name is Grace")
    (r3,) = rows(proxy, t3["id"])
    assert r3.link == "rebuilt" and r3.parent_id == t2["id"] and r3.conversation_id == t1["id"]


def test_a_js_background_create_and_its_polls_are_recorded(js, proxy, sb):
    started = js.call("create", params={"model": MODEL, "input": "Think it over in the background.", "background": True})
    assert started["status"] == "in_progress"
    assert js.call("get", id=started["id"])["status"] == "in_progress"
    (row,) = rows(proxy, started["id"])
    assert row.background and row.status == "in_progress"
    sb.settle()
    done = js.call("get", id=started["id"])
    assert done["status"] == "completed"
    (row,) = rows(proxy, started["id"])
    assert row.status == "completed" and row.output_text == done["text"] != ""


def test_js_cancel_and_delete_through_the_proxy_update_the_archive(js, proxy, sb):
    sb.background_delay = 60  # stays running until the cancel arrives
    try:
        slow = js.call("create", params={"model": MODEL, "input": "A long background job.", "background": True})
        assert js.call("cancel", id=slow["id"])["status"] == "cancelled"
    finally:
        sb.background_delay = 0.2
    kept = js.call("create", params={"model": MODEL, "input": "Delete me later."})
    js.call("delete", id=kept["id"])
    cancelled, deleted = rows(proxy, slow["id"], kept["id"])
    assert cancelled.status == "cancelled"
    assert deleted.server_state == "deleted" and deleted.output_text  # gone upstream, kept here
    assert js.fails("get", id=kept["id"])["status"] == 404


def test_a_429_reaches_the_js_sdk_with_its_retry_after(js, sb):
    sb.fail(429, retry_after=7)
    error = js.fails("create", params={"model": MODEL, "input": "Too fast?"})
    assert error["status"] == 429 and error["headers"]["retry-after"] == "7"


# --- curl through the proxy -------------------------------------------------------------------------


@needs_curl
def test_a_curl_conversation_through_the_proxy_is_archived_linked_and_labelled(proxy, sb):
    url = f"{proxy.url}/v1/interactions"
    labels = {"x-convostore-labels": "app=curl,note=a%2Cb"}
    status, _, t1 = curl(url, {"model": MODEL, "input": "Hi, my name is Linus. I like kernels."}, headers=labels)
    assert status == 200
    status, _, t2 = curl(f"{url}?key={QUERY_KEY}", {"model": MODEL, "input": "What is my name?",
                                                      "previous_interaction_id": t1["id"]}, key=None, headers=labels)
    assert status == 200 and "Your name is Linus" in curl_text(t2)
    status, _, got = curl(f"{url}/{t2['id']}")
    assert status == 200 and got["id"] == t2["id"]
    r1, r2 = rows(proxy, t1["id"], t2["id"])
    assert (r1.link, r2.link) == ("root", "server") and r2.parent_id == r1.id
    assert r1.labels == r2.labels == {"app": "curl", "note": "a,b"}


@needs_curl
def test_curl_sees_stream_events_one_by_one_through_the_proxy(proxy, sb):
    sb.hold_streams(2)
    stream = CurlStream(f"{proxy.url}/v1/interactions", {"model": MODEL, "input": "Stream to curl."})
    first, second = stream.event(timeout=20), stream.event(timeout=20)  # printed by curl -N while the upstream holds the rest
    assert first is not None and second is not None
    assert (first["event_type"], second["event_type"]) == ("interaction.created", "interaction.status_update")
    sb.release()
    rest = stream.rest()
    assert stream.close()[0] == 0
    assert rest[-1]["event_type"] == "interaction.completed"
    (row,) = rows(proxy, first["interaction"]["id"])
    assert row.stream and row.status == "completed" and "Stream to curl" in (row.output_text or "")


@needs_curl
def test_a_curl_chain_the_server_forgot_is_rebuilt_from_the_archive(proxy, sb):
    url = f"{proxy.url}/v1/interactions"
    _, _, t1 = curl(url, {"model": MODEL, "input": "Hi, my name is Ken. I like unix."})
    sb.advance(RETENTION + 1)
    status, _, t2 = curl(url, {"model": MODEL, "input": "What do I like?", "previous_interaction_id": t1["id"]})
    assert status == 200 and "You like unix" in curl_text(t2)
    assert "previous_interaction_id" not in sb.requests[-1]
    (r2,) = rows(proxy, t2["id"])
    assert r2.link == "rebuilt" and r2.parent_id == t1["id"]


@needs_curl
def test_curl_background_create_then_get_polling(proxy, sb):
    url = f"{proxy.url}/v1/interactions"
    _, _, started = curl(url, {"model": MODEL, "input": "Background, please.", "background": True})
    assert started["status"] == "in_progress"
    sb.settle()
    status, _, done = curl(f"{url}/{started['id']}")
    assert status == 200 and done["status"] == "completed"
    (row,) = rows(proxy, started["id"])
    assert row.background and row.status == "completed" and row.output_text == curl_text(done)


@needs_curl
def test_a_429_reaches_curl_with_its_retry_after(proxy, sb):
    sb.fail(429, retry_after=3)
    status, headers, body = curl(f"{proxy.url}/v1/interactions", {"model": MODEL, "input": "Again?"})
    assert status == 429 and headers["retry-after"] == "3"
    assert body["error"]["message"] == "Injected failure from the sandbox."  # the upstream's own answer


# --- keys -----------------------------------------------------------------------------------------------


def _archive_bytes(db: Path) -> bytes:
    """The archive's files as bytes: the database, its WAL and shm, the spool directory."""
    return b"".join(f.read_bytes()
        for p in db.parent.iterdir() if p.name.startswith(db.name)
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file())


@needs_curl
def test_no_key_sent_through_the_proxy_reaches_the_archive(js, proxy, archive, sb):
    url = f"{proxy.url}/v1/interactions"
    created = js.call("create", params={"model": MODEL, "input": "Keep my key safe."})
    js.call("get", id=created["id"])
    curl(url, {"model": MODEL, "input": "Header key."})
    curl(f"{url}?key={QUERY_KEY}", {"model": MODEL, "input": "Query key."}, key=None)
    sb.fail(429)
    assert curl(f"{url}?key={QUERY_KEY}&alt=json", {"model": MODEL, "input": "A failed attempt."}, key=None)[0] == 429
    assert js.fails("create", params={"model": "", "input": "A refused one."})["status"] == 400
    assert proxy.flush(30)
    archive.flush()
    blob = _archive_bytes(Path(archive.path or ""))
    assert b"Keep my key safe." in blob and b"A failed attempt." in blob  # the calls are there ...
    for key in (JS_KEY, CURL_KEY, QUERY_KEY):
        assert key.encode() not in blob, f"{key} is in the archive"  # ... their keys are not


# --- an upstream that hangs or resets -------------------------------------------------------------------


@needs_curl
def test_an_upstream_that_hangs_gives_js_and_curl_an_error_not_a_hang(node, archive, sb):
    sb.hold()  # every create waits at the sandbox's gate until release()
    with running(archive, upstream=sb.base_url, timeout=1) as short:
        client = JsClient(node, short.url, JS_KEY)
        try:
            error = client.fails("create", params={"model": MODEL, "input": "Anyone there?"})
        finally:
            client.close()
        status, headers, body = curl(f"{short.url}/v1/interactions", {"model": MODEL, "input": "Hello?"})
        sb.release()
    assert error["status"] == 504 and "timed out" in error["message"]
    assert status == 504 and headers["x-convostore-proxy-error"] == "timeout" and "timed out" in body["error"]["message"]


@needs_curl
def test_an_upstream_that_stalls_mid_stream_cuts_the_curl_stream(archive, sb):
    sb.hold_streams(2)
    with running(archive, upstream=sb.base_url, timeout=1) as short:
        stream = CurlStream(f"{short.url}/v1/interactions", {"model": MODEL, "input": "Then silence."})
        assert stream.event() is not None and stream.event() is not None
        assert stream.event() is None  # the proxy gave up on the silent upstream and ended the stream
        code, stderr = stream.close()
        sb.release()
    assert code != 0, "curl saw a complete response from a stream the upstream never finished"


@needs_curl
def test_an_upstream_that_resets_gives_js_and_curl_a_502(node, archive):
    with resetting_server() as upstream, running(archive, upstream=upstream, timeout=5) as broken:
        client = JsClient(node, broken.url, JS_KEY)
        try:
            error = client.fails("create", params={"model": MODEL, "input": "Hello?"})
        finally:
            client.close()
        status, headers, _ = curl(f"{broken.url}/v1/interactions", {"model": MODEL, "input": "Hello?"})
    assert error["status"] == 502
    assert status == 502 and headers["x-convostore-proxy-error"] == "unreachable"


# --- the demo ----------------------------------------------------------------------------------------------


@needs_curl
def test_demo_proxy_shows_a_curl_conversation_surviving_expiry(tmp_path):
    from click.testing import CliRunner

    from convostore.cli import cli

    db = tmp_path / "demo.db"
    out = CliRunner().invoke(cli, ["--db", str(db), "demo", "--proxy"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.count("$ curl -s http://127.0.0.1:") == 3 and "x-convostore-labels: demo=proxy" in text
    third = text.split("3. The app sends its next turn unchanged:")[1]
    assert "Your name is Karthik" in third and "(I have seen 3 user turns.)" in third
    assert "link=rebuilt" in third and "the sandbox answered 400" in third and "curl only saw the 200" in third
    with Store(db) as store:
        (rebuilt,) = [r for r in store.list(limit=None) if r.link == "rebuilt"]
        chain = store.chain(rebuilt.id)
    assert [r.link for r in chain] == ["root", "server", "rebuilt"]
    assert all(r.labels == {"demo": "proxy"} for r in chain)
    assert b"sandbox-demo-key" not in _archive_bytes(db)
