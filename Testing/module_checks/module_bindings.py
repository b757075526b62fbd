"""A Slicer module file and its .ui file, read without Slicer: which widgets the code uses, and how.

The module's GUI code reaches the .ui's widgets as ``self.ui.<name>`` (the namespace
``slicer.util.childWidgetVariables`` makes), through local aliases (``combo = self.ui.box``),
and the top-level widget that ``slicer.util.loadUI`` returns. This file reads both sides (the
module with ``ast``, the .ui with ``xml.etree``) and says where they disagree; the widget
classes' members are in ``widget_members``, the parameter node bindings in
``parameter_connectors``.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from . import widget_members
from .syntax_names import dotted

#: Stands for the .ui's top-level widget (what ``slicer.util.loadUI`` returns).
ROOT = "<top-level widget>"


@dataclass(frozen=True)
class Connection:
    """A signal-slot connection the .ui makes itself (its ``<connections>`` section)."""

    sender: str
    signal: str
    receiver: str
    slot: str


@dataclass(frozen=True)
class UiForm:
    """What a .ui file declares: widget classes, the properties set on them, and connections."""

    path: Path
    root: str
    widgets: dict[str, str]
    properties: dict[str, tuple[str, ...]]
    dynamic_properties: dict[str, dict[str, str]]
    string_lists: dict[str, dict[str, tuple[str, ...]]]
    items: dict[str, tuple[str, ...]]
    connections: tuple[Connection, ...]

    def widget_class(self, name: str) -> str | None:
        """The class of a widget, ``ROOT`` naming the top-level one; None if there is no such widget."""
        return self.widgets.get(self.root if name == ROOT else name)


@dataclass(frozen=True)
class WidgetUse:
    """One use of a .ui widget in a module file: an attribute, or a signal it connects by name."""

    widget: str
    attribute: str
    signal: str | None
    line: int


def _text(element) -> str:
    return "".join(element.itertext()).strip()


def read_ui(path: Path) -> UiForm:
    """Parse a Qt Designer .ui file."""
    ui = ElementTree.parse(path).getroot()
    widgets, properties, dynamic, string_lists, items = {}, {}, {}, {}, {}
    for widget in ui.iter("widget"):
        name = widget.get("name")
        widgets[name] = widget.get("class")
        # stdset="0" marks a dynamic property (SlicerParameterName); the rest are the class's own
        own = [p for p in widget.findall("property") if p.get("stdset") != "0"]
        properties[name] = tuple(p.get("name") for p in own)
        dynamic[name] = {p.get("name"): _text(p) for p in widget.findall("property") if p.get("stdset") == "0"}
        string_lists[name] = {p.get("name"): tuple(_text(s) for s in p.iter("string"))
                              for p in own if p.find("stringlist") is not None}
        items[name] = tuple(_text(item) for item in widget.findall("item"))
    connections = tuple(Connection(*(_text(c.find(tag)) for tag in ("sender", "signal", "receiver", "slot")))
                        for c in ui.iter("connection"))
    return UiForm(path, ui.find("widget").get("name"), widgets, properties, dynamic, string_lists, items,
                  connections)


def parse_module(path: Path) -> ast.Module:
    """The module file's syntax tree (the file is never imported: it needs Slicer)."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def ui_paths(tree: ast.Module, module_path: Path) -> list[Path]:
    """The .ui files the module loads: ``slicer.util.loadUI(self.resourcePath("UI/X.ui"))``,
    resolved as Slicer does, against the module's ``Resources`` folder."""
    return [module_path.parent / "Resources" / node.args[0].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and dotted(node.func).endswith("resourcePath")
            and node.args and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).endswith(".ui")]


def _aliases(function) -> dict[str, str]:
    """Local names that stand for the ui namespace ("ui"), a widget (its name) or the top-level widget."""
    aliases: dict[str, str] = {}
    assignments = sorted((n for n in ast.walk(function) if isinstance(n, ast.Assign)), key=lambda n: n.lineno)
    for assignment in assignments:
        if len(assignment.targets) != 1 or not isinstance(assignment.targets[0], ast.Name):
            continue
        target, value = assignment.targets[0].id, assignment.value
        if dotted(value) == "self.ui":
            aliases[target] = "ui"
        elif isinstance(value, ast.Call) and dotted(value.func) == "slicer.util.loadUI":
            aliases[target] = ROOT
        elif (widget := _widget_of(value, aliases)) is not None:
            aliases[target] = widget
    return aliases


