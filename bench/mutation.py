"""Mutation testing of convostore's decision code: does the suite notice a small plausible bug?

    nice python bench/mutation.py report              # one module (names: see MODULES)
    nice python bench/mutation.py replaying comparison --report bench/mutation-report.md
    nice python bench/mutation.py resume --functions plan,after_error --workers 2
    python bench/mutation.py --list                   # the modules and the tests mapped to them

For each module it (1) copies the checkout to a temporary directory (one per worker),
(2) runs the module's mapped tests there once under coverage, one context per test
function, to learn which tests execute each line and how long each takes (cached in
``~/.cache/convostore-mutation/``, keyed by every source and test file, so a re-run
with ``--lines``/``--functions`` skips it; ``--no-cache`` re-runs it), then (3) makes one
small change at a time with the AST (a comparison or boolean operator flipped, a
condition negated, a constant nudged, a call statement or a member of a literal set
removed, a return value dropped, ``break``/``continue`` swapped), and runs only the test
functions that execute the mutated line, fastest first, with ``-x`` and a timeout from
their measured time. A mutant a test fails on is *killed*; one every test passes is a
*survivor* (listed with file:line and the change; a line no test executes counts as a
survivor too, "no test"); one that runs past its timeout counts as *timeout* (noticed,
like killed). The working tree is never touched. PostgreSQL parametrizations are
deselected (the decision code is the same on both stores), so a run needs no database.

Speed: a fork server per worker (``--workers 1|2``) imports pytest, the SDK and
convostore and collects the test files once; per mutant it forks a child that swaps the
mutated functions' ``__code__`` in place (compiled from the mutated source; every
``from x import f`` sees it) and runs ``pytest.main`` on the selected node ids, killed
with its process group past the timeout. The mutated file is also written to the
worker's copy, so CLI subprocesses and first imports run the mutant too; a mutant in
code that runs at import (module or class level, a default argument) is run in a fresh
interpreter instead. ``--no-fork`` is the plain way, a fresh pytest process per mutant
(2-3x slower; same verdicts). The progress lines say which way each mutant ran.

Survivors go into ``bench/mutation-survivors.md`` by hand: each is killed by a new
test or explained as equivalent. Needs ``coverage`` (``pip install -e '.[mutation]'``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import gc
import glob
import hashlib
import inspect
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: module name -> (source files, test files/globs that cover them)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "rebuild": (
        ["convostore/rebuild.py"],
        ["tests/test_history*.py", "tests/test_resume*.py", "tests/test_replay_behaviour.py", "tests/test_public_names.py"],
    ),
    "resume": (
        ["convostore/resume.py"],
        ["tests/test_resume*.py", "tests/test_cli_resume.py", "tests/test_recorder.py", "tests/test_summary.py"],
    ),
    "recording": (
        ["convostore/recording/core.py", "convostore/recording/methods.py"],
        ["tests/test_recorder*.py", "tests/test_resume*.py", "tests/test_secrets.py", "tests/test_refresh.py"],
    ),
    "wire": (["convostore/wire.py"], ["tests/test_wire.py", "tests/test_history.py", "tests/test_recorder_sdk1.py"]),
    "replaying": (
        ["convostore/replaying.py"],
        ["tests/test_replay*.py", "tests/test_cli_replay.py"],
    ),
    "comparison": (
        ["convostore/comparison.py"],
        ["tests/test_replay*.py", "tests/test_cli_replay.py", "tests/test_report*.py", "tests/test_compare_runs.py",
         "tests/test_judge.py"],
    ),
    "archive": (["convostore/archive.py"], ["tests/test_archive.py", "tests/test_import*.py"]),
    "line_format": (["convostore/line_format.py"], ["tests/test_import*.py", "tests/test_archive.py"]),
    "report": (["convostore/report.py"], ["tests/test_report*.py", "tests/test_replay.py", "tests/test_cli_replay.py"]),
}

#: Calls whose removal or change no user can see (logging).
_QUIET_CALLS = {"log", "logger", "logging", "warnings"}

_COMPARE_SWAP: dict[type, type] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BINOP_SWAP: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
}


@dataclass
class Mutant:
    path: str
    line: int
    start: int  # byte offsets in the file
    end: int
    replacement: str
    description: str
    function: str = ""  # the enclosing function's qualified name
    cover: tuple[int, int] | None = None  # judge by the tests that run these lines (a default: its function's body)
    status: str = "pending"  # killed | survived | timeout | uncovered
    tests: int = 0
    seconds: float = 0.0
    mode: str = ""  # fork (code swapped in a forked child) | process (a fresh interpreter)
    end_line: int = 0
    killed_by: str = ""  # the first test that failed

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]


# --- making mutants -----------------------------------------------------------------


def _offsets(source: bytes) -> list[int]:
    starts = [0]
    for i, b in enumerate(source):
        if b == 0x0A:
            starts.append(i + 1)
    return starts


def _is_quiet_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in _QUIET_CALLS


class _Finder(ast.NodeVisitor):
    """Collects (node, replacement node or text, description) for one module."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.AST, str, str, str, tuple[int, int] | None]] = []
        self.scope: list[str] = []
        self.cover: tuple[int, int] | None = None

    def _add(self, node: ast.AST, new: ast.AST | str, what: str) -> None:
        text = new if isinstance(new, str) else ast.unparse(new)
        if isinstance(node, ast.expr) and not isinstance(new, str):
            text = f"({text})"
        self.found.append((node, text, what, ".".join(self.scope), self.cover))

    def generic_visit(self, node: ast.AST) -> None:
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment", "decorator_list"):
                continue  # types and decorators change no behaviour a test can see
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return  # positions inside f-strings are unreliable; their text is messages

    def _negate(self, test: ast.expr, *, skip: tuple[type, ...] = (ast.Compare, ast.BoolOp, ast.UnaryOp)) -> None:
        if not isinstance(test, skip):  # those have their own operator mutants
            self._add(test, ast.UnaryOp(ast.Not(), copy.deepcopy(test)), f"negate `{ast.unparse(test)}`")

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        self._negate(node.test)
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._negate(node.test, skip=(ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Constant))
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._negate(node.test)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            swap = _COMPARE_SWAP.get(type(op))
            if swap is not None:
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                self._add(node, new, f"`{ast.unparse(node)}` -> `{ast.unparse(new)}`")
        for i, comp in enumerate(node.comparators):
            if isinstance(comp, (ast.Tuple, ast.Set, ast.List)) and len(comp.elts) >= 2:
                for j, elt in enumerate(comp.elts):
                    new = copy.deepcopy(node)
                    del new.comparators[i].elts[j]
                    self._add(node, new, f"drop {ast.unparse(elt)} from `{ast.unparse(comp)}`")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add(node, new, f"`{ast.unparse(node)}` -> `{ast.unparse(new)}`")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add(node, copy.deepcopy(node.operand), f"drop `not` in `{ast.unparse(node)}`")
        self.generic_visit(node)

    def _swap_op(self, node: ast.BinOp | ast.AugAssign) -> None:
        swap = _BINOP_SWAP.get(type(node.op))
        if swap is not None:
            new = copy.deepcopy(node)
            new.op = swap()
            self._add(node, new, f"`{ast.unparse(node)}` -> `{ast.unparse(new)}`")
        self.generic_visit(node)

    visit_BinOp = _swap_op
    visit_AugAssign = _swap_op

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._add(node, repr(not value), f"{value} -> {not value}")
        elif isinstance(value, int):
            self._add(node, repr(value + 1), f"{value} -> {value + 1}")
        elif isinstance(value, float):
            self._add(node, repr(value * 2 or 1.0), f"{value} -> {value * 2 or 1.0}")

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            self._add(node, "return None", f"`{ast.unparse(node)}` -> `return None`")
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Call) and not _is_quiet_call(node.value):
            self._add(node, "pass", f"drop the call `{ast.unparse(node)[:80]}`")
        if not _is_quiet_call(node.value):
            self.generic_visit(node)

    def visit_Break(self, node: ast.Break) -> None:
        self._add(node, "continue", "break -> continue")

    def visit_Continue(self, node: ast.Continue) -> None:
        self._add(node, "break", "continue -> break")

    def visit_Raise(self, node: ast.Raise) -> None:
        return  # error messages and types: covered by the tests of each error, not mutated here

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in ("__repr__", "__str__", "to_json", "__dir__"):
            return
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        self.scope.append(node.name)
        for stmt in body:
            self.visit(stmt)
        self.scope.pop()
        # A default runs once, at import (no test's coverage context): such a mutant is
        # judged by the tests that run the function's body, where the default is used.
        self.cover = (body[0].lineno, node.end_lineno or body[0].lineno) if body else None
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)
        self.cover = None

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        self.scope.append(node.name)
        for stmt in body:
            self.visit(stmt)
        self.scope.pop()


