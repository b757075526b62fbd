"""Slicer's Python API as a list of names, and the module files' uses of it.

Slicer itself cannot be installed here, so its Python API is kept as names (no code) in
``data/slicer_api_names.json``, read from Slicer's source at one commit by
:func:`extract_slicer_api_names`:

    cd Testing && python -m module_checks.slicer_api SLICER_GIT_DIR REV > data/slicer_api_names.json

(SLICER_GIT_DIR: a clone of https://github.com/Slicer/Slicer, bare or not; REV: a commit.)
It lists the top-level names of ``slicer.util``, ``slicer.i18n``, ``slicer.ScriptedLoadableModule``
and ``slicer.parameterNodeWrapper`` (what ``import *`` gives, and every name an attribute may
reach), their classes with bases and members, the attributes Slicer sets on the ``slicer``
package (``app``, ``mrmlScene``, ...), and the Python-visible members of ``slicer.app`` from
the qSlicer*Application headers. MRML classes are checked against the real library instead
(``mrml_calls``).
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

from .syntax_names import dotted

API_NAMES = Path(__file__).resolve().parents[1] / "data" / "slicer_api_names.json"

PYTHON_PACKAGE = "Base/Python/slicer"
PYTHON_MODULES = {
    "slicer.util": f"{PYTHON_PACKAGE}/util.py",
    "slicer.i18n": f"{PYTHON_PACKAGE}/i18n.py",
    "slicer.ScriptedLoadableModule": f"{PYTHON_PACKAGE}/ScriptedLoadableModule.py",
    "slicer.parameterNodeWrapper": f"{PYTHON_PACKAGE}/parameterNodeWrapper/__init__.py",
}
APPLICATION_HEADERS = ("Base/QTCore/qSlicerCoreApplication.h", "Base/QTGUI/qSlicerApplication.h")

#: What ``slicer.app`` inherits from Qt's QCoreApplication, QGuiApplication and QApplication (Qt 5
#: class reference), as far as the modules use it; Slicer's own members come from its headers.
QAPPLICATION_MEMBERS = frozenset({"processEvents", "setOverrideCursor", "restoreOverrideCursor", "quit",
                                  "exit", "instance", "applicationName", "arguments", "clipboard"})


# ---------------------------------------------------------------------- reading Slicer's source

def _git(git_dir: str, *args: str) -> str:
    """The output of one git command on the repository."""
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True).stdout


def _top_level_statements(statements):
    """Statements that run when the module loads, looking into ``if``/``try``/``with`` blocks
    (not ``if TYPE_CHECKING:``, whose names exist only for type checkers)."""
    for statement in statements:
        if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
            yield from _top_level_statements(statement.orelse)
            continue
        yield statement
        if isinstance(statement, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                yield from _top_level_statements(getattr(statement, block, []))
        elif isinstance(statement, ast.ExceptHandler):
            yield from _top_level_statements(statement.body)


def _bound_names(statement) -> list[str]:
    """Names one top-level statement binds."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return [alias.asname or alias.name.split(".")[0] for alias in statement.names if alias.name != "*"]
    if isinstance(statement, (ast.Assign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return [n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)]
    return []


def _declared_all(tree: ast.Module) -> list[str] | None:
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in statement.targets):
            return list(ast.literal_eval(statement.value))
    return None


def self_attributes(class_node: ast.ClassDef) -> set[str]:
    """Attributes a class's methods assign on ``self``."""
    return {node.attr for node in ast.walk(class_node)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}


def class_members(class_node: ast.ClassDef) -> set[str]:
    """What a class defines: methods, class attributes and attributes set on ``self``."""
    defined = {name for statement in class_node.body for name in _bound_names(statement)}
    return defined | self_attributes(class_node)


def _python_module_api(read, path: str) -> dict:
    """Names of one Python module: all top-level ones, those ``import *`` gives, and its classes."""
    tree = ast.parse(read(path))
    statements = list(_top_level_statements(tree.body))
    names = {name for statement in statements for name in _bound_names(statement)}
    star: set[str] = set()
    for statement in statements:
        if isinstance(statement, ast.ImportFrom) and statement.level == 1 and statement.names[0].name == "*":
            sibling = _python_module_api(read, f"{path.rsplit('/', 1)[0]}/{statement.module}.py")
            star |= set(sibling["star"])
    declared = _declared_all(tree)
    public = {name for name in names if not name.startswith("_")}
    star |= set(declared) if declared is not None else public
    classes = {node.name: {"bases": [ast.unparse(base) for base in node.bases],
                           "members": sorted(class_members(node))}
               for node in statements if isinstance(node, ast.ClassDef)}
    return {"names": sorted(public | star), "star": sorted(star), "classes": classes}


