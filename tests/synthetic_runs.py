"""Archives for the replay and compare tests: a few real conversations, or a large one written straight into a store.

Recording 1,000 conversations and replaying them three times through the sandbox takes
minutes; the HTML report test and ``bench/bench_compare.py`` need only the stored
result. The rows have the shape the recorder and replay give them (ids, links, steps,
usage, ``replay:RUN:HEAD`` conversations, a failed attempt now and then), so
``compare`` reads them through its ordinary path.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from convostore import wire

SOURCE = "gemini-2.5-flash"
WORDS = ("the", "cricket", "match", "was", "long", "and", "sunny", "Karthik", "asked", "about", "movies", "tonight",
         "a", "plan", "for", "Sunday", "with", "friends", "<b>bold</b>", "|pipe|", "&", "quotes\"")


def conversations(client: Any, store: Any, names: tuple[str, ...] = ("Ada", "Grace"), intro: str = "") -> tuple[Any, list[str]]:
    """Two-turn conversations recorded through the real SDK and the sandbox ("my name is X", "what is my name?").

    Returns the recorded client and each conversation's last turn id.
    """
    import convostore

    rc = convostore.record(client, store=store)
    heads = []
    for name in names:
        t1 = rc.interactions.create(model=SOURCE, input=f"Hi, my name is {name}.{intro}")
        heads.append(rc.interactions.create(model=SOURCE, input="What is my name?", previous_interaction_id=t1.id).id)
    return rc, heads


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _mutate(rng: random.Random, text: str, rate: float) -> str:
    return " ".join(rng.choice(WORDS) if rng.random() < rate else w for w in text.split())


def _row(iid: str, *, conversation: str, parent: str | None, link: str, model: str, question: str, answer: str,
         at: datetime, rng: random.Random, status: str = "completed", run: str | None = None,
         source: str | None = None) -> dict[str, Any]:
    inp = len(question.split()) * 3 + 20
    out = len(answer.split()) + 2
    thought = 8 if model.startswith("gemini-3") else 0
    failed = status == "failed"
    return {
        "id": iid, "conversation_id": conversation, "parent_id": parent, "link": link, "context_hash": f"synthetic:{iid}",
        "model": model, "status": status, "request": {"model": model, "input": question},
        "input_steps": wire.normalize_input(question),
        "output_steps": [] if failed else [{"type": "model_output", "content": [{"type": "text", "text": answer}]}],
        "input_text": question, "output_text": "" if failed else answer,
        "usage": None if failed else {"total_input_tokens": inp, "total_output_tokens": out, "total_thought_tokens": thought,
                                      "total_tokens": inp + out + thought},
        "input_tokens": None if failed else inp, "output_tokens": None if failed else out,
        "total_tokens": None if failed else inp + out + thought,
        "recorded_at": at, "latency_ms": None if failed else round(rng.lognormvariate(6.0, 0.5), 1),
        "error": {"message": "503 from the server", "status": 503} if failed else None,
        "replay_run_id": run, "source_id": source, "server_state": "live",
    }


def seed(store: Any, conversations: int, turns: int = 5,
         models: tuple[str, ...] = ("gemini-2.5-pro", "gemini-3-flash-preview", "a-model-without-a-price"),
         seed: int = 7) -> list[str]:
    """Write ``conversations`` × ``turns`` originals and one forced run per model; the run ids."""
    rng = random.Random(seed)
    start = datetime.now(timezone.utc) - timedelta(days=1)
    heads: list[str] = []
    answers: dict[str, tuple[str, str]] = {}
    batch: list[dict[str, Any]] = []
    with store.writer() as w:
        for c in range(conversations):
            root = f"src-{c:05d}-0"
            prev = None
            for t in range(turns):
                iid = f"src-{c:05d}-{t}"
                question = f"Turn {t + 1}: " + _text(rng, 8)
                answer = _text(rng, 30)
                answers[iid] = (question, answer)
                batch.append(_row(iid, conversation=root, parent=prev, link="root" if prev is None else "server",
                                  model=SOURCE, question=question, answer=answer,
                                  at=start + timedelta(seconds=c * turns + t), rng=rng))
                prev = iid
            heads.append(prev or root)
            if len(batch) >= 1000:
                w.save_many(batch)
                batch = []
        w.save_many(batch)
    runs = []
    for k, model in enumerate(models):
        run_id = f"run-synthetic-{k}-{uuid.uuid4().hex[:6]}"
        store.create_run(id=run_id, source_conversation_id="src-00000-0", source_head_id=heads[0], model=model,
                         mode="forced", settings={"heads": heads}, status="completed",
                         created_at=start + timedelta(hours=k + 1), finished_at=start + timedelta(hours=k + 2),
                         summary={"conversations": conversations, "turns": conversations * turns})
        batch = []
        with store.writer() as w:
            for c, head in enumerate(heads):
                conv = f"replay:{run_id}:{head}"
                prev = None
                for t in range(turns):
                    sid = f"src-{c:05d}-{t}"
                    question, answer = answers[sid]
                    status = "failed" if rng.random() < 0.01 else "completed"
                    rid = f"r{k}-{c:05d}-{t}"
                    batch.append(_row(rid, conversation=conv, parent=prev, link="replay", model=model, question=question,
                                      answer=_mutate(rng, answer, rng.choice((0.05, 0.2, 0.5))), status=status,
                                      at=start + timedelta(hours=k + 1, seconds=c * turns + t), rng=rng,
                                      run=run_id, source=sid))
                    prev = rid if status != "failed" else None
                if len(batch) >= 1000:
                    w.save_many(batch)
                    batch = []
            w.save_many(batch)
        runs.append(run_id)
    return runs