def mutants_of(path: str) -> list[Mutant]:
    """Every mutant of one file that still compiles."""
    source = (ROOT / path).read_bytes()
    tree = ast.parse(source)
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    finder = _Finder()
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        finder.visit(stmt)
    starts = _offsets(source)
    out: list[Mutant] = []
    seen: set[tuple[int, int, str]] = set()
    for node, text, what, function, cover in finder.found:
        start = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
        key = (start, end, text)
        if key in seen:
            continue
        seen.add(key)
        m = Mutant(path, node.lineno, start, end, text, what, function, cover, end_line=node.end_lineno or node.lineno)
        try:
            compile(m.apply(source), path, "exec")
        except SyntaxError:
            continue
        out.append(m)
    return out


# --- running them -------------------------------------------------------------------


def _copy_checkout(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "*.db")
    dest.mkdir(parents=True, exist_ok=True)
    for item in ROOT.iterdir():
        if item.name in (".git", ".venv"):
            continue
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target, ignore=ignore)
        else:
            shutil.copy2(item, target)


def _env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(workdir) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("CI", None)
    env["HYPOTHESIS_PROFILE"] = "ci"  # derandomized: a mutant is judged the same way every run
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


_DESELECT = ["-k", "not postgres", "-p", "no:cacheprovider", "-q", "-x", "--no-header", "-o", "addopts="]
_RUN_ARGS = [*_DESELECT, "-p", "no:randomly"]


