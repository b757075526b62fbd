"""What a Slicer module file imports when Slicer loads it, followed through this repository's packages.

Slicer imports every module file when it starts, so a module file must load with what Slicer
ships; PyTorch, MONAI and the like are imported inside the functions that need them (they may
not even be installed yet). The imports are read with ``ast``, never run: the statements that
execute on import (the module body, its ``if``/``try``/``with`` blocks and class bodies, not
function bodies nor ``if TYPE_CHECKING:`` blocks), and, for a module of this repository
(``SyntheticDataGenLib.projection.geometry``, the other module file ``SyntheticDataGen``), its own
imports in turn.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

#: What a module file may import at load time besides this repository: Python's standard library
#: and the packages Slicer has loaded itself by then. (SimpleITK ships with Slicer too, but it is
#: slow to import: like PyTorch, it waits for the function that needs it.)
ALLOWED_ROOTS = frozenset(sys.stdlib_module_names) | {"numpy", "vtk", "vtkmodules", "qt", "ctk", "slicer"}


@dataclass(frozen=True)
class Import:
    """A top-level package from outside the repository imported at load time, and the chain of
    imports (``file:line imports module``) from the module file to it."""

    module: str
    chain: tuple[str, ...]


def repository_roots(repo: Path) -> dict[str, Path]:
    """Import names that resolve inside the repository (as on Slicer's path: each module's folder)
    to the folder they are found in: ``SyntheticDataGen``, ``SyntheticDataGenLib`` and
    ``SyntheticDataGenWidgets`` (the packages beside the module file) to SyntheticDataGen/."""
    roots = {}
    for module_file in repo.glob("*/*.py"):
        if module_file.stem == module_file.parent.name:
            roots[module_file.stem] = module_file.parent
            roots.update({package.name: module_file.parent for package in module_file.parent.iterdir()
                          if (package / "__init__.py").is_file()})
    return roots


def source_file(module: str, roots: dict[str, Path]) -> Path | None:
    """The file of a repository module (``a.b`` is ``a/b.py`` or ``a/b/__init__.py``), or None."""
    parts = module.split(".")
    if parts[0] not in roots:
        return None
    base = roots[parts[0]].joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _runs_on_import(statements):
    """The statements that execute when the module is imported."""
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
            yield from _runs_on_import(statement.orelse)
            continue
        yield statement
        for block in ("body", "orelse", "finalbody", "handlers"):
            yield from _runs_on_import(getattr(statement, block, []))


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from [.]*x import ...`` inside ``module``."""
    if node.level == 0:
        return node.module
    package = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(package + ([node.module] if node.module else []))


def imported_modules(path: Path, module: str = "") -> list[tuple[str, int]]:
    """(absolute module, line) of each module a file imports at load time; ``from a import b``
    lists ``a`` and ``a.b`` (``b`` may be a submodule); ``module`` is the file's dotted name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imports = []
    for statement in _runs_on_import(tree.body):
        if isinstance(statement, ast.Import):
            imports += [(alias.name, statement.lineno) for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom):
            base = _absolute(statement, module, path.name == "__init__.py")
            imports.append((base, statement.lineno))
            imports += [(f"{base}.{alias.name}", statement.lineno) for alias in statement.names if alias.name != "*"]
    return imports


def _parents(module: str) -> list[str]:
    """``a``, ``a.b`` for ``a.b.c``: importing a module first imports its packages."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def load_time_imports(path: Path, repo: Path) -> list[Import]:
    """Every top-level package outside the repository that loading the module file imports,
    directly or through the repository's own modules, each with its import chain."""
    roots, found = repository_roots(repo), []
    pending, seen = [(path, path.stem, ())], {path.stem}
    while pending:
        file, module, chain = pending.pop()
        for imported, line in imported_modules(file, module):
            root = imported.split(".")[0]
            if root not in roots:
                found.append(Import(root, chain + (f"{file.name}:{line} imports {root}",)))
                continue
            for name in _parents(imported):
                target = source_file(name, roots)
                if target is not None and name not in seen:
                    seen.add(name)
                    pending.append((target, name, chain + (f"{file.name}:{line} imports {name}",)))
    return found


def heavy_import_problems(path: Path, repo: Path) -> list[str]:
    """Load-time imports of the module file that Slicer does not ship, with how they are reached."""
    return sorted({", ".join(found.chain) for found in load_time_imports(path, repo)
                   if found.module not in ALLOWED_ROOTS})
