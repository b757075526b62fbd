"""A module's GUI code calling its own classes: ``self.logic.X``, ``self.preview.X`` must exist.

Python finds a misspelt or removed method only when the button is pressed, and the GUI never
runs here. So, in every class of the module file and of its ``<Module>Widgets`` package, an
attribute that holds an instance of one of those classes (``self.logic = FakeLogic()``, or
``self.logic`` in a ``Widgets`` helper, which is handed the module's Logic) may only be used for
what that class and its bases define. Members come from ``slicer_api``'s class reading (Slicer's
base classes from the stored name list).
"""

from __future__ import annotations

import ast
from pathlib import Path

from . import slicer_api
from .syntax_names import dotted, last_name


def widget_files(module_path: Path) -> list[Path]:
    """The files of the module's GUI helper package ``<Module>Widgets`` (none if it has none)."""
    return sorted((module_path.parent / f"{module_path.stem}Widgets").glob("*.py"))


def _classes(tree: ast.Module) -> list[ast.ClassDef]:
    return [node for node in tree.body if isinstance(node, ast.ClassDef)]


def _held_instances(class_node: ast.ClassDef, class_names: set[str]) -> dict[str, str]:
    """``self.<attr> = SomeClass(...)`` in the class's methods: attr -> SomeClass, for known classes."""
    held = {}
    for node in ast.walk(class_node):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            class_name = last_name(node.value.func)
            for target in node.targets:
                path = dotted(target).split(".")
                if class_name in class_names and len(path) == 2 and path[0] == "self":
                    held[path[1]] = class_name
    return held


def member_call_problems(module_path: Path, gui_trees: dict[Path, ast.Module], api: dict) -> list[str]:
    """``self.<attr>.<member>`` uses, in the GUI files, that the class held in ``self.<attr>`` lacks.

    ``gui_trees``: every GUI file that may define the classes used (module files and ``Widgets``
    packages); the uses are checked in ``module_path`` and its own ``Widgets`` files."""
    combined = ast.Module(body=[statement for tree in gui_trees.values() for statement in tree.body], type_ignores=[])
    members = slicer_api.ClassMembers(combined, api)
    logic = f"{module_path.stem}Logic"
    problems = []
    for path in [module_path, *widget_files(module_path)]:
        for class_node in _classes(gui_trees[path]):
            held = _held_instances(class_node, set(members.local))
            if path != module_path and "logic" in slicer_api.self_attributes(class_node):
                held.setdefault("logic", logic)  # a helper is handed the module's Logic
            for node in ast.walk(class_node):
                if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)):
                    continue
                owner = dotted(node.value).split(".")
                if len(owner) != 2 or owner[0] != "self" or owner[1] not in held:
                    continue
                available = members.members(held[owner[1]])
                if available is not None and node.attr not in available:
                    problems.append(f"{path.name}:{node.lineno}: self.{owner[1]}.{node.attr}: "
                                    f"{held[owner[1]]} and its bases have no {node.attr!r}")
    return problems
