"""The Slicer module files match what they bind to, checked without Slicer's GUI.

For each module file and the files of its ``<Module>Widgets`` package (its GUI's parts): the
``self.ui`` widgets they use exist in the module's .ui with the attributes and signals used;
every ``SlicerParameterName`` in the .ui names a parameter node field that Slicer's GUI
connectors can bind to that widget; the Slicer, MRML and VTK names they use exist (Slicer's
Python API from the stored name list, MRML and VTK from slicer-core); what they call on the
module's own classes (``self.logic.X``) exists; and the module file imports nothing heavy when
Slicer loads it. Each check is also shown failing on a small broken module.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from module_checks import (load_time_imports, member_calls, module_bindings, mrml_calls, parameter_connectors,
                           slicer_api)

REPO = Path(__file__).resolve().parents[1]
MODULE_FILES = [REPO / "SingleImageRecon" / "SingleImageRecon.py", REPO / "SyntheticDataGen" / "SyntheticDataGen.py"]
#: (module file, one of its GUI files): the module file itself and its Widgets package's files.
GUI_FILES = [(module, path) for module in MODULE_FILES for path in [module, *member_calls.widget_files(module)]]
API = slicer_api.load_api_names()


@pytest.fixture(scope="module")
def mrml_library() -> mrml_calls.MrmlLibrary:
    """slicer-core's MRML classes and the VTK it pins."""
    slicer = pytest.importorskip("slicer")
    vtk = pytest.importorskip("vtk")
    return mrml_calls.MrmlLibrary(slicer, vtk, API["application"])


def _form(module_path: Path) -> module_bindings.UiForm:
    paths = module_bindings.ui_paths(module_bindings.parse_module(module_path), module_path)
    assert len(paths) == 1 and paths[0].is_file(), f"{module_path.name} loads {paths}"
    return module_bindings.read_ui(paths[0])


def ui_problems(module_path: Path, path: Path | None = None) -> list[str]:
    """Check 1: widgets, attributes and signals that the module file (or its GUI file ``path``)
    uses against the module's .ui."""
    path = path or module_path
    form = _form(module_path)
    uses = module_bindings.widget_uses(module_bindings.parse_module(path))
    return module_bindings.use_problems(path.name, uses, form) + module_bindings.form_problems(form)


def binding_problems(module_path: Path) -> list[str]:
    """Check 2: the .ui's SlicerParameterName bindings against the parameter node class."""
    fields = parameter_connectors.wrapper_fields(module_bindings.parse_module(module_path))
    return parameter_connectors.binding_problems(_form(module_path), fields)


def api_problems(module_path: Path, path: Path | None = None) -> list[str]:
    """Check 3a: Slicer's Python API names in a GUI file against the stored list."""
    path = path or module_path
    return slicer_api.api_problems(path.name, module_bindings.parse_module(path), API)


def mrml_problems(module_path: Path, library: mrml_calls.MrmlLibrary, path: Path | None = None) -> list[str]:
    """Check 3b: MRML/VTK classes and the methods called on them in a GUI file, against slicer-core
    and VTK; for the module file, the .ui's nodeTypes and the parameter node's classes too."""
    tree = module_bindings.parse_module(path or module_path)
    fields = {name: field.node_classes for name, field in parameter_connectors.wrapper_fields(tree).items()
              if field.kind == "node"}
    problems = mrml_calls.mrml_problems((path or module_path).name, tree, library, fields)
    if path not in (None, module_path):
        return problems
    ui_classes = {name for lists in _form(module_path).string_lists.values() for name in lists.get("nodeTypes", ())}
    field_classes = {name for classes in fields.values() for name in classes}
    return problems + [f"no MRML class {name} in slicer-core" for name in sorted(ui_classes | field_classes)
                       if library.find(name) is None]


def import_problems(module_path: Path) -> list[str]:
    """Check 4: what loading the module file imports."""
    return load_time_imports.heavy_import_problems(module_path, module_path.parents[1])


def member_problems(module_path: Path, others: tuple[Path, ...] = ()) -> list[str]:
    """Check 5: ``self.logic.X`` and the like in the module's GUI files against its own classes
    (``others``: more GUI files whose classes they may hold, as SingleImageRecon's hold
    SyntheticDataGenWidgets')."""
    paths = {path for module in (module_path, *others) for path in [module, *member_calls.widget_files(module)]}
    trees = {path: module_bindings.parse_module(path) for path in paths}
    return member_calls.member_call_problems(module_path, trees, API)


