"""What a replay sends, in which order, and what the run says about it afterwards.

Through ``convostore.replay`` and the ``replay`` command with the real SDK against the
sandbox; each test was watched failing on a mutant of ``replaying`` (bench/mutation-survivors.md).
"""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

import convostore
from convostore import wire
from convostore.cli import cli
from convostore.errors import ConvostoreError, NotFoundError
from convostore.replaying import get_run, list_runs, replay

from tests.test_replay import SOURCE, TARGET, TOOLS, rc  # noqa: F401 - rc is a fixture


def _conversation(rc, names=("Karthik",), turns=3, **kwargs):
    heads = []
    for name in names:
        prev = None
        for text in [f"Hi, my name is {name}.", "I like cricket.", "What is my name?"][:turns]:
            extra = {"previous_interaction_id": prev} if prev else {}
            prev = rc.interactions.create(model=SOURCE, input=text, **extra, **kwargs).id
        heads.append(prev)
    return heads


def test_a_replay_that_cannot_start_says_why_and_leaves_no_run(rc, store):
    (head,) = _conversation(rc, turns=1)
    with pytest.raises(ConvostoreError, match="replay needs a target model"):
        replay(store, head, client=rc)
    with pytest.raises(ValueError, match="mode must be one of"):
        replay(store, head, model=TARGET, mode="sideways", client=rc)
    with pytest.raises(ConvostoreError, match="nothing to replay: give interaction ids"):
        replay(store, None, model=TARGET, client=rc)
    with pytest.raises(ConvostoreError, match="nothing to replay: no interactions matched"):
        replay(store, [], model=TARGET, client=rc)
    with pytest.raises(NotFoundError):
        replay(store, "v1_nowhere", model=TARGET, client=rc)
    assert list_runs(store) == []
    run = replay(store, head, model=TARGET, client=rc)
    (replayed,) = store.list(replay_run_id=run.id)
    with pytest.raises(ConvostoreError, match=rf"{replayed.id} is itself a replayed turn \(run {run.id}\)"):
        replay(store, replayed.id, model=TARGET, client=rc)
    assert [r.id for r in list_runs(store)] == [run.id]


def test_any_turn_names_its_chain_and_a_root_its_latest_turn(rc, store, sandbox):
    (head,) = _conversation(rc)
    root, middle, _ = [r.id for r in store.chain(head)]
    run = replay(store, [root, middle], model=TARGET, client=rc, concurrency=1)
    assert run.heads == [head, middle] and run.settings["heads"] == [head, middle]
    assert run.summary["conversations"] == 2 and run.summary["turns"] == 5
    assert get_run(store, run.id).heads == [head, middle]


def test_progress_counts_every_turn_once_and_the_summary_adds_up(rc, store, sandbox):
    heads = _conversation(rc, names=("Ada", "Grace"))
    seen: list[tuple[int, int]] = []
    run = replay(store, heads, model=TARGET, client=rc, concurrency=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and [d for d, _ in seen] == list(range(7))
    s = run.summary
    assert (s["conversations"], s["turns"], s["sent"], s["verdicts"]) == (2, 6, 6, {"ok": 6})
    assert s["mean_latency_ms"] > 0 and s["elapsed_s"] >= 0 and run.status == "completed"
    assert run.finished_at is not None and run.finished_at >= run.created_at
    assert run.settings["owner"]["pid"] > 0 and run.settings["concurrency"] == 2
    # Free mode: one task per conversation, the same count.
    seen.clear()
    run = replay(store, heads, model=TARGET, mode="free", client=rc, concurrency=1, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 6) for i in range(7)] and run.summary["sent"] == 6


def test_a_first_turn_answered_in_hops_is_one_turn(rc, store, sandbox):
    first = rc.interactions.create(model=SOURCE, input="Write a very long essay. [continue:2]")
    head = rc.interactions.create(model=SOURCE, input="Thanks.", previous_interaction_id=first.id).id
    assert [link for _, link in store.chain_links(head)] == ["root", "continuation", "continuation", "server"]
    seen: list[tuple[int, int]] = []
    run = replay(store, head, model=TARGET, client=rc, progress=lambda d, t: seen.append((d, t)))
    assert run.summary["turns"] == 2 and seen[-1] == (2, 2) and run.summary["verdicts"] == {"ok": 2}


