"""An AST lint: no SQL text built by string formatting, in the code that ships.

A query must reach ``execute()`` / ``executemany()`` / ``executescript()`` / ``copy()`` as a
literal string (values go in as parameters) or as a psycopg ``sql.Composed`` (identifiers
through ``sql.Identifier``, values through ``sql.Literal`` or placeholders), and ``sql.SQL()``
only ever wraps a literal template. Flagged, wherever it reaches one of those calls, directly
or through a variable assigned in the same function or at module level:

* an f-string with a replacement field,
* ``%`` formatting of a string,
* ``str.format()`` (``sql.SQL(...).format(...)`` is psycopg's safe composition and is fine),
* ``+`` / ``+=`` on strings (``sql.SQL(...) + sql.SQL(...)`` is fine),
* for ``SQL()``: anything that is not a literal string or a name bound only to one.

Even when every interpolated piece is a constant today, the pattern is what a later change
turns into an injection, so it is refused outright.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

QUERY_CALLS = {"execute", "executemany", "executescript", "copy"}
# Receivers whose .copy() is not a database call (shutil.copy(src, dst), copy.copy(x)).
NOT_DATABASE = {"shutil", "copy"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    call: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}(): {self.problem}"


@dataclass(frozen=True)
class Wrapper:
    """A function that passes one of its parameters on as a query: calls to it are checked too."""

    name: str
    index: int  # of the positional argument, ``self``/``cls`` not counted
    parameter: str


def _called(node: ast.Call) -> tuple[str, ast.expr | None] | None:
    func = node.func
    if isinstance(func, ast.Attribute):
        if func.attr == "copy" and isinstance(func.value, ast.Name) and func.value.id in NOT_DATABASE:
            return None
        return func.attr, func.value
    if isinstance(func, ast.Name):
        return func.id, None
    return None


def _query_argument(node: ast.Call, index: int = 0, names: tuple[str, ...] = ("query",)) -> ast.expr | None:
    if len(node.args) > index and not any(isinstance(a, ast.Starred) for a in node.args[:index + 1]):
        return node.args[index]
    for keyword in node.keywords:
        if keyword.arg in names:
            return keyword.value
    return None


#: Stands for a function parameter: whatever a caller passes (not a literal, not known to be formatted).
_PARAMETER = ast.Constant(value=...)


class _Scope:
    """Assignments to plain names in one function (or the module), for following a variable."""

    def __init__(self, body: Iterable[ast.AST], parent: _Scope | None) -> None:
        self.parent = parent
        self.assigned: dict[str, list[ast.expr]] = {}
        for node in body:
            for sub in _walk_same_scope(node):
                if isinstance(sub, ast.Assign):
                    for target in sub.targets:
                        if isinstance(target, ast.Name):
                            self.assigned.setdefault(target.id, []).append(sub.value)
                elif isinstance(sub, ast.AnnAssign) and isinstance(sub.target, ast.Name) and sub.value is not None:
                    self.assigned.setdefault(sub.target.id, []).append(sub.value)
                elif isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                    self.assigned.setdefault(sub.target.id, []).append(sub.value)
                elif isinstance(sub, ast.AugAssign) and isinstance(sub.target, ast.Name):
                    # ``q += x`` is ``q = q + x``: judged as a concatenation of q and x.
                    self.assigned.setdefault(sub.target.id, []).append(
                        ast.BinOp(left=ast.Name(sub.target.id, ast.Load()), op=sub.op, right=sub.value))

    def values(self, name: str) -> list[ast.expr] | None:
        if name in self.assigned:
            return self.assigned[name]
        return self.parent.values(name) if self.parent else None


def _walk_same_scope(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` that does not descend into nested functions, lambdas or classes."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield from _walk_same_scope(child)


class _Checker:
    def __init__(self, path: str, wrappers: dict[str, Wrapper]) -> None:
        self.path = path
        self.wrappers = wrappers
        self.findings: list[Finding] = []

    # What an expression is ----------------------------------------------------------------

    def formatted(self, node: ast.expr, scope: _Scope, seen: frozenset[str] = frozenset()) -> str | None:
        """Why ``node`` is SQL text built by string formatting, or None."""
        if isinstance(node, ast.JoinedStr):
            if any(isinstance(v, ast.FormattedValue) for v in node.values):
                return "an f-string"
            return None
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Mod) and self.stringish(node.left, scope, seen):
                return "%-formatting of a string"
            if isinstance(node.op, ast.Add) and (self.stringish(node.left, scope, seen)
                                                  or self.stringish(node.right, scope, seen)):
                return "string concatenation"
            return None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            if self.stringish(node.func.value, scope, seen):
                return "str.format()"
            return None
        if isinstance(node, ast.IfExp):
            return self.formatted(node.body, scope, seen) or self.formatted(node.orelse, scope, seen)
        if isinstance(node, ast.Name) and node.id not in seen:
            for value in scope.values(node.id) or []:
                if why := self.formatted(value, scope, seen | {node.id}):
                    return f"{why} (through the variable {node.id!r})"
        return None

    def stringish(self, node: ast.expr, scope: _Scope, seen: frozenset[str]) -> bool:
        """Whether ``node`` evaluates to a ``str`` (as far as the source shows)."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        if isinstance(node, ast.JoinedStr):
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            return self.stringish(node.left, scope, seen) or self.stringish(node.right, scope, seen)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            return self.stringish(node.func.value, scope, seen)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str":
            return True
        if isinstance(node, ast.IfExp):
            return self.stringish(node.body, scope, seen) or self.stringish(node.orelse, scope, seen)
        if isinstance(node, ast.Name) and node.id not in seen:
            return any(self.stringish(v, scope, seen | {node.id}) for v in scope.values(node.id) or [])
        return False

    def literal(self, node: ast.expr, scope: _Scope, seen: frozenset[str] = frozenset()) -> bool:
        """A literal string, or a name bound only to literal strings."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        if isinstance(node, ast.Name) and node.id not in seen:
            values = scope.values(node.id)
            return bool(values) and all(self.literal(v, scope, seen | {node.id}) for v in values)
        return False

    # Walking --------------------------------------------------------------------------------

    def check(self, tree: ast.Module) -> list[Finding]:
        scope = _Scope(tree.body, None)
        for statement in tree.body:
            self._visit(statement, scope)
        return self.findings

    def _visit(self, node: ast.AST, scope: _Scope) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            outer = [*getattr(node, "decorator_list", []), *args.defaults, *(d for d in args.kw_defaults if d)]
            for expression in outer:  # evaluated where the function is defined
                self._visit(expression, scope)
            body = [ast.Expr(node.body)] if isinstance(node, ast.Lambda) else node.body
            inner = _Scope(body, scope)
            positional = [*args.posonlyargs, *args.args]
            defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults))
            defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
            for arg in (*positional, *args.kwonlyargs, args.vararg, args.kwarg):
                if arg is not None:  # a parameter can hold anything a caller passes
                    given = [defaults[arg.arg]] if arg.arg in defaults else []
                    inner.assigned[arg.arg] = [*given, _PARAMETER, *inner.assigned.get(arg.arg, [])]
            for statement in body:
                self._visit(statement, inner)
            return
        if isinstance(node, ast.ClassDef):
            for expression in (*node.decorator_list, *node.bases):
                self._visit(expression, scope)
            inner = _Scope(node.body, scope)
            for statement in node.body:
                self._visit(statement, inner)
            return
        if isinstance(node, ast.Call):
            self._check_call(node, scope)
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def _query_of(self, node: ast.Call) -> tuple[str, ast.expr | None]:
        called = _called(node)
        if called is None:
            return "", None
        name, _ = called
        if name == "SQL":
            return name, _query_argument(node, 0, ("obj",))
        if name in QUERY_CALLS:
            return name, _query_argument(node, 0, ("query", "sql", "statement"))
        if name in self.wrappers:
            wrapper = self.wrappers[name]
            return name, _query_argument(node, wrapper.index, (wrapper.parameter,))
        return name, None

    def _check_call(self, node: ast.Call, scope: _Scope) -> None:
        name, argument = self._query_of(node)
        if argument is None:
            return
        if name == "SQL":
            if not self.literal(argument, scope):
                why = self.formatted(argument, scope) or "a value that is not a literal string"
                self.findings.append(Finding(self.path, node.lineno, name, f"SQL() wraps {why}"))
            return
        if why := self.formatted(argument, scope):
            self.findings.append(Finding(self.path, node.lineno, name, f"the query is {why}"))


def _wrappers_in(tree: ast.Module, known: dict[str, Wrapper]) -> dict[str, Wrapper]:
    """Functions that hand a parameter, unchanged, to a query call (or to a known wrapper)."""
    probe = _Checker("", known)
    found: dict[str, Wrapper] = {}
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        params = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
        if params and params[0] in ("self", "cls"):
            params = params[1:]
        for node in ast.walk(function):
            if isinstance(node, ast.Call):
                name, argument = probe._query_of(node)
                if name != "SQL" and isinstance(argument, ast.Name) and argument.id in params:
                    found[function.name] = Wrapper(function.name, params.index(argument.id), argument.id)
    return found


def lint_sources(sources: dict[str, str]) -> list[Finding]:
    """Lint several modules together, so a query wrapper defined in one is known in all."""
    trees = {path: ast.parse(source, filename=path) for path, source in sources.items()}
    wrappers: dict[str, Wrapper] = {}
    while True:  # wrappers of wrappers, to a fixed point
        found = {name: w for tree in trees.values() for name, w in _wrappers_in(tree, wrappers).items()}
        if found.keys() <= wrappers.keys():
            break
        wrappers.update(found)
    findings: list[Finding] = []
    for path, tree in trees.items():
        findings += _Checker(path, wrappers).check(tree)
    return findings


def lint_source(source: str, path: str = "<string>") -> list[Finding]:
    return lint_sources({path: source})


def lint_paths(paths: Iterable[Path], root: Path) -> list[Finding]:
    return lint_sources({str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in paths})