# ---------------------------------------------------------------------- the real module files

@pytest.mark.parametrize("module_path, path", GUI_FILES, ids=lambda path: path.stem)
def test_ui_widgets_exist_with_the_attributes_and_signals_used(module_path, path):
    if path == module_path:
        assert module_bindings.widget_uses(module_bindings.parse_module(path))  # the check sees the uses
    assert ui_problems(module_path, path) == []


def test_the_gui_parts_are_checked_too():
    """The Widgets packages exist and their uses of the .ui are seen (so the check above covers them)."""
    for module_path in MODULE_FILES:
        parts = member_calls.widget_files(module_path)
        assert any(module_bindings.widget_uses(module_bindings.parse_module(path)) for path in parts), module_path


@pytest.mark.parametrize("module_path", MODULE_FILES, ids=lambda path: path.stem)
def test_parameter_names_bind_to_fields_of_a_fitting_type(module_path):
    assert parameter_connectors.wrapper_fields(module_bindings.parse_module(module_path))
    assert any(parameter_connectors.PARAMETER_NAME_PROPERTY in dynamic
               for dynamic in _form(module_path).dynamic_properties.values())
    assert binding_problems(module_path) == []


@pytest.mark.parametrize("module_path, path", GUI_FILES, ids=lambda path: path.stem)
def test_slicer_python_api_names_exist(module_path, path):
    assert api_problems(module_path, path) == []


@pytest.mark.parametrize("module_path, path", GUI_FILES, ids=lambda path: path.stem)
def test_mrml_classes_and_methods_exist(module_path, path, mrml_library):
    assert mrml_problems(module_path, mrml_library, path) == []


@pytest.mark.parametrize("module_path", MODULE_FILES, ids=lambda path: path.stem)
def test_calls_into_the_modules_own_classes_exist(module_path):
    assert member_problems(module_path, tuple(MODULE_FILES)) == []


@pytest.mark.parametrize("module_path", MODULE_FILES, ids=lambda path: path.stem)
def test_nothing_heavy_is_imported_when_slicer_loads_the_module(module_path):
    assert import_problems(module_path) == []


def test_api_name_list_comes_from_one_slicer_commit():
    assert re.fullmatch(r"[0-9a-f]{40}", API["commit"]) and API["commit_date"]
    modules = API["modules"]
    assert {"loadUI", "childWidgetVariables", "VTKObservationMixin"} <= set(modules["slicer.util"]["names"])
    assert set(modules["slicer.ScriptedLoadableModule"]["star"]) >= {"ScriptedLoadableModuleWidget",
                                                                    "ScriptedLoadableModuleLogic"}
    assert {"parameterNodeWrapper", "WithinRange", "Choice"} <= set(modules["slicer.parameterNodeWrapper"]["names"])
    assert API["application"]["applicationLogic"] == "vtkSlicerApplicationLogic"


# ---------------------------------------------------------------------- each check fails when it should

FAKE_UI = """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0">
 <class>Fake</class>
 <widget class="qMRMLWidget" name="Fake">
  <layout class="QVBoxLayout" name="layout">
   <item><widget class="QPushButton" name="applyButton"/></item>
   <item>
    <widget class="QCheckBox" name="flagCheckBox">
     <property name="SlicerParameterName" stdset="0"><string>flag</string></property>
    </widget>
   </item>
   <item>
    <widget class="qMRMLNodeComboBox" name="volumeSelector">
     <property name="nodeTypes"><stringlist notr="true"><string>vtkMRMLScalarVolumeNode</string></stringlist></property>
     <property name="SlicerParameterName" stdset="0"><string>volume</string></property>
    </widget>
   </item>
  </layout>
 </widget>
 <connections>
  <connection>
   <sender>Fake</sender><signal>mrmlSceneChanged(vtkMRMLScene*)</signal>
   <receiver>volumeSelector</receiver><slot>setMRMLScene(vtkMRMLScene*)</slot>
  </connection>
 </connections>
</ui>
"""

FAKE_MODULE = '''
import slicer
from slicer.ScriptedLoadableModule import *
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer import vtkMRMLScalarVolumeNode


@parameterNodeWrapper
class FakeParameterNode:
    flag: bool = False
    volume: vtkMRMLScalarVolumeNode


class FakeWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/Fake.ui"))
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = FakeLogic()
        self.ui.applyButton.connect("clicked(bool)", self.onApply)

    def onApply(self):
        button = self.ui.applyButton
        button.enabled = False
        volumeNode = self.ui.volumeSelector.currentNode()
        volumeNode.GetImageData()
        self.logic.process(volumeNode)


class FakeLogic(ScriptedLoadableModuleLogic):
    def process(self, volumeNode):
        return self.getParameterNode()
'''