def _slicer_package_names(read, package_files: list[str]) -> list[str]:
    """Attributes of the ``slicer`` package itself: the ones Slicer's application sets (listed in
    its ``__init__`` docstring as ``:attr:``) and its Python submodules (``package_files``: the
    package's file paths, relative to it)."""
    runtime = re.findall(r"^\s*\* :attr:`(\w+)`", read(f"{PYTHON_PACKAGE}/__init__.py"), re.MULTILINE)
    submodules = {path.removesuffix(".py") for path in package_files if "/" not in path and path.endswith(".py")}
    submodules |= {path.split("/")[0] for path in package_files
                   if path.count("/") == 1 and path.endswith("/__init__.py")}
    return sorted(set(runtime) | {name for name in submodules if not name.startswith("_")})


def _returned_class(declaration_start: str) -> str:
    """The type a C++ declaration returns, from the text before the method's name."""
    words = [w for w in re.findall(r"[\w:]+", declaration_start) if w not in ("static", "virtual", "const", "inline")]
    return words[-1] if words else ""


def _header_members(text: str) -> dict[str, str]:
    """Python-visible members of a Qt class header: {name: returned class or ""}.

    PythonQt exposes a QObject's Q_PROPERTYs, Q_INVOKABLE methods, public slots and signals.
    """
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    members = {name: "" for name in re.findall(r"Q_PROPERTY\(\s*[\w:<>]+\s*[*&]?\s*(\w+)", text)}
    for start, name in re.findall(r"Q_INVOKABLE\s+([^;(]*?)\b(\w+)\s*\(", text):
        members[name] = _returned_class(start)
    sections = re.findall(r"^\s*(?:public\s+(?:slots|Q_SLOTS)|signals|Q_SIGNALS)\s*:(.*?)(?=^\s*\w[\w\s]*:\s*$|^};)",
                          text, re.MULTILINE | re.DOTALL)
    for section in sections:
        for name in re.findall(r"(\w+)\s*\([^;]*\)\s*(?:const\s*)?(?:override\s*)?;", section):
            members.setdefault(name, "")
    return members


def extract_slicer_api_names(git_dir: str, rev: str) -> dict:
    """The content of ``data/slicer_api_names.json``, read from a Slicer git repository at ``rev``."""
    def read(path: str) -> str:
        return _git(git_dir, "show", f"{rev}:{path}")

    commit, date = _git(git_dir, "log", "-1", "--format=%H %cI", rev).split()
    package_files = _git(git_dir, "ls-tree", "-r", "--name-only", f"{rev}:{PYTHON_PACKAGE}").split()
    application: dict[str, str] = {}
    for header in APPLICATION_HEADERS:
        application.update(_header_members(read(header)))
    return {
        "source": "https://github.com/Slicer/Slicer",
        "commit": commit,
        "commit_date": date,
        "made_by": "cd Testing && python -m module_checks.slicer_api SLICER_GIT_DIR REV > data/slicer_api_names.json",
        "slicer": _slicer_package_names(read, package_files),
        "modules": {module: _python_module_api(read, path) for module, path in PYTHON_MODULES.items()},
        "application": dict(sorted(application.items())),
    }


# ---------------------------------------------------------------------- checking the modules

def load_api_names(path: Path = API_NAMES) -> dict:
    """The stored name list."""
    return json.loads(path.read_text(encoding="utf-8"))


def _is_compiled_class(name: str) -> bool:
    """A C++ class in the ``slicer`` namespace: MRML and VTK ones are checked by ``mrml_calls``;
    Qt-based ones (qMRML*, qSlicer*) cannot be checked without Slicer."""
    return name.startswith(("vtk", "qMRML", "qSlicer"))


def _attribute_problems(tree: ast.Module, api: dict) -> list[str]:
    """``slicer.X``, ``slicer.<module>.X`` and ``slicer.app.X`` that Slicer does not have."""
    modules, problems = api["modules"], []
    application = set(api["application"]) | QAPPLICATION_MEMBERS
    for node in ast.walk(tree):
        path = dotted(node) if isinstance(node, ast.Attribute) else ""
        parts = path.split(".")
        if len(parts) == 2 and parts[0] == "slicer" and not _is_compiled_class(parts[1]):
            if parts[1] not in api["slicer"]:
                problems.append(f"{node.lineno}: {path}: the slicer package has no {parts[1]!r}")
        elif len(parts) == 3 and ".".join(parts[:2]) in modules:
            if parts[2] not in modules[".".join(parts[:2])]["names"]:
                problems.append(f"{node.lineno}: {path}: {'.'.join(parts[:2])} has no {parts[2]!r}")
        elif len(parts) == 3 and parts[:2] == ["slicer", "app"] and parts[2] not in application:
            problems.append(f"{node.lineno}: {path}: slicer.app (qSlicerApplication) has no {parts[2]!r}")
    return problems