def _test_files(globs: list[str]) -> list[str]:
    files: list[str] = []
    for pattern in globs:
        for f in sorted(glob.glob(str(ROOT / pattern))):
            rel = os.path.relpath(f, ROOT)
            if rel not in files:
                files.append(rel)
    return files


@dataclass
class Baseline:
    lines: dict[tuple[str, int], set[str]] = field(default_factory=dict)  # (file, line) -> test node prefixes
    durations: dict[str, float] = field(default_factory=dict)  # test node prefix -> seconds
    seconds: float = 0.0
    cached: bool = False


def _cache_key(name: str, sources: list[str], tests: list[str]) -> str:
    """Changes whenever the code or any test could change which tests run which line."""
    digest = hashlib.sha256(f"{name} {sources} {tests} {sys.version}".encode())
    digest.update(Path(__file__).read_bytes())  # how the baseline is taken
    for path in sorted(glob.glob(str(ROOT / "convostore/**/*.py"), recursive=True)) + sorted(
        glob.glob(str(ROOT / "tests/**/*.py"), recursive=True)
    ):
        digest.update(path.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:24]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "convostore-mutation"


def _baseline(workdir: Path, name: str, sources: list[str], tests: list[str], *, use_cache: bool = True) -> Baseline:
    """Which test functions execute each line, and how long each takes: one coverage run, cached."""
    cache = _cache_dir() / f"{name}-{_cache_key(name, sources, tests)}.json"
    if use_cache and cache.exists():
        raw = json.loads(cache.read_text())
        return Baseline(
            lines={(f, int(line)): set(nodes) for f, line, nodes in raw["lines"]},
            durations=raw["durations"], seconds=raw["seconds"], cached=True,
        )
    rc = workdir / ".mutation-coveragerc"
    data_file = workdir / ".mutation-coverage"
    include = "include =\n" + "".join(f"    {workdir / s}\n" for s in sources)
    rc.write_text(f"[run]\ndynamic_context = test_function\nbranch = false\ndata_file = {data_file}\n{include}")
    # Code that only a CLI subprocess runs (``convostore resume``) is measured too: each
    # test's subprocesses start coverage (sitecustomize) with the test's name as context.
    hooks = workdir / ".mutation-hooks"
    hooks.mkdir(exist_ok=True)
    sub_rc = hooks / "coveragerc"
    sub_rc.write_text(f"[run]\nparallel = true\nsigterm = true\ncontext = ${{{_CONTEXT_VAR}}}\nbranch = false\n"
                      f"data_file = {data_file}\n{include}")
    (hooks / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    (hooks / "_mutation_contexts.py").write_text(_CONTEXT_PLUGIN.format(var=_CONTEXT_VAR, rc=str(sub_rc)))
    env = _env(workdir)
    env["PYTHONPATH"] = f"{hooks}{os.pathsep}{env['PYTHONPATH']}"
    junit = workdir / ".mutation-junit.xml"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest", *tests,
         *[a for a in _DESELECT if a != "-x"], "-p", "_mutation_contexts", f"--junitxml={junit}"],
        cwd=workdir, env=env, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the unmutated tests fail; fix them first:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    import coverage

    base = Baseline(seconds=elapsed)
    for part in [str(data_file), *sorted(glob.glob(f"{data_file}.*"))]:
        data = coverage.CoverageData(basename=part)
        data.read()
        for src in sources:
            by_line = data.contexts_by_lineno(str(workdir / src)) or {}
            for line, contexts in by_line.items():
                nodes = {_node_of(c) for c in contexts if c}
                base.lines.setdefault((src, line), set()).update(n for n in nodes if n)
    for case in ET.parse(junit).getroot().iter("testcase"):
        node = _node_from_junit(case.get("classname", ""), case.get("name", ""))
        base.durations[node] = base.durations.get(node, 0.0) + float(case.get("time") or 0)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({
        "lines": [[f, line, sorted(nodes)] for (f, line), nodes in base.lines.items()],
        "durations": base.durations, "seconds": elapsed,
    }))
    return base