#: A part of the fake module's GUI in its Widgets package, handed the .ui and the Logic.
FAKE_PART = '''
class ApplyPart:
    def __init__(self, ui, logic):
        self.ui, self.logic = ui, logic

    def apply(self):
        self.ui.applyButton.enabled = False
        self.logic.process(self.ui.volumeSelector.currentNode())
'''


def _fake_module(tmp_path: Path, module: str = FAKE_MODULE, ui: str = FAKE_UI) -> Path:
    """A module folder as Slicer lays it out: Fake/Fake.py and Fake/Resources/UI/Fake.ui."""
    folder = tmp_path / "Fake"
    (folder / "Resources" / "UI").mkdir(parents=True)
    (folder / "Resources" / "UI" / "Fake.ui").write_text(ui)
    (folder / "Fake.py").write_text(module)
    return folder / "Fake.py"


def _broken(source: str, old: str, new: str) -> str:
    assert old in source  # the break must apply, or the case shows nothing
    return source.replace(old, new)


def _fake_part(module_path: Path, part: str = FAKE_PART) -> Path:
    """FakeWidgets/apply_part.py beside the fake module file."""
    (module_path.parent / "FakeWidgets").mkdir()
    (module_path.parent / "FakeWidgets" / "__init__.py").write_text("")
    (module_path.parent / "FakeWidgets" / "apply_part.py").write_text(part)
    return module_path.parent / "FakeWidgets" / "apply_part.py"


def test_the_unbroken_fake_module_passes_every_check(tmp_path, mrml_library):
    path = _fake_module(tmp_path)
    part = _fake_part(path)
    assert ui_problems(path) == binding_problems(path) == api_problems(path) == []
    assert mrml_problems(path, mrml_library) == import_problems(path) == member_problems(path) == []
    assert ui_problems(path, part) == api_problems(path, part) == []


def test_a_broken_gui_part_fails_its_checks(tmp_path):
    path = _fake_module(tmp_path)
    _fake_part(path, _broken(_broken(FAKE_PART, "self.logic.process(", "self.logic.proces("),
                             "self.ui.applyButton.enabled", "self.ui.applyButton.enable"))
    part = member_calls.widget_files(path)[-1]
    assert member_problems(path) == ["apply_part.py:8: self.logic.proces: FakeLogic and its bases have no 'proces'"]
    assert ui_problems(path, part) == [
        "apply_part.py:7: self.ui.applyButton.enable: QPushButton has no attribute 'enable'"]


BROKEN_MODULES = {  # case: (check, text in FAKE_MODULE, replaced by, expected in a problem)
    "missing widget": (ui_problems, "self.ui.applyButton.connect", "self.ui.aplyButton.connect",
                       "has no widget named 'aplyButton'"),
    "wrong attribute through an alias": (ui_problems, "button.enabled", "button.enabledd",
                                         "QPushButton has no attribute 'enabledd'"),
    "wrong signal": (ui_problems, '"clicked(bool)"', '"clicked(int)"', "QPushButton has no such signal"),
    "type mismatch": (binding_problems, "flag: bool = False", "flag: float = 0.0",
                      "no GUI connector binds a QCheckBox to a field of type float"),
    "unknown slicer.util function": (api_problems, "slicer.util.loadUI", "slicer.util.loadUi",
                                     "slicer.util has no 'loadUi'"),
    "unknown ScriptedLoadableModuleWidget method": (api_problems, "self.resourcePath", "self.resourcesPath",
                                                    "FakeWidget and its bases have no 'resourcesPath'"),
    "missing Logic method": (member_problems, "self.logic.process(volumeNode)", "self.logic.run(volumeNode)",
                             "self.logic.run: FakeLogic and its bases have no 'run'"),
    "top-level import torch": (import_problems, "import slicer\n", "import slicer\nimport torch\n",
                               "Fake.py:3 imports torch"),
}


