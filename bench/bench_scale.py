"""Every read at 10k, 100k and 1M interactions, and how each grows (issue 12).

    python bench/bench_scale.py [--sizes 10000 100000 1000000] [--db postgresql+psycopg://postgres@127.0.0.1/test]
                                [--repeat 7] [--rebuild] [--no-export] [--schema-prefix scale]

For each size N it generates a JSONL export of N/10 conversations x 10 turns (three
models, 1% failed turns, recorded over 60 days, the newest third still live on the
server), builds an archive from it with ``convostore import`` and times the reads a
person or an application makes: ``list``, ``show``, ``chain``, ``tree``, ``history()``,
``search`` (a word in one row, in 1% of rows, in every row; by relevance and newest
first when the store offers it), ``stats``, ``expiring`` (with its peak memory, in a
process of its own) and a page of ``conversations``; the build's import rate and peak
RSS, and a full export's (each in a process of its own: memory must stay flat in N). Each figure is the best of
``--repeat`` runs after one warm-up (``--median``: their median).

Generated files and built archives are cached in ``bench/results/`` (SQLite files;
on PostgreSQL one schema ``scale_<N>`` per size, kept), so a re-run only times;
``--rebuild`` builds again (after a schema change, say). Targets, on the 1M archive:
list/show/chain/tree/history <= 20 ms, search/stats/expiring <= 100 ms, a page of
conversations <= 50 ms.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

TURNS = 10
MODELS = ("gemini-2.5-flash", "gemini-3-flash-preview", "gemini-2.5-pro")
WORDS = (
    "revenue costs quarter risk supplier currency churn margin forecast budget hiring pipeline roadmap "
    "latency outage incident customer contract renewal pricing discount inventory shipping warehouse "
    "compliance audit security review launch feature metric dashboard cohort retention funnel"
).split()
#: The targets, ms, on the 1M archive.
TARGETS = {"list": 20, "show": 20, "chain": 20, "tree": 20, "history": 20, "search": 100, "stats": 100,
           "expiring": 100, "conversations": 50}
#: Interactions per second (issue 12): (phase, PostgreSQL?) -> target.
RATE_TARGETS = {("import", False): 30_000, ("import", True): 20_000, ("export", False): 60_000, ("export", True): 60_000}
VERBOSE = False  # --median
SCHEMA_PREFIX = "scale"  # --schema-prefix
# A fixed "now" for the generated data: recorded over the 60 days before it.
EPOCH = datetime(2026, 11, 27, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(n: int, path: Path) -> None:
    """N/10 conversations x 10 turns as convostore JSONL (the import's fast path: full meta)."""
    import orjson

    conversations = n // TURNS
    span = timedelta(days=60).total_seconds()
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as out:
        for c in range(conversations):
            model = MODELS[c % len(MODELS)]
            start = EPOCH - timedelta(seconds=span * (conversations - c) / conversations)
            live = c >= conversations * 2 // 3
            conv_id = f"v1_c{c:07d}t0"
            prev = None
            for t in range(TURNS):
                iid = f"v1_c{c:07d}t{t}"
                at = start + timedelta(seconds=30 * t)
                w = [WORDS[(c * 7 + t * 3 + k) % len(WORDS)] for k in range(12)]
                # "the" in every row; "pct<c%100>" in 1% of rows; "rare<c>x<t>" in exactly one.
                user = f"[{t}] the {' '.join(w[:6])} rare{c}x{t} pct{c % 100} please summarise and list risks"
                reply = (f"The {w[6]} and the {w[7]} moved this quarter; {' '.join(w[8:])} are the ones to watch. "
                         "Revenue grew 4% while operating costs were flat, and the three biggest risks are "
                         "supplier concentration, currency exposure and churn in the smallest accounts.")
                failed = (c * TURNS + t) % 100 == 99
                request: dict[str, Any] = {"model": model, "input": user}
                if prev:
                    request["previous_interaction_id"] = prev
                response = None if failed else {
                    "id": iid, "status": "completed", "model": model, "created": _iso(at),
                    "steps": [{"type": "model_output", "content": [{"type": "text", "text": reply}]}],
                    "usage": {"total_input_tokens": 20 + t * 50, "total_output_tokens": 60, "total_tokens": 80 + t * 50},
                }
                meta: dict[str, Any] = {
                    "conversation_id": conv_id, "link": "server" if prev else "root", "recorded_at": _iso(at),
                    "context_hash": f"h{c}x{t}", "status": "failed" if failed else "completed",
                    "server_state": "live" if live else "expired", "latency_ms": 900.0 + t,
                    "expires_at": _iso(at + timedelta(days=30)),
                }
                if prev:
                    meta["parent_id"] = prev
                if failed:
                    meta["error"] = {"message": "503 overloaded"}
                out.write(orjson.dumps({"convostore": 1, "id": iid, "api_version": "v1", "request": request,
                                        "response": response, "meta": meta}, option=orjson.OPT_APPEND_NEWLINE))
                if not failed:
                    prev = iid
    tmp.rename(path)


def _pg_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _pg(base: str, sql: str) -> Any:
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchone() if cur.description else None


def archive(n: int, pg: str | None, rebuild: bool) -> tuple[str, dict[str, float]]:
    """The archive of size N (built now, or cached), and its build figures."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    dump = RESULTS / f"scale-{n}.jsonl"
    if not dump.exists():
        t0 = time.perf_counter()
        generate(n, dump)
        print(f"  generated {dump.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    if pg:
        schema = f"{SCHEMA_PREFIX}_{n}"
        url = _pg_url(pg, schema)
        have = _pg(pg, f"SELECT to_regclass('{schema}.interaction') IS NOT NULL")[0]
        if have and not rebuild and _pg(pg, f"SELECT count(*) FROM {schema}.interaction")[0] == n:
            return url, _built(n, pg)
        _pg(pg, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        _pg(pg, f"CREATE SCHEMA {schema}")
    else:
        db = RESULTS / f"scale-{n}.db"
        url = str(db)
        if db.exists() and not rebuild and (RESULTS / f"scale-{n}.db.built").exists():
            return url, _built(n, None)
        for suffix in ("", "-wal", "-shm", ".built"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    seconds, rss = _timed("import", url, str(dump))
    figures = {"import_s": seconds, "import_rate": n / seconds, "import_rss": rss}
    (RESULTS / f"scale-{n}{'-pg' if pg else ''}.built.json").write_text(json.dumps(figures))
    if not pg:
        (RESULTS / f"scale-{n}.db.built").write_text("ok")
    print(f"  built {n:,} by convostore import in {seconds:.1f} s ({n / seconds:,.0f}/s)", flush=True)
    return url, figures


_PHASE = (
    "import resource, sys, time; from convostore.store import Store; "
    "from convostore.archive import export_jsonl, import_jsonl; kind, url, path = sys.argv[1:]; s = Store(url); "
    "t0 = time.perf_counter(); "
    "n = import_jsonl(s, path).added if kind == 'import' else export_jsonl(s, open(path, 'wb')); "
    "print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def _timed(kind: str, url: str, path: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of ``import_jsonl``/``export_jsonl`` in a process of its own
    (what ``convostore import``/``export`` run, without the CLI's start-up)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _PHASE, kind, url, path], check=True, capture_output=True, text=True, env=env)
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


def export_figures(url: str, n: int) -> dict[str, float]:
    """Export rate (interactions/s) and peak RSS of exporting the whole archive to a file."""
    target = RESULTS / f"export-{n}.jsonl"
    try:
        seconds, rss = _timed("export", url, str(target))
    finally:
        target.unlink(missing_ok=True)
    return {"export /s": n / seconds, "export RSS MB": rss}


def _built(n: int, pg: str | None) -> dict[str, float]:
    f = RESULTS / f"scale-{n}{'-pg' if pg else ''}.built.json"
    return json.loads(f.read_text()) if f.exists() else {}


def _ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: caches, plans
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    # The best run: on a machine shared with other work, the others' load only ever
    # adds time; the minimum is the code's own cost (the median is printed with -v).
    return min(runs) if not VERBOSE else statistics.median(runs)


def _first(it: Any, k: int) -> list[Any]:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= k:
            break
    return out


def measure(url: str, n: int, repeat: int) -> dict[str, float]:
    """Median ms per operation on the archive at ``url``."""
    import convostore

    history = convostore.history  # the function (the module was renamed rebuild.py)
    from convostore.resume import expiring
    from convostore.store import Store

    store = Store(url)
    conversations = n // TURNS
    mid = conversations // 2
    head = f"v1_c{mid:07d}t{TURNS - 1}"
    head = head if store.exists(head) else f"v1_c{mid:07d}t{TURNS - 2}"
    out: dict[str, float] = {}
    out["list"] = _ms(lambda: list(store.list(limit=20)), repeat)
    out["show"] = _ms(lambda: store.get(head).to_json_dict(), repeat)
    out["chain"] = _ms(lambda: store.chain(head), repeat)
    out["tree"] = _ms(lambda: store.tree(head), repeat)
    out["history"] = _ms(lambda: history(store, head), repeat)
    words = {"rare": f"rare{mid}x3", "1%": "pct42", "common": "the"}
    params = inspect.signature(store.search).parameters
    for label, word in words.items():
        out[f"search {label}"] = _ms(lambda w=word: store.search(w, limit=20), repeat)
        if "order" in params:
            out[f"search {label} newest"] = _ms(lambda w=word: store.search(w, limit=20, order="newest"), repeat)
    # What `convostore stats` does: the counts, then cost per model from the token sums.
    from convostore.prices import cost_summary, load_prices

    prices = load_prices()
    out["stats"] = _ms(lambda: (store.stats(), cost_summary(prices, store.usage())), repeat)
    out["expiring"] = _ms(lambda: _first(expiring(store, "20d"), 20), max(1, repeat // 3))
    if hasattr(store, "list_conversations"):
        out["conversations"] = _ms(lambda: store.list_conversations(limit=50), repeat)
        page = store.list_conversations(limit=50)
        for _ in range(20):  # page 21: keyset pages cost the same however deep
            page = store.list_conversations(limit=50, after=page.next)
        out["conversations p21"] = _ms(lambda: store.list_conversations(limit=50, after=page.next), repeat)
        out["conversations model"] = _ms(lambda: store.list_conversations(limit=50, model=MODELS[1]), repeat)
    else:
        out["conversations"] = _ms(lambda: _first(store.conversations(), 50), max(1, repeat // 3))
    store.close()
    return out


def expiring_rss(url: str) -> float:
    """Peak RSS (MB) of a process that lists the first 20 expiring conversations."""
    code = (
        "import resource, sys; from convostore.store import Store; from convostore.resume import expiring; "
        f"s = Store({url!r}); it = expiring(s, '20d'); [next(it, None) for _ in range(20)]; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    base = "import resource; from convostore.store import Store; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    peak = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout)
    floor = float(subprocess.run([sys.executable, "-c", base], check=True, capture_output=True, text=True, env=env).stdout)
    return peak - floor


def size_per_row(url: str, n: int, pg: str | None) -> tuple[float, float]:
    """(bytes per interaction on disk, that / the JSONL export's bytes per line)."""
    jsonl = (RESULTS / f"scale-{n}.jsonl").stat().st_size / n
    if pg:
        schema = url.rsplit("%3D", 1)[1]
        total = _pg(pg, f"SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
                        f"WHERE s.nspname = '{schema}' AND c.relkind IN ('r', 'm')")[0]
    else:
        total = sum(Path(f"{url}{s}").stat().st_size for s in ("", "-wal") if Path(f"{url}{s}").exists())
    total = float(total)
    return total / n, total / n / jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="archive sizes (interactions)")
    ap.add_argument("--db", help="a PostgreSQL server URL (default: SQLite files in bench/results/)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per operation (median reported)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild cached archives (after a schema change)")
    ap.add_argument("--median", action="store_true", help="report the median run instead of the best")
    ap.add_argument("--no-export", action="store_true", help="skip timing a full export")
    ap.add_argument("--schema-prefix", default="scale", help="PostgreSQL: schemas are PREFIX_<N>")
    args = ap.parse_args()
    global VERBOSE, SCHEMA_PREFIX
    VERBOSE = args.median
    SCHEMA_PREFIX = args.schema_prefix
    if args.db and not args.db.startswith("postgresql"):
        ap.error("--db takes a postgresql:// URL (SQLite is the default)")
    if args.db and args.db.startswith("postgresql://"):
        args.db = "postgresql+psycopg://" + args.db[len("postgresql://"):]
    print(f"backend: {'PostgreSQL' if args.db else 'SQLite'}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    table: dict[str, dict[int, float]] = {}
    for n in args.sizes:
        print(f"{n:,} interactions:", flush=True)
        url, built = archive(n, args.db, args.rebuild)
        figures = measure(url, n, args.repeat)
        figures["expiring RSS MB"] = expiring_rss(url)
        per_row, ratio = size_per_row(url, n, args.db)
        figures["bytes/interaction"] = per_row
        figures["x JSONL"] = ratio
        if built.get("import_rate"):
            figures["import /s"] = built["import_rate"]
        if built.get("import_rss"):
            figures["import RSS MB"] = built["import_rss"]
        if not args.no_export:
            figures.update(export_figures(url, n))
        for name, value in figures.items():
            table.setdefault(name, {})[n] = value
        print("  " + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()), flush=True)
    print()
    sizes = args.sizes
    print(f"| operation (ms unless noted) | {' | '.join(f'{n:,}' for n in sizes)} | {sizes[-1] // sizes[0]}x rows: grew | target |")
    print("|---" * (len(sizes) + 3) + "|")
    biggest = max(sizes)
    for name, by_n in table.items():
        cells = " | ".join("-" if n not in by_n else f"{by_n[n]:.2f}" if by_n[n] < 100 else f"{by_n[n]:,.0f}" for n in sizes)
        first, last = by_n.get(sizes[0]), by_n.get(sizes[-1])
        grew = f"{last / first:.1f}x" if first and last else "-"
        target = TARGETS.get(name.split()[0]) if not name.endswith(("MB", "/s", "JSONL", "interaction")) else None
        if name.endswith("/s"):
            target = RATE_TARGETS.get((name.split()[0], bool(args.db)))
        verdict = "-"
        if target is not None and name.endswith("/s"):
            verdict = f">= {target:,}: {'met' if by_n[biggest] >= target else 'NOT met'}"
        elif target is not None and biggest >= 1_000_000:
            verdict = f"<= {target}: {'met' if by_n[biggest] <= target else 'NOT met'}"
        elif target is not None:
            verdict = f"<= {target} at 1M"
        print(f"| {name} | {cells} | {grew} | {verdict} |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n(this process's peak RSS {rss:.0f} MB)")


if __name__ == "__main__":
    main()