_CONTEXT_VAR = "CONVOSTORE_MUTATION_CONTEXT"
_SITECUSTOMIZE = """\
import os
if os.environ.get("COVERAGE_PROCESS_START"):
    try:
        import coverage
        coverage.process_startup()
    except ImportError:  # another Python (an SDK side venv): not measured
        pass
"""
_CONTEXT_PLUGIN = """\
import os
import pytest
os.environ["COVERAGE_PROCESS_START"] = {rc!r}
@pytest.hookimpl(tryfirst=True)  # before the fixtures copy the environment for their subprocesses
def pytest_runtest_setup(item):
    cls = item.cls.__name__ + "." if item.cls else ""
    os.environ[{var!r}] = item.module.__name__ + "." + cls + item.originalname
"""


def _node_of(context: str) -> str | None:
    """coverage's ``tests.test_x.test_name`` (or ``...Class.test_name``) as a pytest node id."""
    parts = context.split(".")
    for i in range(len(parts), 0, -1):
        candidate = "/".join(parts[:i]) + ".py"
        if (ROOT / candidate).exists():
            return candidate + "::" + "::".join(parts[i:])
    return None


def _node_from_junit(classname: str, name: str) -> str:
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        candidate = "/".join(parts[:i]) + ".py"
        if (ROOT / candidate).exists():
            return "::".join([candidate, *parts[i:], name.split("[")[0]])
    return f"{classname}::{name}"


def _covering_node(mutant: Mutant, base: Baseline) -> set[str]:
    """Tests that execute the mutated node's lines (a multi-line node: any of them)."""
    nodes: set[str] = set()
    first, last = mutant.cover or (mutant.line, mutant.end_line)
    for line in range(first, last + 1):
        nodes |= base.lines.get((mutant.path, line), set())
    return nodes


