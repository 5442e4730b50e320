"""convostore as a peer in /work/shared/peerbench (``bench_peers.py --peer-file``).

    cd /work/main && /work/peerbench-venv/bin/python /work/shared/peerbench/bench_peers.py \\
        --peer-file bench/peer_convostore.py --peers llm langchain-sql convostore --n 1000 --runs 1

Ops, on the same synthetic conversation as the other peers (``user_text``/``reply_text``):

* ``append``: one turn saved the way the recorder saves it: the raw request and response
  bodies parsed (orjson), turned into a row (``records.row_from_exchange``) and
  ``store.save_quiet``-d (``save`` without reading the row back), chained by ``previous_interaction_id``; one conversation of N turns.
* ``load``: the stateless history that continues the chain (``convostore.history``; the
  store's ``chain`` when history is absent), the analogue of llm's conversation loading.
* ``export``: ``convostore --db FILE export -o OUT`` as a subprocess (interpreter start
  included, like the llm peer's ``llm logs -n 0 --json``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import bench_peers  # provided by bench_peers.py when it loads this file
import orjson

MODEL = "peerbench-echo"


def _exchange(n: int, i: int, prev: str | None) -> tuple[bytes, bytes, str]:
    """The raw bodies of turn ``i`` as they would cross the wire."""
    user = bench_peers.user_text(i)
    iid = f"pb{n}_{i:06d}"
    request = {"model": MODEL, "input": user}
    if prev:
        request["previous_interaction_id"] = prev
    response = {
        "id": iid,
        "object": "interaction",
        "model": MODEL,
        "status": "completed",
        "created": "2026-11-24T12:00:00Z",
        "updated": "2026-11-24T12:00:01Z",
        "role": "model",
        "steps": [{"type": "model_output", "content": [{"type": "text", "text": bench_peers.reply_text(user)}]}],
        "usage": {"total_input_tokens": 20 + i, "total_output_tokens": 90, "total_tokens": 110 + i},
    }
    return orjson.dumps(request), orjson.dumps(response), iid


class ConvostorePeer(bench_peers.Peer):
    name = "convostore"
    distributions = ["convostore", "sqlmodel", "SQLAlchemy", "orjson", "alembic"]

    def run(self, ctx: bench_peers.Ctx) -> None:
        from convostore.records import row_from_exchange
        from convostore.store import Store

        heads: dict[int, str] = {}
        paths: dict[int, Path] = {}
        # ---- (1) append: the recorder's save path, one conversation ---------------------
        for n in ctx.ns:
            path = ctx.workdir / f"convostore_{n}.db"
            paths[n] = path
            store = Store(str(path))
            bodies = []
            prev = None
            for i in range(n):  # built outside the timed region, as the other peers do
                req, resp, iid = _exchange(n, i, prev)
                bodies.append((req, resp))
                prev = iid
            save = getattr(store, "save_quiet", store.save)  # the recorder's hot path: no read-back
            per_call = []
            for req, resp in bodies:
                t0 = time.perf_counter()
                row = row_from_exchange(
                    orjson.loads(req),
                    orjson.loads(resp),
                    api_version="v1",
                    recorded_at=datetime.now(timezone.utc),
                    latency_ms=1.0,
                )
                save(row)
                per_call.append(time.perf_counter() - t0)
            heads[n] = prev  # type: ignore[assignment]
            last = store.get(prev)
            assert last.parent_id == f"pb{n}_{n - 2:06d}" if n > 1 else True, last.parent_id
            k = min(100, n)
            ctx.record(
                op="append",
                n=n,
                unit="turn",
                samples_s=[sum(per_call)],
                detail="orjson.loads(request, response) + records.row_from_exchange + store.save_quiet, per turn",
                code="convostore/records.py:row_from_exchange -> convostore/store:Store.save_quiet",
                extra={
                    "per_call_median_us": statistics.median(per_call) * 1e6,
                    f"first_{k}_mean_us": statistics.mean(per_call[:k]) * 1e6,
                    f"last_{k}_mean_us": statistics.mean(per_call[-k:]) * 1e6,
                    "per_call_max_us": max(per_call) * 1e6,
                    "db_bytes": path.stat().st_size,
                },
            )
            _close(store)

        # ---- (2) load: the history that continues the chain ----------------------------
        for n in ctx.ns:
            store = Store(str(paths[n]))
            try:
                from convostore.rebuild import history

                def load():  # type: ignore[no-untyped-def]
                    return history(store, heads[n]).input

                detail, expected = "convostore.history(store, head).input (one query per chain)", 2 * n
            except ImportError:  # pragma: no cover - before history lands

                def load():  # type: ignore[no-untyped-def]
                    return store.chain(heads[n])

                detail, expected = "store.chain(head)", n
            samples = []
            for _ in range(ctx.reads):
                t0 = time.perf_counter()
                got = load()
                samples.append(time.perf_counter() - t0)
                assert len(got) == expected, (len(got), expected)
                del got
            ctx.record(
                op="load",
                n=n,
                unit="turn",
                samples_s=samples,
                detail=detail,
                code="convostore/rebuild.py:history -> convostore/store:Store.chain",
                extra={"first_rep_s": samples[0]},
            )
            _close(store)

        # ---- (3) export: the CLI, as a subprocess ------------------------------------------
        exe = Path(sys.executable).parent / "convostore"
        for n in ctx.ns:
            out = ctx.workdir / f"convostore_export_{n}.jsonl"
            samples = []
            for _ in range(ctx.export_reps):
                t0 = time.perf_counter()
                subprocess.run([str(exe), "--db", str(paths[n]), "export", "-o", str(out)], check=True)
                samples.append(time.perf_counter() - t0)
            with open(out, "rb") as fh:
                lines = sum(1 for _ in fh)
            assert lines == n, lines
            ctx.record(
                op="export",
                n=n,
                unit="record",
                samples_s=samples,
                detail="subprocess `convostore --db FILE export -o OUT` (JSONL, includes interpreter start)",
                code="convostore/cli/archive.py -> convostore/archive.py:export",
                extra={"output_bytes": out.stat().st_size, "first_rep_s": samples[0]},
            )
            out.unlink()


def _close(store) -> None:  # type: ignore[no-untyped-def]
    for name in ("close", "dispose"):
        fn = getattr(store, name, None)
        if callable(fn):
            fn()
            return


PEERS = {"convostore": ConvostorePeer}
