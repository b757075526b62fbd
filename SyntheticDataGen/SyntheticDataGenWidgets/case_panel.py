"""What the module shows about the case and the geometry: the CT line, the structures table and
the geometry's key numbers."""

import qt

from slicer.i18n import tr as _


class CasePanel:
    """``ui.caseStatusLabel``, ``ui.structuresTableWidget`` and ``ui.geometryLabel``."""

    def __init__(self, ui) -> None:
        self.ui = ui
        table = self.ui.structuresTableWidget
        table.setColumnCount(3)
        table.setHorizontalHeaderLabels([_("Structure"), _("Voxels"), _("Volume (ml)")])

    def showCaseInfo(self, info: dict) -> None:
        """``cases.case_info.describe_case``'s "ct" in the status line, its "structures" in the table."""
        ct = info["ct"]
        low, high = ct["hu_range"]
        self.ui.caseStatusLabel.text = _(
            "CT: {size} voxels, spacing {spacing} mm, HU {low:.0f} to {high:.0f}; {count} structures.").format(
                size="\u00d7".join(str(int(n)) for n in ct["size"]),
                spacing="\u00d7".join(f"{s:.2f}" for s in ct["spacing_mm"]), low=low, high=high,
                count=len(info["structures"]))
        table = self.ui.structuresTableWidget
        table.setSortingEnabled(False)
        table.setRowCount(len(info["structures"]))
        for row, (name, structure) in enumerate(info["structures"].items()):
            cells = [name, str(int(structure["voxels"])), f"{structure['volume_ml']:.2f}"]
            for column, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                if column > 0:
                    item.setTextAlignment(qt.Qt.AlignRight | qt.Qt.AlignVCenter)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()

    def showGeometry(self, geometry) -> None:
        """The source position (RAS mm), the source-to-detector distance and the detector."""
        source = ", ".join(f"{x:.1f}" for x in geometry.source_ras_mm)
        self.ui.geometryLabel.text = _(
            "Source (RAS): ({source}) mm\n"
            "Source-to-detector distance (SID): {sid:.1f} mm\n"
            "Detector: {width}\u00d7{height} px at {su:.3f}\u00d7{sv:.3f} mm").format(
                source=source, sid=float(geometry.source_to_detector_mm), width=geometry.width,
                height=geometry.height, su=geometry.pixel_spacing_mm[0], sv=geometry.pixel_spacing_mm[1])

    def clear(self) -> None:
        self.ui.structuresTableWidget.setRowCount(0)
        self.ui.caseStatusLabel.text = ""
        self.ui.geometryLabel.text = ""
