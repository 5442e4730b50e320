"""Mutation testing of convostore's decision code: does the suite notice a small plausible bug?

    nice python bench/mutation.py report              # one module (names: see MODULES)
    nice python bench/mutation.py replaying comparison --report bench/mutation-report.md
    python bench/mutation.py --list                   # the modules and the tests mapped to them

For each module it (1) copies the checkout to a temporary directory, (2) runs the
module's mapped tests there once under coverage, one context per test, to learn which
tests execute each line and how long each takes, then (3) makes one small change at a
time with the AST (a comparison or boolean operator flipped, a condition negated, a
constant nudged, a call statement or a member of a literal set removed, a return
value dropped, ``break``/``continue`` swapped), and runs only the tests that cover the
mutated line, fastest first, with ``-x`` and a timeout from their measured time. A
mutant a test fails on is *killed*; one every test passes is a *survivor* (listed with
file:line and the change; a line no test executes counts as a survivor too); one that
runs past its timeout counts as *timeout* (noticed, like killed). The working tree is
never touched. PostgreSQL parametrizations are deselected (the decision code is the
same on both stores), so a run needs no database server.

Survivors go into ``bench/mutation-survivors.md`` by hand: each is killed by a new
test or explained as equivalent. Needs ``coverage`` (``pip install -e '.[mutation]'``).
"""

from __future__ import annotations

import argparse
import ast
import copy
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
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
    "resume": (["convostore/resume.py"], ["tests/test_resume*.py", "tests/test_cli_resume.py", "tests/test_recorder.py"]),
    "recording": (
        ["convostore/recording/core.py", "convostore/recording/methods.py"],
        ["tests/test_recorder*.py", "tests/test_resume*.py", "tests/test_secrets.py"],
    ),
    "wire": (["convostore/wire.py"], ["tests/test_wire.py", "tests/test_history.py", "tests/test_recorder_sdk1.py"]),
    "replaying": (
        ["convostore/replaying.py"],
        ["tests/test_replay*.py", "tests/test_cli_replay.py"],
    ),
    "comparison": (
        ["convostore/comparison.py"],
        ["tests/test_replay*.py", "tests/test_cli_replay.py", "tests/test_report*.py"],
    ),
    "archive": (["convostore/archive.py"], ["tests/test_archive.py", "tests/test_import*.py"]),
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
    status: str = "pending"  # killed | survived | timeout | uncovered
    tests: int = 0
    seconds: float = 0.0

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
        self.found: list[tuple[ast.AST, str, str, str]] = []
        self.scope: list[str] = []

    def _add(self, node: ast.AST, new: ast.AST | str, what: str) -> None:
        text = new if isinstance(new, str) else ast.unparse(new)
        if isinstance(node, ast.expr) and not isinstance(new, str):
            text = f"({text})"
        self.found.append((node, text, what, ".".join(self.scope)))

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
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)

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
    for node, text, what, function in finder.found:
        start = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
        key = (start, end, text)
        if key in seen:
            continue
        seen.add(key)
        m = Mutant(path, node.lineno, start, end, text, what, function)
        try:
            compile(m.apply(source), path, "exec")
        except SyntaxError:
            continue
        out.append(m)
    return out


# --- running them -------------------------------------------------------------------


def _copy_checkout(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "*.db")
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


def _baseline(workdir: Path, sources: list[str], tests: list[str]) -> Baseline:
    """Run the tests once under coverage with one context per test function."""
    rc = workdir / ".mutation-coveragerc"
    rc.write_text(
        "[run]\ndynamic_context = test_function\nbranch = false\n"
        f"data_file = {workdir / '.mutation-coverage'}\n"
        "include =\n" + "".join(f"    {workdir / s}\n" for s in sources)
    )
    junit = workdir / ".mutation-junit.xml"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest", *tests,
         *[a for a in _DESELECT if a != "-x"], f"--junitxml={junit}"],
        cwd=workdir, env=_env(workdir), capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the unmutated tests fail; fix them first:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    import coverage

    data = coverage.CoverageData(basename=str(workdir / ".mutation-coverage"))
    data.read()
    base = Baseline(seconds=elapsed)
    for src in sources:
        by_line = data.contexts_by_lineno(str(workdir / src)) or {}
        for line, contexts in by_line.items():
            nodes = {_node_of(c) for c in contexts if c}
            base.lines[(src, line)] = {n for n in nodes if n}
    for case in ET.parse(junit).getroot().iter("testcase"):
        node = _node_from_junit(case.get("classname", ""), case.get("name", ""))
        base.durations[node] = base.durations.get(node, 0.0) + float(case.get("time") or 0)
    return base


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
    end_line = mutant.line
    nodes: set[str] = set()
    source = (ROOT / mutant.path).read_bytes()
    end_line = source[: mutant.end].count(b"\n") + 1
    for line in range(mutant.line, end_line + 1):
        nodes |= base.lines.get((mutant.path, line), set())
    return nodes


def run_mutant(workdir: Path, mutant: Mutant, base: Baseline, original: bytes) -> None:
    tests = sorted(_covering_node(mutant, base), key=lambda n: base.durations.get(n, 1.0))
    mutant.tests = len(tests)
    if not tests:
        mutant.status = "uncovered"
        return
    budget = sum(base.durations.get(n, 1.0) for n in tests)
    timeout = 90 + 5 * budget  # generous: the machine is shared, and a slow pass is not a kill
    target = workdir / mutant.path
    target.write_bytes(mutant.apply(original))
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *tests, *_DESELECT, "-p", "no:randomly"],
            cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=timeout,
        )
        # 0: every test passed; 5: all deselected (postgres only) counts as not noticed.
        mutant.status = "survived" if done.returncode in (0, 5) else "killed"
    except subprocess.TimeoutExpired:
        mutant.status = "timeout"
    finally:
        target.write_bytes(original)
        mutant.seconds = time.perf_counter() - started


def run_module(
    name: str, *, only_lines: set[int] | None = None, functions: set[str] | None = None, progress: bool = True
) -> list[Mutant]:
    sources, test_globs = MODULES[name]
    tests = _test_files(test_globs)
    with tempfile.TemporaryDirectory(prefix=f"convostore-mutation-{name}-") as tmp:
        workdir = Path(tmp)
        _copy_checkout(workdir)
        base = _baseline(workdir, sources, tests)
        if progress:
            print(f"{name}: baseline {base.seconds:.0f}s over {len(tests)} test files", file=sys.stderr, flush=True)
        results: list[Mutant] = []
        for src in sources:
            original = (workdir / src).read_bytes()
            for m in mutants_of(src):
                if only_lines and m.line not in only_lines:
                    continue
                if functions and not any(m.function == f or m.function.startswith(f + ".") for f in functions):
                    continue
                run_mutant(workdir, m, base, original)
                results.append(m)
                if progress:
                    print(f"  {m.status:9} {m.path}:{m.line} {m.description} ({m.tests} tests, {m.seconds:.1f}s)",
                          file=sys.stderr, flush=True)
    return results


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
        by_module[n] = run_module(n, only_lines=only, functions=funcs)
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
