"""Which .ui widgets Slicer's parameterNodeWrapper can bind to which parameter fields.

``connectGui`` binds every widget whose dynamic property ``SlicerParameterName`` names a field
of the ``@parameterNodeWrapper`` class, through the first GUI connector whose ``canRepresent``
accepts the widget's exact class and the field's type; when none does, or the connector's
``create`` refuses the field (an unbounded slider, a combo box without ``Choice``), the module
fails when it opens. ``CONNECTORS`` restates those rules from
Base/Python/slicer/parameterNodeWrapper/guiConnectors.py of Slicer
583e9b37d50ead7daf7b783dce465ccaecec8809 (2026-08-21). Fields are read from the module's
annotations with ``ast``; their kinds are the ``unannotatedType`` the connectors test.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from .syntax_names import last_name

PARAMETER_NAME_PROPERTY = "SlicerParameterName"

_PATH_TYPES = {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"}
_ENUM_BASES = {"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"}


@dataclass(frozen=True)
class Field:
    """A parameter of the wrapper class.

    ``kind`` is "bool", "int", "float", "str", "path", "node", "enum", "FloatRange", "QColor",
    or the annotation's source text for a type no connector takes (``Literal[...]``, a list).
    ``validators`` are the names of its ``Annotated`` extras (WithinRange, Choice, ...),
    ``node_classes`` the MRML classes of a node field, ``choices`` the values of ``Choice(...)``
    when they are literals or a module-level literal list.
    """

    name: str
    kind: str
    validators: frozenset[str]
    node_classes: tuple[str, ...] = ()
    choices: tuple | None = None


@dataclass(frozen=True)
class Connector:
    """One GUI connector of guiConnectors.py: widget classes, field kinds, and what ``create`` needs."""

    name: str
    widget_classes: frozenset[str]
    kinds: frozenset[str]
    needs_bounds: bool = False
    needs_validator: str | None = None


def _connector(name, widgets, kinds, **needs) -> Connector:
    return Connector(name, frozenset(widgets.split()), frozenset(kinds.split()), **needs)


CONNECTORS = (
    _connector("QCheckBoxToBoolConnector", "QCheckBox ctkCheckBox", "bool"),
    _connector("QCheckablePushButtonToBoolConnector", "QPushButton", "bool"),
    _connector("ctkCheckablePushButtonToBoolConnector", "ctkCheckablePushButton", "bool"),
    _connector("QSliderOrSpinBoxToIntConnector", "QSpinBox", "int"),
    _connector("QSliderOrSpinBoxToIntConnector", "QSlider", "int", needs_bounds=True),
    _connector("QDoubleSpinBoxCtkSliderWidgetToFloatIntConnector",
               "QDoubleSpinBox ctkDoubleSlider ctkDoubleSpinBox qMRMLSpinBox", "float int"),
    _connector("QDoubleSpinBoxCtkSliderWidgetToFloatIntConnector",
               "ctkSliderWidget qMRMLSliderWidget", "float int", needs_bounds=True),
    _connector("QComboBoxToStringableConnector", "QComboBox ctkComboBox", "int float str bool",
               needs_validator="Choice"),
    _connector("QComboBoxToEnumConnector", "QComboBox ctkComboBox", "enum"),
    _connector("QLineEditToStrConnector", "QLineEdit", "str"),
    _connector("QLabelToStrConnector", "QLabel", "str"),
    _connector("QTextEditPlainTextToStrConnector", "QTextEdit", "str"),
    _connector("ctkRangeWidgetToRangeConnector", "ctkRangeWidget ctkDoubleRangeSlider qMRMLRangeWidget",
               "FloatRange", needs_validator="RangeBounds"),
    _connector("ctkPathLineEditToPathConnector", "ctkPathLineEdit", "path"),
    _connector("ctkDirectoryButtonToPathConnector", "ctkDirectoryButton", "path"),
    _connector("qMRMLNodeComboBoxToNodeConnector", "qMRMLNodeComboBox", "node"),
    _connector("ctkColorPickerButtonToQColorConnector", "ctkColorPickerButton", "QColor"),
)


def _module_literals(tree: ast.Module) -> dict[str, object]:
    """Module-level ``NAME = <literal>`` assignments (for ``Choice(NAMES)``)."""
    literals = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                literals[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return literals


def _enum_classes(tree: ast.Module) -> set[str]:
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            and any(last_name(base) in _ENUM_BASES for base in node.bases)}


def _union_members(annotation) -> list | None:
    """The members of ``Optional[T]``, ``Union[A, B]`` or ``A | B``; None if it is no union."""
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return (_union_members(annotation.left) or [annotation.left]) + [annotation.right]
    if isinstance(annotation, ast.Subscript) and last_name(annotation.value) in ("Optional", "Union"):
        members = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        return list(members) + ([ast.Constant(None)] if last_name(annotation.value) == "Optional" else [])
    return None


def _kind(annotation, enums: set[str]) -> tuple[str, tuple[str, ...]]:
    """(kind, node classes) of an unannotated type."""
    name = last_name(annotation)
    if name in ("bool", "int", "float", "str", "FloatRange", "QColor"):
        return name, ()
    if name in _PATH_TYPES:
        return "path", ()
    if name.startswith("vtkMRML") and name.endswith("Node"):
        return "node", (name,)
    if name in enums:
        return "enum", ()
    members = _union_members(annotation)
    if members is not None:
        nodes = [m for m in members if not (isinstance(m, ast.Constant) and m.value is None)]
        kinds = [_kind(m, enums) for m in nodes]
        if nodes and all(kind == "node" for kind, _ in kinds):
            return "node", tuple(cls for _, classes in kinds for cls in classes)
    return ast.unparse(annotation), ()


def _choices(extras: list, literals: dict) -> tuple | None:
    for extra in extras:
        if isinstance(extra, ast.Call) and last_name(extra.func) == "Choice" and extra.args:
            argument = extra.args[0]
            if isinstance(argument, ast.Name) and argument.id in literals:
                return tuple(literals[argument.id])
            try:
                return tuple(ast.literal_eval(argument))
            except ValueError:
                return None
    return None


def _field(name: str, annotation, enums: set[str], literals: dict) -> Field:
    extras = []
    if isinstance(annotation, ast.Subscript) and last_name(annotation.value) == "Annotated":
        annotation, *extras = annotation.slice.elts
    kind, classes = _kind(annotation, enums)
    validators = frozenset(last_name(extra.func) for extra in extras if isinstance(extra, ast.Call))
    return Field(name, kind, validators, classes, _choices(extras, literals))


def _is_wrapper(decorator) -> bool:
    return last_name(decorator.func if isinstance(decorator, ast.Call) else decorator) == "parameterNodeWrapper"


def wrapper_fields(tree: ast.Module) -> dict[str, Field]:
    """The fields of the module's ``@parameterNodeWrapper`` classes, by name."""
    enums, literals = _enum_classes(tree), _module_literals(tree)
    return {statement.target.id: _field(statement.target.id, statement.annotation, enums, literals)
            for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and any(map(_is_wrapper, node.decorator_list))
            for statement in node.body
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)}