def _plan(mutant: Mutant, base: Baseline) -> tuple[list[str], float]:
    """The covering tests, fastest first, and a timeout: generous, since a slow pass on a
    shared machine is not a kill (a timeout is meant for a mutant that loops forever)."""
    tests = sorted(_covering_node(mutant, base), key=lambda n: base.durations.get(n, 1.0))
    budget = sum(base.durations.get(n, 1.0) for n in tests)
    return tests, 60 + 5 * budget


def _first_failure(output: str) -> str:
    """The node id of the first ``FAILED``/``ERROR`` line of pytest's short summary."""
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ", 1)[0]
    return ""


def _verdict(returncode: int) -> str:
    # 0: every test passed; 5: all deselected (postgres only) counts as not noticed.
    return "survived" if returncode in (0, 5) else "killed"


def run_mutant(workdir: Path, mutant: Mutant, base: Baseline, original: bytes) -> None:
    """The plain way (``--no-fork``): a fresh pytest process per mutant, the mutant on disk."""
    tests, timeout = _plan(mutant, base)
    mutant.tests = len(tests)
    if not tests:
        mutant.status = "uncovered"
        return
    target = workdir / mutant.path
    target.write_bytes(mutant.apply(original))
    started = time.perf_counter()
    mutant.mode = "process"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *tests, *_RUN_ARGS],
            cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=timeout,
        )
        mutant.status = _verdict(done.returncode)
        mutant.killed_by = _first_failure(done.stdout) if mutant.status == "killed" else ""
    except subprocess.TimeoutExpired:
        mutant.status = "timeout"
    finally:
        target.write_bytes(original)
        mutant.seconds = time.perf_counter() - started


# --- the fork server ------------------------------------------------------------------
#
# Most of a plain run's time per mutant is a fresh interpreter importing the SDK, SQLAlchemy,
# pytest and convostore, then collecting the test files. A server process does that once
# (and collects every mapped test file once, so test modules are imported with pytest's
# assertion rewriting already done); per mutant it forks a child that puts the mutated
# functions' code objects in place (``function.__code__``: every reference to the function,
# ``from x import f`` included, sees the mutant) and runs ``pytest.main`` on the covering
# tests. The mutated file is also written to the server's own copy of the checkout, so a
# test that starts a subprocess (the CLI) or imports the module for the first time runs the
# mutant too. A mutant outside a function body (module or class level, a default argument)
# cannot be swapped in: the child then runs pytest in a fresh interpreter, as ``--no-fork``.

_CO_FUNCTION = inspect.CO_OPTIMIZED | inspect.CO_NEWLOCALS
_HARNESS_ERROR = 99  # the child's exit code when the harness itself failed (not a verdict)


class _NotSwappable(Exception):
    """The mutant changes code that runs at import time: only a fresh process runs it."""


def _shallow_same(a: types.CodeType, b: types.CodeType) -> bool:
    consts = lambda c: [x for x in c.co_consts if not isinstance(x, types.CodeType)]  # noqa: E731
    return (a.co_code, a.co_names, a.co_varnames, a.co_freevars, a.co_cellvars, consts(a)) == (
        b.co_code, b.co_names, b.co_varnames, b.co_freevars, b.co_cellvars, consts(b))


def _deep_same(a: types.CodeType, b: types.CodeType) -> bool:
    if not _shallow_same(a, b):
        return False
    ka = [x for x in a.co_consts if isinstance(x, types.CodeType)]
    kb = [x for x in b.co_consts if isinstance(x, types.CodeType)]
    return len(ka) == len(kb) and all(_deep_same(x, y) for x, y in zip(ka, kb))