def test_a_resumed_run_counts_the_turns_it_skipped(rc, store, sandbox):
    (head,) = _conversation(rc)
    fail_second = lambda done, total: sandbox.fail(503, 2) if done == 1 else None  # noqa: E731
    run = replay(store, head, model=TARGET, client=rc, concurrency=1, backoff=0, max_attempts=2, progress=fail_second)
    assert run.summary["verdicts"] == {"ok": 2, "failed": 1} and run.summary["sent"] == 3
    assert run.summary["mean_latency_ms"] > 0  # over the answered turns only
    seen: list[tuple[int, int]] = []
    resumed = replay(store, resume_run=run.id, client=rc, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(2, 3), (3, 3)]  # two already done: the bar starts there
    assert resumed.summary["sent"] == 1 and resumed.summary["verdicts"] == {"skipped": 2, "ok": 1}
    assert resumed.status == "completed" and resumed.model == TARGET and resumed.mode == "forced"


def test_settings_recorded_with_a_turn_are_sent_again_unless_overridden(client, store, sandbox, tmp_path, monkeypatch):
    rc = convostore.record(client, store=store)
    gen = {"temperature": 0.9, "top_p": 0.5, "thinking_config": {"thinking_level": "high", "include_thoughts": True}}
    (head,) = _conversation(rc, turns=2, system_instruction="Be kind.", tools=TOOLS, generation_config=gen)
    n = len(sandbox.requests)
    replay(store, head, model=TARGET, client=rc, concurrency=1)
    plain = sandbox.requests[n:]
    assert len(plain) == 2
    for body in plain:
        assert body["model"] == TARGET and body["system_instruction"] == "Be kind."
        assert body["tools"] == TOOLS and body["generation_config"] == gen and "store" not in body
    n = len(sandbox.requests)
    run = replay(store, head, model=TARGET, client=rc, concurrency=1, temperature=0.1, system_instruction="Be terse.",
                 overrides={"generation_config.top_k": 3, "tools": None, "response_mime_type": "text/plain",
                            "generation_config.thinking_config.thinking_level": "low"},
                 store_remote=False)
    assert run.settings["store"] is False
    for body in sandbox.requests[n:]:
        assert body["system_instruction"] == "Be terse." and "tools" not in body and body["store"] is False
        assert body["generation_config"] == {"temperature": 0.1, "top_p": 0.5, "top_k": 3,
                                             "thinking_config": {"thinking_level": "low", "include_thoughts": True}}
        assert body["response_mime_type"] == "text/plain"
    # The same from the command line, resumed with the run's own settings.
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    n = len(sandbox.requests)
    res = CliRunner().invoke(cli, ["--db", store.url, "replay", head, "-m", TARGET, "-j", "1", "--temperature", "0",
                                   "--set", "generation_config.top_p=0.25", "--set", "system_instruction=null", "--json"])
    assert res.exit_code == 0, res.output
    for body in sandbox.requests[n:]:
        assert body["generation_config"] == {**gen, "temperature": 0.0, "top_p": 0.25} and "system_instruction" not in body
    assert store.get(head).request["generation_config"] == gen  # the recorded turn itself is left as it was
    assert orjson.loads(res.output[res.output.index("{"):])["settings"]["temperature"] == 0.0


def test_a_forced_turn_carries_the_original_history_without_the_thoughts_of_another_model(rc, store, sandbox):
    """Each turn k is sent the original turns before it (input and answer), never a replayed one."""
    (head,) = _conversation(rc)
    chain = store.chain(head)
    n = len(sandbox.requests)
    replay(store, head, model=TARGET, client=rc, concurrency=1)
    sent = [wire.normalize_input(b["input"]) for b in sandbox.requests[n:]]
    expected = []
    for k, row in enumerate(chain):
        assert sent[k] == expected + row.input_steps
        expected += row.input_steps + row.output_steps


@pytest.mark.parametrize("status,partial", [("requires_continuation", False), ("incomplete", False), ("completed", True)],
                         ids=["cut-between-hops", "incomplete", "partial-stream"])