def _is_ui(node, aliases: dict[str, str]) -> bool:
    return dotted(node) == "self.ui" or (isinstance(node, ast.Name) and aliases.get(node.id) == "ui")


def _widget_of(node, aliases: dict[str, str]) -> str | None:
    """The widget an expression is (``self.ui.box``, ``ui.box``, an alias), or None."""
    if isinstance(node, ast.Attribute) and _is_ui(node.value, aliases):
        return node.attr
    if isinstance(node, ast.Name) and aliases.get(node.id) not in (None, "ui"):
        return aliases[node.id]
    return None


def _connected_signal(attribute: ast.Attribute, parents: dict) -> str | None:
    """The signal of ``widget.connect("signal(args)", slot)``, when ``attribute`` is that ``connect``."""
    call = parents.get(attribute)
    if (attribute.attr == "connect" and isinstance(call, ast.Call) and call.func is attribute and call.args
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
        return call.args[0].value
    return None


def widget_uses(tree: ast.Module) -> list[WidgetUse]:
    """Every attribute the module's functions use on a .ui widget, in source order."""
    uses = []
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        aliases = _aliases(function)
        parents = {child: parent for parent in ast.walk(function) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(function):
            if not isinstance(node, ast.Attribute):
                continue
            if _is_ui(node.value, aliases):
                uses.append(WidgetUse(node.attr, "", None, node.lineno))  # the widget itself
            elif (widget := _widget_of(node.value, aliases)) is not None:
                uses.append(WidgetUse(widget, node.attr, _connected_signal(node, parents), node.lineno))
    # nested functions are walked twice (as themselves and inside their parent): keep one of each
    return sorted(set(uses), key=lambda use: (use.line, use.widget, use.attribute))


def _class_problem(where: str, class_name: str) -> str | None:
    if class_name not in widget_members.WIDGET_CLASSES:
        return f"{where}: widget class {class_name} has no entry in widget_members.WIDGET_CLASSES"
    return None


def use_problems(module_name: str, uses: list[WidgetUse], form: UiForm) -> list[str]:
    """Uses that the .ui does not back: a missing widget, an attribute or signal its class lacks."""
    problems = []
    for use in uses:
        where = f"{module_name}:{use.line}"
        shown = "the top-level widget" if use.widget == ROOT else f"self.ui.{use.widget}"
        class_name = form.widget_class(use.widget)
        if class_name is None:
            problems.append(f"{where}: {shown}: {form.path.name} has no widget named {use.widget!r}")
        elif (problem := _class_problem(where, class_name)) is not None:
            problems.append(problem)
        elif use.attribute and use.attribute not in widget_members.attributes(class_name):
            problems.append(f"{where}: {shown}.{use.attribute}: {class_name} has no attribute {use.attribute!r}")
        elif use.signal is not None and (widget_members.normalized_signal(use.signal)
                                         not in widget_members.signals(class_name)):
            problems.append(f"{where}: {shown}.connect({use.signal!r}): {class_name} has no such signal")
    return list(dict.fromkeys(problems))  # a missing widget is reported once a line, not once a use


def form_problems(form: UiForm) -> list[str]:
    """What the .ui itself gets wrong: unknown classes, properties and connection signals or slots."""
    problems = []
    for name, class_name in form.widgets.items():
        where = f"{form.path.name}: {name}"
        if (problem := _class_problem(where, class_name)) is not None:
            problems.append(problem)
            continue
        problems += [f"{where}: {class_name} has no property {prop!r}" for prop in form.properties[name]
                     if prop not in widget_members.attributes(class_name)]
    for connection in form.connections:
        problems += _connection_problems(form, connection)
    return problems


def _connection_problems(form: UiForm, connection: Connection) -> list[str]:
    where = f"{form.path.name}: connection {connection.sender}.{connection.signal} -> " \
            f"{connection.receiver}.{connection.slot}"
    sender, receiver = form.widgets.get(connection.sender), form.widgets.get(connection.receiver)
    if sender not in widget_members.WIDGET_CLASSES or receiver not in widget_members.WIDGET_CLASSES:
        return [f"{where}: no widget of a known class at one end"]
    problems = []
    if widget_members.normalized_signal(connection.signal) not in widget_members.signals(sender):
        problems.append(f"{where}: {sender} has no signal {connection.signal}")
    if connection.slot.split("(")[0] not in widget_members.attributes(receiver):
        problems.append(f"{where}: {receiver} has no slot {connection.slot}")
    return problems