def _import_problems(tree: ast.Module, api: dict) -> list[str]:
    """``from slicer.<module> import X`` (and ``from slicer import X``) naming what is not there."""
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module in api["modules"]:
            available = set(api["modules"][node.module]["names"])
        elif node.module == "slicer":
            available = set(api["slicer"]) | set(api["modules"])
        else:
            continue
        problems += [f"{node.lineno}: from {node.module} import {alias.name}: no such name"
                     for alias in node.names if alias.name != "*" and not _is_compiled_class(alias.name)
                     and alias.name not in available]
    return problems


def _names_bound_anywhere(tree: ast.Module) -> set[str]:
    """Every name the file binds in any scope (a generous stand-in for real scoping)."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    return bound


#: Names Python gives every module.
MODULE_GLOBALS = frozenset({"__file__", "__name__", "__doc__", "__spec__", "__loader__", "__package__",
                            "__builtins__", "__cached__"})


def _star_import_problems(tree: ast.Module, api: dict) -> list[str]:
    """Names used but bound nowhere in the file must come from its ``from slicer.X import *``."""
    starred = [node.module for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names)]
    if any(module not in api["modules"] for module in starred):
        return []  # a star import from elsewhere could supply any name
    available = _names_bound_anywhere(tree) | set(dir(builtins)) | MODULE_GLOBALS
    available |= {name for module in starred for name in api["modules"][module]["star"]}
    return [f"{node.lineno}: name {node.id!r} is defined nowhere (nor by {', '.join(starred) or 'any star import'})"
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in available]


class ClassMembers:
    """Members of classes along their bases: the file's own classes, Slicer's (from the name list)
    and ``unittest.TestCase``; None for a class with a base that is none of those."""

    def __init__(self, tree: ast.Module, api: dict):
        self.local = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
        self.slicer = {name: summary for module in api["modules"].values()
                       for name, summary in module["classes"].items()}

    def canonical(self, name: str) -> str:
        """A base as the file writes it (``slicer.util.VTKObservationMixin``) by its class name."""
        short = name.rsplit(".", 1)[-1]
        return short if name not in self.local and short in self.slicer else name

    def bases(self, name: str) -> list[str] | None:
        name = self.canonical(name)
        if name in self.local:
            return [dotted(base) for base in self.local[name].bases]
        if name in self.slicer:
            return self.slicer[name]["bases"]
        return None

    def members(self, name: str) -> set[str] | None:
        if name in ("unittest.TestCase", "object"):
            return set(dir(unittest.TestCase if name == "unittest.TestCase" else object))
        name = self.canonical(name)
        if name in self.local:
            own = class_members(self.local[name])
        elif name in self.slicer:
            own = set(self.slicer[name]["members"])
        else:
            return None
        inherited = self.inherited(name)
        return None if inherited is None else own | inherited

    def inherited(self, name: str) -> set[str] | None:
        members = set(dir(object))
        for base in self.bases(name) or []:
            base_members = self.members(base)
            if base_members is None:
                return None
            members |= base_members
        return members


def _member_problems(tree: ast.Module, api: dict) -> list[str]:
    """In the file's classes that derive from Slicer's (ScriptedLoadableModule*, VTKObservationMixin):
    ``self.X``, ``super().X`` and ``SlicerClass.X(self, ...)`` that neither the class nor its bases have."""
    classes, problems = ClassMembers(tree, api), []
    for name, node in classes.local.items():
        if not any(classes.canonical(base) in classes.slicer for base in classes.bases(name)):
            continue
        members, inherited = classes.members(name), classes.inherited(name)
        if members is None:
            continue
        for use in ast.walk(node):
            if not isinstance(use, ast.Attribute):
                continue
            owner = dotted(use.value)
            if owner == "self" and use.attr not in members:
                problems.append(f"{use.lineno}: self.{use.attr}: {name} and its bases have no {use.attr!r}")
            elif (isinstance(use.value, ast.Call) and dotted(use.value.func) == "super"
                  and use.attr not in inherited):
                problems.append(f"{use.lineno}: super().{use.attr}: the bases of {name} have no {use.attr!r}")
            elif owner in classes.slicer and use.attr not in (classes.members(owner) or {use.attr}):
                # (a Slicer class with an unknown base is not checked)
                problems.append(f"{use.lineno}: {owner}.{use.attr}: {owner} has no {use.attr!r}")
    return problems


def api_problems(module_name: str, tree: ast.Module, api: dict) -> list[str]:
    """Every use of Slicer's Python API in a module file that the name list does not have."""
    problems = (_attribute_problems(tree, api) + _import_problems(tree, api) + _star_import_problems(tree, api)
                + _member_problems(tree, api))
    problems.sort(key=lambda problem: int(problem.split(":")[0]))
    return [f"{module_name}:{problem}" for problem in problems]


if __name__ == "__main__":
    json.dump(extract_slicer_api_names(sys.argv[1], sys.argv[2]), sys.stdout, indent=1)
    sys.stdout.write("\n")
