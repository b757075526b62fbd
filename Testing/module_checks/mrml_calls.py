"""MRML and VTK classes in the module files, and the methods the code calls on them, checked
against the real libraries: ``slicer`` from the PyPI package slicer-core (Slicer's MRML) and the
``vtk`` it pins.

The class of an expression is followed as far as the code shows it: ``slicer.mrmlScene``, a
constructor (``vtk.vtkMatrix4x4()``), a parameter node field (its annotation), a scene method
given a class name (``AddNewNodeByClass("vtkMRMLModelNode")``), ``slicer.app`` methods such as
``applicationLogic()`` (their return types in Slicer's headers, from the name list), and the
return type of each MRML or VTK method that the wrapped method's docstring states. ``GetDisplayNode()`` gives the display node
that the node's ``CreateDefaultDisplayNodes`` makes, as it does in Slicer. Variables whose
class the code does not show (a function's arguments) are read by the names in
``NODE_VARIABLES``. An attribute the code guards with ``hasattr(x, "Name")`` is not required.
"""

from __future__ import annotations

import ast
import functools
import re
from types import ModuleType

from .syntax_names import dotted

#: The MRML class the modules' variables of these names hold, where the code does not show it.
NODE_VARIABLES = {
    "volumeNode": "vtkMRMLScalarVolumeNode",
    "radiographNode": "vtkMRMLScalarVolumeNode",
    "drrNode": "vtkMRMLScalarVolumeNode",
    "masksNode": "vtkMRMLLabelMapVolumeNode",
    "labelmapNode": "vtkMRMLLabelMapVolumeNode",
    "segmentationNode": "vtkMRMLSegmentationNode",
    "modelNode": "vtkMRMLModelNode",
    "truthNode": "vtkMRMLModelNode",
    "tableNode": "vtkMRMLTableNode",
    "colorNode": "vtkMRMLColorTableNode",
}
#: Scene methods that return a node of the class their string argument (at this index) names.
BY_CLASS_METHODS = {"AddNewNodeByClass": 0, "CreateNodeByClass": 0, "GetFirstNodeByClass": 0,
                    "GetNthNodeByClass": 1}
#: Marks an expression that is the module's parameter node (its fields are typed by annotations).
PARAMETER_NODE = "<parameter node>"


def _string_argument(call: ast.Call, index: int) -> str | None:
    argument = call.args[index] if len(call.args) > index else None
    return argument.value if isinstance(argument, ast.Constant) and isinstance(argument.value, str) else None


class MrmlLibrary:
    """The real classes, with the return types and default display nodes read from them."""

    def __init__(self, slicer: ModuleType, vtk: ModuleType, application: dict[str, str]):
        self.slicer, self.vtk, self.application = slicer, vtk, application

    def find(self, name: str):
        """The class of that name in slicer-core or VTK, or None."""
        return getattr(self.slicer, name, None) or getattr(self.vtk, name, None)

    @functools.lru_cache(maxsize=None)
    def returned(self, class_name: str, method: str) -> str | None:
        """The VTK/MRML class a method returns, when its docstring names exactly one."""
        wrapped = getattr(self.find(class_name), method, None)
        doc = (wrapped.__doc__ or "") if wrapped is not None else ""
        types = set(re.findall(rf"^{method}\(.*?\)\s*->\s*(\w+)", doc, re.MULTILINE | re.DOTALL))
        types = {t for t in types if t.startswith("vtk") and self.find(t) is not None}
        return types.pop() if len(types) == 1 else None

    @functools.lru_cache(maxsize=None)
    def display_class(self, class_name: str) -> str | None:
        """The class of the display node ``CreateDefaultDisplayNodes`` gives a node of this class."""
        scene = self.slicer.vtkMRMLScene()
        node = scene.AddNewNodeByClass(class_name)
        if node is None or not hasattr(node, "CreateDefaultDisplayNodes"):
            return None
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        return display.GetClassName() if display is not None else None