@pytest.mark.parametrize("check, old, new, expected", BROKEN_MODULES.values(), ids=BROKEN_MODULES.keys())
def test_a_broken_module_fails_its_check(tmp_path, check, old, new, expected):
    problems = check(_fake_module(tmp_path, module=_broken(FAKE_MODULE, old, new)))
    assert any(expected in problem for problem in problems), problems


def test_an_unknown_mrml_method_fails(tmp_path, mrml_library):
    module = _broken(FAKE_MODULE, "volumeNode.GetImageData()", "volumeNode.GetImageDatum()")
    problems = mrml_problems(_fake_module(tmp_path, module=module), mrml_library)
    assert any("vtkMRMLScalarVolumeNode has no 'GetImageDatum'" in problem for problem in problems), problems


BROKEN_UIS = {  # case: (check, text in FAKE_UI, replaced by, expected in a problem)
    "SlicerParameterName with no field": (binding_problems, "<string>flag</string>", "<string>flagg</string>",
                                          "the parameter node class has no field 'flagg'"),
    "widget class that fits no field type": (binding_problems, 'class="QCheckBox"', 'class="ctkSliderWidget"',
                                             "no GUI connector binds a ctkSliderWidget to a field of type bool"),
    "nodeTypes the binding replaces": (binding_problems, "<string>vtkMRMLScalarVolumeNode</string>",
                                       "<string>vtkMRMLModelNode</string>", "nodeTypes ['vtkMRMLModelNode']"),
    "property the class lacks": (ui_problems, '<widget class="QPushButton" name="applyButton"/>',
                                 '<widget class="QPushButton" name="applyButton"><property name="value">'
                                 '<number>1</number></property></widget>', "QPushButton has no property 'value'"),
    "connection to a missing slot": (ui_problems, "<slot>setMRMLScene(vtkMRMLScene*)</slot>",
                                     "<slot>setScene(vtkMRMLScene*)</slot>", "qMRMLNodeComboBox has no slot setScene"),
}


@pytest.mark.parametrize("check, old, new, expected", BROKEN_UIS.values(), ids=BROKEN_UIS.keys())
def test_a_broken_ui_fails_its_check(tmp_path, check, old, new, expected):
    problems = check(_fake_module(tmp_path, ui=_broken(FAKE_UI, old, new)))
    assert any(expected in problem for problem in problems), problems


def test_a_slider_needs_a_bounded_field(tmp_path):
    ui = _broken(FAKE_UI, 'class="QCheckBox"', 'class="ctkSliderWidget"')
    cases = (("float = 0.0", False), ("Annotated[float, WithinRange(0, 1)] = 0.0", True))
    for index, (annotation, bounded) in enumerate(cases):
        module = _broken(FAKE_MODULE, "flag: bool = False", f"flag: {annotation}")
        problems = binding_problems(_fake_module(tmp_path / str(index), module=module, ui=ui))
        assert (problems == []) == bounded, problems


def test_a_heavy_import_through_the_modules_own_library_fails(tmp_path):
    module = _broken(FAKE_MODULE, "import slicer\n", "import slicer\nfrom FakeLib import light\n")
    path = _fake_module(tmp_path, module=module)
    (path.parent / "FakeLib").mkdir()
    (path.parent / "FakeLib" / "__init__.py").write_text('"""The fake module\'s library."""\n')
    (path.parent / "FakeLib" / "light.py").write_text("import numpy\nfrom . import heavy\n")
    (path.parent / "FakeLib" / "heavy.py").write_text("import monai\n")
    assert import_problems(path) == ["Fake.py:3 imports FakeLib.light, light.py:2 imports FakeLib.heavy, "
                                     "heavy.py:1 imports monai"]


def test_the_modules_choices_are_the_libs():
    """Choice lists are literals in the module files (Slicer reads them when the class is defined);
    they must name what the Lib accepts."""
    from SingleImageReconLib.reconstruction_run import METHODS
    from SyntheticDataGenLib.augmentation.ladder import PRESETS as AUGMENTATION_PRESETS
    from SyntheticDataGenLib.projection.geometry import PRESETS

    recon, datagen = (parameter_connectors.wrapper_fields(module_bindings.parse_module(path)) for path in MODULE_FILES)
    assert list(recon["method"].choices) == list(METHODS)
    assert list(recon["geometryPreset"].choices) == list(PRESETS) == list(datagen["preset"].choices)
    assert list(datagen["augmentationPreset"].choices) == list(AUGMENTATION_PRESETS)
    assert set(recon["geometrySource"].choices) == {"radiograph", "file", "dicom", "preset"}