def test_a_resume_resends_a_turn_whose_answer_was_cut_short(rc, store, sandbox, status, partial):
    """A run killed between continuation hops, or during a stream, left an unfinished answer:
    the resumed run sends that turn again (an archive imported from elsewhere says the same)."""
    import io

    from convostore.archive import import_jsonl

    t1, t2 = (store.get(i) for i in (lambda h: [r.id for r in store.chain(h)])(_conversation(rc, turns=2)[0]))
    conv = f"replay:run-cut:{t2.id}"
    cut = {"convostore": 1, "id": "v1_cut", "api_version": "v1", "request": {"model": TARGET, "input": t1.input_text},
           "response": {"id": "v1_cut", "status": status, "model": TARGET, "created": "2026-11-24T12:00:00Z",
                        "steps": [{"type": "model_output", "content": [{"type": "text", "text": "[part 1 of 3] "}]}]},
           "meta": {"conversation_id": conv, "link": "replay", "replay_run_id": "run-cut", "source_id": t1.id,
                    "status": status, "partial": partial, "hop_index": 0, "context_hash": "h-cut"}}
    run = {"convostore": 1, "kind": "replay_run", "run": {
        "id": "run-cut", "model": TARGET, "mode": "forced", "status": "running", "created_at": "2026-11-24T12:00:00Z",
        "heartbeat_at": "2026-11-24T12:00:01Z", "source_head_id": t2.id, "settings": {"heads": [t2.id], "store": True}}}
    import_jsonl(store, io.BytesIO(orjson.dumps(cut) + b"\n" + orjson.dumps(run)))
    assert get_run(store, "run-cut").status == "interrupted"
    n = len(sandbox.requests)
    resumed = replay(store, resume_run="run-cut", client=rc, concurrency=1)
    assert resumed.summary["sent"] == 2 and resumed.summary["verdicts"] == {"ok": 2} and resumed.status == "completed"
    assert [wire.input_text(wire.normalize_input(b["input"])[-1:]) for b in sandbox.requests[n:]] == [t1.input_text, t2.input_text]


def test_a_free_replay_of_a_conversation_begun_with_tool_history_sends_that_history_as_it_was(client, store, sandbox, tmp_path):
    """The first turn's own input holds a function call and its result from before the
    archive began: no call of this replay answers it, so its result keeps its call id."""
    from convostore import history

    elsewhere = convostore.Store(tmp_path / "elsewhere.db")
    other = convostore.record(client, store=elsewhere)
    t1 = other.interactions.create(model=SOURCE, input="Please use get_weather for Paris.", tools=TOOLS)
    call = next(s for s in elsewhere.get(t1.id).output_steps if s["type"] == "function_call")
    t2 = other.interactions.create(model=SOURCE, tools=TOOLS, previous_interaction_id=t1.id, input=[
        {"type": "function_result", "call_id": call["id"], "name": "get_weather", "result": "sunny"}])
    kwargs = history(elsewhere, t2.id).create_kwargs("Thanks. What did the tool say?")
    rc = convostore.record(client, store=store)
    first = rc.interactions.create(**kwargs)
    n = len(sandbox.requests)
    run = replay(store, first.id, model=TARGET, mode="free", client=rc)
    assert run.summary["verdicts"] == {"ok": 1}
    (body,) = sandbox.requests[n:]
    results = [s for s in wire.normalize_input(body["input"]) if s["type"] == "function_result"]
    assert [r["call_id"] for r in results] == [call["id"]]
    elsewhere.close()


def test_ctrl_c_leaves_an_interrupted_run_that_resume_finishes(rc, store, sandbox):
    (head,) = _conversation(rc)

    def stop_after_first(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay(store, head, model=TARGET, client=rc, concurrency=1, progress=stop_after_first)
    (run,) = list_runs(store)
    assert run.status == "interrupted" and run.finished_at is not None
    assert run.summary["turns"] == 3 and run.summary["conversations"] == 1
    resumed = replay(store, resume_run=run.id, client=rc)
    verdicts = resumed.summary["verdicts"]  # the turn already queued may have gone out before the stop
    assert resumed.status == "completed" and set(verdicts) == {"skipped", "ok"} and sum(verdicts.values()) == 3
    assert sorted(r.source_id for r in store.list(replay_run_id=run.id)) == sorted(r.id for r in store.chain(head))