class _Scope:
    """The classes of one function's expressions."""

    def __init__(self, library: MrmlLibrary, fields: dict[str, tuple[str, ...]], function):
        self.library, self.fields, self.variables = library, fields, {}
        for assignment in sorted((n for n in ast.walk(function) if isinstance(n, ast.Assign)), key=lambda n: n.lineno):
            if len(assignment.targets) == 1 and isinstance(assignment.targets[0], ast.Name):
                found = self.class_of(assignment.value)
                if found is not None:
                    self.variables[assignment.targets[0].id] = found

    def class_of(self, node) -> str | None:
        """The class name of an expression's value (or ``PARAMETER_NODE``), None when unknown."""
        if isinstance(node, ast.Name):
            return self.variables.get(node.id, NODE_VARIABLES.get(node.id))
        if isinstance(node, ast.IfExp):
            return self.class_of(node.body) if _is_none(node.orelse) else None
        if isinstance(node, ast.Attribute):
            return self._attribute_class(node)
        if isinstance(node, ast.Call):
            return self._call_class(node)
        return None

    def _attribute_class(self, node: ast.Attribute) -> str | None:
        if dotted(node) == "slicer.mrmlScene":
            return "vtkMRMLScene"
        if dotted(node) == "self._parameterNode":
            return PARAMETER_NODE
        if self.class_of(node.value) == PARAMETER_NODE and len(self.fields.get(node.attr, ())) == 1:
            return self.fields[node.attr][0]
        return None

    def _call_class(self, call: ast.Call) -> str | None:
        path = dotted(call.func)
        module, _, name = path.partition(".")
        if module in ("slicer", "vtk") and name.startswith("vtk") and "." not in name:
            return name  # a constructor
        if path.startswith("slicer.app."):
            returned = self.library.application.get(path.split(".")[2], "")
            return returned if self.library.find(returned) is not None else None  # (a Qt class: unchecked)
        if not isinstance(call.func, ast.Attribute):
            return None
        if call.func.attr == "getParameterNode":
            return PARAMETER_NODE
        receiver, method = self.class_of(call.func.value), call.func.attr
        if receiver is None or receiver == PARAMETER_NODE or self.library.find(receiver) is None:
            return None
        if method in BY_CLASS_METHODS and (named := _string_argument(call, BY_CLASS_METHODS[method])):
            return named
        if method == "GetDisplayNode" and (display := self.library.display_class(receiver)):
            return display
        return self.library.returned(receiver, method)


def _is_none(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _hasattr_guards(function) -> set[tuple[str, str]]:
    """(variable, attribute) pairs the function tests with ``hasattr(variable, "attribute")``."""
    return {(call.args[0].id, call.args[1].value) for call in ast.walk(function)
            if isinstance(call, ast.Call) and dotted(call.func) == "hasattr" and len(call.args) == 2
            and isinstance(call.args[0], ast.Name) and isinstance(call.args[1], ast.Constant)}


def _typed_call_problems(library: MrmlLibrary, fields: dict, function) -> list[str]:
    """Attributes used on expressions of a known MRML/VTK class that the class does not have."""
    scope, guards, problems = _Scope(library, fields, function), _hasattr_guards(function), []
    for node in ast.walk(function):
        if not isinstance(node, ast.Attribute):
            continue
        class_name = scope.class_of(node.value)
        if class_name in (None, PARAMETER_NODE) or (getattr(node.value, "id", None), node.attr) in guards:
            continue
        found = library.find(class_name)
        if found is None:
            problems.append(f"{node.lineno}: {ast.unparse(node.value)}: no class {class_name} in slicer-core or vtk")
        elif not hasattr(found, node.attr):
            problems.append(f"{node.lineno}: {ast.unparse(node)}: {class_name} has no {node.attr!r}")
    return problems


def _class_reference_problems(library: MrmlLibrary, tree: ast.Module) -> list[str]:
    """``slicer.vtkX``, ``vtk.vtkX``, their attributes, and ``from slicer import vtkX``."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "slicer":
            problems += [f"{node.lineno}: from slicer import {alias.name}: slicer-core has no such class"
                         for alias in node.names if alias.name.startswith("vtk") and library.find(alias.name) is None]
        parts = dotted(node).split(".") if isinstance(node, ast.Attribute) else []
        if len(parts) < 2 or parts[0] not in ("slicer", "vtk") or not parts[1].startswith("vtk"):
            continue
        module = library.slicer if parts[0] == "slicer" else library.vtk
        found = getattr(module, parts[1], None)
        if found is None:
            problems.append(f"{node.lineno}: {dotted(node)}: {parts[0]} has no class {parts[1]}")
        elif len(parts) == 3 and not hasattr(found, parts[2]):
            problems.append(f"{node.lineno}: {dotted(node)}: {parts[1]} has no {parts[2]!r}")
    return problems


def _class_name_string_problems(library: MrmlLibrary, tree: ast.Module) -> list[str]:
    """Class names given as strings: ``...ByClass("vtkMRMLX")`` and ``IsA("vtkMRMLX")``."""
    problems = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and (call.func.attr.endswith("ByClass") or call.func.attr == "IsA")):
            continue
        for argument in call.args:
            if (isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                    and argument.value.startswith("vtk") and library.find(argument.value) is None):
                problems.append(f"{call.lineno}: {call.func.attr}({argument.value!r}): no such class in slicer-core")
    return problems


def mrml_problems(module_name: str, tree: ast.Module, library: MrmlLibrary,
                  fields: dict[str, tuple[str, ...]]) -> list[str]:
    """Every MRML/VTK class or method the module file uses that the real libraries lack.

    ``fields``: the parameter node's node fields, {name: MRML classes}.
    """
    problems = _class_reference_problems(library, tree) + _class_name_string_problems(library, tree)
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        problems += _typed_call_problems(library, fields, function)
    unique = sorted(set(problems), key=lambda problem: int(problem.split(":")[0]))
    return [f"{module_name}:{problem}" for problem in unique]