def _changed_functions(original: types.CodeType, mutated: types.CodeType) -> list[tuple[types.CodeType, types.CodeType]]:
    """(original, mutated) code of each module-level function or method whose code changed.

    Line numbers are ignored (a mutant that joins lines shifts every later function).
    Raises ``_NotSwappable`` when code run at import (module or class body) changed."""
    if not _shallow_same(original, mutated):
        raise _NotSwappable
    ka = [x for x in original.co_consts if isinstance(x, types.CodeType)]
    kb = [x for x in mutated.co_consts if isinstance(x, types.CodeType)]
    if len(ka) != len(kb):
        raise _NotSwappable
    changed: list[tuple[types.CodeType, types.CodeType]] = []
    for a, b in zip(ka, kb):
        if a.co_flags & _CO_FUNCTION == _CO_FUNCTION:
            if not _deep_same(a, b):
                changed.append((a, b))
        else:  # a class body
            changed += _changed_functions(a, b)
    return changed


def _live_functions(module: types.ModuleType) -> Iterator[types.FunctionType]:
    """Every function object defined at module or class level in ``module``."""
    seen: set[int] = set()

    def unwrap(obj: object) -> Iterator[types.FunctionType]:
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            for part in (obj.fget, obj.fset, obj.fdel):
                yield from unwrap(part)
            return
        if isinstance(obj, functools.cached_property):
            obj = obj.func
        while obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            if isinstance(obj, types.FunctionType):
                yield obj
            obj = getattr(obj, "__wrapped__", None)

    def walk(namespace: dict[str, object]) -> Iterator[types.FunctionType]:
        for value in list(namespace.values()):
            if isinstance(value, type) and value.__module__ == module.__name__ and id(value) not in seen:
                seen.add(id(value))
                yield from walk(dict(vars(value)))
            else:
                yield from unwrap(value)

    yield from walk(vars(module))


def _swaps(workdir: Path, path: str, mutated: bytes) -> list[tuple[types.FunctionType, types.CodeType]]:
    """The in-memory change that makes the imported module behave as ``mutated``."""
    name = path[: -len(".py")].replace("/", ".").removesuffix(".__init__")
    module = sys.modules.get(name)
    if module is None:
        return []  # not imported yet: the child imports the mutated file from disk
    filename = str(workdir / path)
    original = compile((workdir / path).read_bytes(), filename, "exec", dont_inherit=True)
    changed = _changed_functions(original, compile(mutated, filename, "exec", dont_inherit=True))
    by_key = {(a.co_qualname, a.co_firstlineno): b for a, b in changed}
    out = [(f, by_key[(f.__code__.co_qualname, f.__code__.co_firstlineno)]) for f in _live_functions(module)
           if f.__code__.co_filename == filename and (f.__code__.co_qualname, f.__code__.co_firstlineno) in by_key]
    if len({id(code) for _, code in out}) != len(by_key):
        raise _NotSwappable  # a changed function no live object holds (made at import by a decorator)
    return out


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit code as pytest's, or None when it ran past ``timeout`` (killed)."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # a CLI subprocess a killed test left behind
    if not ready:
        return None
    return os.waitstatus_to_exitcode(status)