def _bounded(field: Field) -> bool:
    return "WithinRange" in field.validators or {"Minimum", "Maximum"} <= field.validators


def connector_problem(widget_class: str, field: Field) -> str | None:
    """Why ``connectGui`` cannot bind this widget class to this field; None when it can."""
    connector = next((c for c in CONNECTORS if widget_class in c.widget_classes and field.kind in c.kinds), None)
    if connector is None:
        return f"no GUI connector binds a {widget_class} to a field of type {field.kind}"
    if connector.needs_bounds and not _bounded(field):
        return f"{connector.name} needs a bounded {field.kind} (WithinRange, or Minimum and Maximum)"
    if connector.needs_validator and connector.needs_validator not in field.validators:
        return f"{connector.name} needs the {connector.needs_validator} annotation"
    return None


def _overwritten_settings(where: str, form, widget: str, field: Field) -> list[str]:
    """.ui settings that the connector replaces, when they say something else: a node combo box's
    nodeTypes (set to the field's classes) and a combo box's items (set to the Choice values)."""
    problems = []
    node_types = form.string_lists[widget].get("nodeTypes")
    if field.kind == "node" and node_types is not None and tuple(node_types) != field.node_classes:
        problems.append(f"{where}: nodeTypes {list(node_types)} in the .ui, but the field's type sets "
                        f"{list(field.node_classes)}")
    items = form.items[widget]
    if field.choices is not None and items and items != tuple(str(c) for c in field.choices):
        problems.append(f"{where}: items {list(items)} in the .ui, but Choice gives {list(field.choices)}")
    return problems


def binding_problems(form, fields: dict[str, Field]) -> list[str]:
    """Widgets of a ``module_bindings.UiForm`` whose SlicerParameterName ``connectGui`` cannot bind
    to ``fields``: no such field, two widgets for one field, no connector for the widget and
    field type, or .ui settings that the binding silently replaces."""
    problems, bound = [], {}
    for widget, dynamic in form.dynamic_properties.items():
        name = dynamic.get(PARAMETER_NAME_PROPERTY)
        if name is None:
            continue
        widget_class = form.widgets[widget]
        where = f"{form.path.name}: {widget} ({widget_class}) {PARAMETER_NAME_PROPERTY}={name!r}"
        if name in bound:
            problems.append(f"{where}: {bound[name]} is bound to it too, and only one of them is connected")
        bound[name] = widget
        # "pack.member" names a member of a parameterPack field: only the field is checked here
        field = fields.get(name.split(".")[0])
        if field is None:
            problems.append(f"{where}: the parameter node class has no field {name.split('.')[0]!r}")
        elif "." not in name:
            problem = connector_problem(widget_class, field)
            problems += [f"{where}: {problem}"] if problem else _overwritten_settings(where, form, widget, field)
    return problems