def _serve(workdir: Path, test_files: list[str]) -> None:
    """The worker: import everything once, then judge one mutant per line read from stdin."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    log_path = workdir / ".mutation-last.log"
    quiet = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    os.chdir(workdir)
    import pytest

    # Collecting once imports the test modules (asserts rewritten), conftest, the plugins and,
    # through them, convostore, the SDK and the stores; forked children find them in sys.modules.
    pytest.main([*test_files, "--collect-only", *_RUN_ARGS])
    import convostore

    if not Path(convostore.__file__).is_relative_to(workdir):
        sys.exit(f"the worker imported convostore from {convostore.__file__}, not from its copy {workdir}")
    gc.collect()
    gc.freeze()  # children then share the parent's pages instead of copying them on every GC
    for raw in sys.stdin:
        job = json.loads(raw)
        path, tests, timeout = job["path"], job["tests"], job["timeout"]
        target = workdir / path
        original = target.read_bytes()
        mutated = original[: job["start"]] + job["replacement"].encode() + original[job["end"] :]
        try:
            swaps, mode = _swaps(workdir, path, mutated), "fork"
        except _NotSwappable:
            swaps, mode = [], "process"
        target.write_bytes(mutated)
        started = time.perf_counter()
        try:
            pid = os.fork()
            if pid == 0:  # the child
                code = _HARNESS_ERROR
                try:
                    os.setpgid(0, 0)
                    out = os.open(log_path, os.O_WRONLY | os.O_TRUNC)
                    os.dup2(out, 1)
                    os.dup2(out, 2)
                    if mode == "fork":
                        for function, new_code in swaps:
                            function.__code__ = new_code
                        code = int(pytest.main([*tests, *_RUN_ARGS]))
                    else:
                        code = subprocess.run([sys.executable, "-m", "pytest", *tests, *_RUN_ARGS]).returncode
                    sys.stdout.flush()
                    sys.stderr.flush()
                except BaseException:
                    traceback.print_exc()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
            rc = _wait(pid, timeout)
        finally:
            target.write_bytes(original)
        status = "timeout" if rc is None else "error" if rc == _HARNESS_ERROR else _verdict(rc)
        killed_by = _first_failure(log_path.read_text(errors="replace")) if status == "killed" else ""
        proto.write(json.dumps({"status": status, "mode": mode, "seconds": time.perf_counter() - started,
                                "killed_by": killed_by}) + "\n")


class _Worker:
    """One fork server (``--serve``) in its own copy of the checkout."""

    def __init__(self, workdir: Path, test_files: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(workdir), *test_files],
            cwd=workdir, env=_env(workdir), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def judge(self, mutant: Mutant, base: Baseline) -> None:
        tests, timeout = _plan(mutant, base)
        mutant.tests = len(tests)
        if not tests:
            mutant.status = "uncovered"
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"path": mutant.path, "start": mutant.start, "end": mutant.end, "replacement": mutant.replacement,
               "tests": tests, "timeout": timeout}
        self.proc.stdin.write(json.dumps(job) + "\n")
        answer = self.proc.stdout.readline()
        if not answer:
            sys.exit(f"the mutation worker died (exit {self.proc.wait()}); see its .mutation-last.log")
        result = json.loads(answer)
        if result["status"] == "error":
            sys.exit(f"the mutation worker failed on {mutant.path}:{mutant.line}; see its .mutation-last.log")
        mutant.status, mutant.mode, mutant.seconds = result["status"], result["mode"], result["seconds"]
        mutant.killed_by = result["killed_by"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


def run_module(
    name: str, *, only_lines: set[int] | None = None, functions: set[str] | None = None, progress: bool = True,
    workers: int = 1, fork: bool = True, use_cache: bool = True,
) -> list[Mutant]:
    sources, test_globs = MODULES[name]
    tests = _test_files(test_globs)
    chosen: list[Mutant] = []
    for src in sources:
        for m in mutants_of(src):
            if only_lines and m.line not in only_lines:
                continue
            if functions and not any(m.function == f or m.function.startswith(f + ".") for f in functions):
                continue
            chosen.append(m)
    lock = threading.Lock()

    def report(m: Mutant) -> None:
        if progress:
            with lock:
                by = f", by {m.killed_by}" if m.killed_by else ""
                print(f"  {m.status:9} {m.path}:{m.line} {m.description} ({m.tests} tests, {m.seconds:.1f}s, {m.mode}{by})",
                      file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix=f"convostore-mutation-{name}-") as tmp:
        dirs = [Path(tmp) / f"w{i}" for i in range(max(1, workers))]
        for d in dirs:
            _copy_checkout(d)
        base = _baseline(dirs[0], name, sources, tests, use_cache=use_cache)
        if progress:
            how = "cached" if base.cached else f"{base.seconds:.0f}s"
            print(f"{name}: baseline {how} over {len(tests)} test files; {len(chosen)} mutants, "
                  f"{len(dirs)} worker(s), {'fork server' if fork else 'a process per mutant'}", file=sys.stderr, flush=True)
        if not fork:
            originals = {src: (dirs[0] / src).read_bytes() for src in sources}
            for m in chosen:
                run_mutant(dirs[0], m, base, originals[m.path])
                report(m)
            return chosen
        queue = list(reversed(chosen))

        def drain(workdir: Path) -> None:
            worker = _Worker(workdir, tests)
            try:
                while True:
                    with lock:
                        if not queue:
                            return
                        m = queue.pop()
                    worker.judge(m, base)
                    report(m)
            finally:
                worker.close()

        threads = [threading.Thread(target=drain, args=(d,)) for d in dirs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return chosen


# --- reporting -----------------------------------------------------------------------


def summary(results: list[Mutant]) -> dict[str, int]:
    counts = {"killed": 0, "timeout": 0, "survived": 0, "uncovered": 0}
    for m in results:
        counts[m.status] += 1
    return counts


def score(counts: dict[str, int]) -> float:
    total = sum(counts.values())
    return 100.0 * (counts["killed"] + counts["timeout"]) / total if total else 100.0


def render(by_module: dict[str, list[Mutant]]) -> str:
    lines = ["# Mutation report", "", f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/mutation.py`.", "",
             "| module | mutants | killed | timeout | survived | no test runs it | score |", "|---|---|---|---|---|---|---|"]
    for name, results in by_module.items():
        c = summary(results)
        lines.append(f"| {name} | {len(results)} | {c['killed']} | {c['timeout']} | {c['survived']} | {c['uncovered']} | {score(c):.1f}% |")
    lines.append("")
    for name, results in by_module.items():
        survivors = [m for m in results if m.status in ("survived", "uncovered")]
        if not survivors:
            continue
        lines += [f"## Survivors in {name}", ""]
        for m in survivors:
            note = " (no test executes this line)" if m.status == "uncovered" else ""
            lines.append(f"- `{m.path}:{m.line}` ({m.function or 'module'}) {m.description}{note}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all): {', '.join(MODULES)}")
    parser.add_argument("--list", action="store_true", help="print the modules, their files, mutant counts and tests")
    parser.add_argument("--lines", help="only mutants on these lines, e.g. 120,131 (one module)")
    parser.add_argument("--functions", help="only mutants inside these functions, e.g. _send,_Links.landed")
    parser.add_argument("--report", help="write the Markdown report here")
    parser.add_argument("--json", dest="json_out", help="write every mutant's result as JSON here")
    parser.add_argument("--workers", type=int, default=1, choices=(1, 2),
                        help="fork servers judging mutants side by side (2 at most: the machine is shared)")
    parser.add_argument("--no-fork", action="store_true",
                        help="a fresh pytest process per mutant (slow; the fork server's results should match it)")
    parser.add_argument("--no-cache", action="store_true", help="re-run the coverage baseline even if cached")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:  # internal: a fork server started by run_module
        _serve(Path(argv[1]), argv[2:])
        return 0
    args = parser.parse_args(argv)
    names = args.modules or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    if args.list:
        for n in names:
            sources, globs = MODULES[n]
            count = sum(len(mutants_of(s)) for s in sources)
            print(f"{n}: {count} mutants in {', '.join(sources)}; tests {', '.join(_test_files(globs))}")
            if args.functions is not None:
                per: dict[str, int] = {}
                for src in sources:
                    for m in mutants_of(src):
                        per[m.function] = per.get(m.function, 0) + 1
                print("  " + ", ".join(f"{k or '<module>'} {v}" for k, v in per.items()))
        return 0
    only = {int(x) for x in args.lines.split(",")} if args.lines else None
    by_module: dict[str, list[Mutant]] = {}
    for n in names:
        funcs = set(args.functions.split(",")) if args.functions else None
        by_module[n] = run_module(n, only_lines=only, functions=funcs, workers=args.workers,
                                  fork=not args.no_fork, use_cache=not args.no_cache)
        c = summary(by_module[n])
        print(f"{n}: {len(by_module[n])} mutants, {c['killed']} killed, {c['timeout']} timeout, "
              f"{c['survived']} survived, {c['uncovered']} uncovered: {score(c):.1f}%", flush=True)
    text = render(by_module)
    if args.report:
        Path(args.report).write_text(text + "\n")
    else:
        print(text)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({n: [m.__dict__ for m in r] for n, r in by_module.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
