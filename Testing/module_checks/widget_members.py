"""What Python code may use on each widget class that the modules' .ui files hold.

In Slicer, widgets are reached through PythonQt. Qt's own classes are wrapped whole: every
public method, property and signal is an attribute. CTK and qMRML classes are not: only their
Q_PROPERTYs, public slots, Q_INVOKABLE methods and signals are, plus what they inherit from Qt.
So the CTK and qMRML entries below list exactly those, read from the headers
(CTK 868d56c72d2899f0f5595745c7c39765fed80eef: Libs/Widgets/ctk*.h; Slicer
583e9b37d50ead7daf7b783dce465ccaecec8809: Libs/MRML/Widgets/qMRML*.h); the Qt entries come from
the Qt 5 class reference. Only the classes the .ui files use (and their bases) are listed: a
class missing here fails the check, so that a new widget class gets its entry.

Signals are written as Qt normalises them (``clicked(bool)``, no spaces), the form that
``widget.connect("clicked(bool)", slot)`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WidgetClass:
    """One class: its base class (None for QObject), attributes and signals it adds."""

    base: str | None
    members: frozenset[str]
    signals: frozenset[str] = frozenset()


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


WIDGET_CLASSES: dict[str, WidgetClass] = {
    # --- Qt
    "QObject": WidgetClass(None, _names("""
        objectName setObjectName blockSignals signalsBlocked connect disconnect parent setParent
        children findChild findChildren property setProperty dynamicPropertyNames deleteLater
        inherits installEventFilter removeEventFilter metaObject className"""),
        _names("destroyed() destroyed(QObject*) objectNameChanged(QString)")),
    "QWidget": WidgetClass("QObject", _names("""
        enabled setEnabled setDisabled isEnabled visible setVisible isVisible hidden setHidden show
        hide toolTip setToolTip statusTip setStatusTip whatsThis setWhatsThis geometry setGeometry
        size resize width height minimumSize setMinimumSize maximumSize setMaximumSize minimumWidth
        setMinimumWidth minimumHeight setMinimumHeight maximumWidth setMaximumWidth maximumHeight
        setMaximumHeight sizePolicy setSizePolicy sizeHint minimumSizeHint font setFont cursor
        setCursor unsetCursor focusPolicy setFocusPolicy setFocus hasFocus clearFocus styleSheet
        setStyleSheet windowTitle setWindowTitle layout setLayout update repaint adjustSize
        contextMenuPolicy setContextMenuPolicy isWidgetType"""),
        _names("customContextMenuRequested(QPoint) windowTitleChanged(QString)")),
    "QFrame": WidgetClass("QWidget", _names("""
        frameShape setFrameShape frameShadow setFrameShadow lineWidth setLineWidth midLineWidth
        setMidLineWidth frameWidth frameRect""")),
    "QAbstractButton": WidgetClass("QWidget", _names("""
        text setText icon setIcon iconSize setIconSize checkable setCheckable checked setChecked
        isChecked autoRepeat setAutoRepeat autoExclusive setAutoExclusive down setDown shortcut
        setShortcut click animateClick toggle"""),
        _names("clicked() clicked(bool) pressed() released() toggled(bool)")),
    "QPushButton": WidgetClass("QAbstractButton", _names("""
        autoDefault setAutoDefault default setDefault flat setFlat menu setMenu showMenu""")),
    "QCheckBox": WidgetClass("QAbstractButton", _names("""
        tristate setTristate isTristate checkState setCheckState"""),
        _names("stateChanged(int)")),
    "QLabel": WidgetClass("QFrame", _names("""
        text setText clear setNum pixmap setPixmap alignment setAlignment wordWrap setWordWrap
        textFormat setTextFormat textInteractionFlags setTextInteractionFlags openExternalLinks
        setOpenExternalLinks indent setIndent margin setMargin scaledContents setScaledContents
        buddy setBuddy selectedText hasSelectedText"""),
        _names("linkActivated(QString) linkHovered(QString)")),
    "QComboBox": WidgetClass("QWidget", _names("""
        count currentIndex setCurrentIndex currentText setCurrentText currentData editable
        setEditable maxVisibleItems setMaxVisibleItems maxCount setMaxCount insertPolicy
        setInsertPolicy sizeAdjustPolicy setSizeAdjustPolicy duplicatesEnabled setDuplicatesEnabled
        frame setFrame modelColumn setModelColumn placeholderText setPlaceholderText addItem addItems
        insertItem insertItems insertSeparator removeItem clear clearEditText setEditText findText
        findData itemText setItemText itemData setItemData itemIcon setItemIcon model setModel view
        setView lineEdit setLineEdit showPopup hidePopup"""),
        _names("""
        activated(int) activated(QString) currentIndexChanged(int) currentIndexChanged(QString)
        currentTextChanged(QString) editTextChanged(QString) highlighted(int) highlighted(QString)""")),
    "QAbstractSpinBox": WidgetClass("QWidget", _names("""
        text readOnly setReadOnly isReadOnly buttonSymbols setButtonSymbols specialValueText
        setSpecialValueText wrapping setWrapping frame setFrame alignment setAlignment
        keyboardTracking setKeyboardTracking accelerated setAccelerated correctionMode
        setCorrectionMode hasAcceptableInput selectAll stepUp stepDown stepBy clear"""),
        _names("editingFinished()")),
    "QSpinBox": WidgetClass("QAbstractSpinBox", _names("""
        value setValue minimum setMinimum maximum setMaximum setRange singleStep setSingleStep
        prefix setPrefix suffix setSuffix cleanText displayIntegerBase setDisplayIntegerBase
        stepType setStepType"""),
        _names("valueChanged(int) valueChanged(QString) textChanged(QString)")),
    "QDoubleSpinBox": WidgetClass("QAbstractSpinBox", _names("""
        value setValue minimum setMinimum maximum setMaximum setRange singleStep setSingleStep
        decimals setDecimals prefix setPrefix suffix setSuffix cleanText stepType setStepType
        textFromValue valueFromText"""),
        _names("valueChanged(double) valueChanged(QString) textChanged(QString)")),
    "QProgressBar": WidgetClass("QWidget", _names("""
        value setValue minimum setMinimum maximum setMaximum setRange reset text textVisible
        setTextVisible format setFormat resetFormat orientation setOrientation alignment
        setAlignment invertedAppearance setInvertedAppearance textDirection setTextDirection"""),
        _names("valueChanged(int)")),
    "QAbstractScrollArea": WidgetClass("QFrame", _names("""
        horizontalScrollBarPolicy setHorizontalScrollBarPolicy verticalScrollBarPolicy
        setVerticalScrollBarPolicy horizontalScrollBar verticalScrollBar viewport
        sizeAdjustPolicy setSizeAdjustPolicy""")),
    "QPlainTextEdit": WidgetClass("QAbstractScrollArea", _names("""
        plainText setPlainText toPlainText appendPlainText appendHtml insertPlainText clear
        readOnly setReadOnly isReadOnly placeholderText setPlaceholderText lineWrapMode
        setLineWrapMode maximumBlockCount setMaximumBlockCount blockCount undoRedoEnabled
        setUndoRedoEnabled tabChangesFocus setTabChangesFocus overwriteMode setOverwriteMode
        textInteractionFlags setTextInteractionFlags document textCursor setTextCursor moveCursor
        ensureCursorVisible centerCursor find selectAll copy cut paste undo redo"""),
        _names("""
        textChanged() blockCountChanged(int) modificationChanged(bool) selectionChanged()
        cursorPositionChanged() copyAvailable(bool) undoAvailable(bool) redoAvailable(bool)""")),
    "QAbstractItemView": WidgetClass("QAbstractScrollArea", _names("""
        model setModel selectionModel setSelectionModel selectionMode setSelectionMode
        selectionBehavior setSelectionBehavior editTriggers setEditTriggers alternatingRowColors
        setAlternatingRowColors iconSize setIconSize textElideMode setTextElideMode autoScroll
        setAutoScroll dragEnabled setDragEnabled currentIndex setCurrentIndex rootIndex
        setRootIndex clearSelection selectAll scrollTo scrollToTop scrollToBottom edit reset
        indexAt"""),
        _names("""
        activated(QModelIndex) clicked(QModelIndex) doubleClicked(QModelIndex) entered(QModelIndex)
        pressed(QModelIndex) iconSizeChanged(QSize) viewportEntered()""")),
    "QListView": WidgetClass("QAbstractItemView", _names("""
        viewMode setViewMode flow setFlow spacing setSpacing wrapping setWrapping uniformItemSizes
        setUniformItemSizes movement setMovement resizeMode setResizeMode layoutMode setLayoutMode
        gridSize setGridSize modelColumn setModelColumn wordWrap setWordWrap batchSize setBatchSize
        isRowHidden setRowHidden clearPropertyFlags""")),
    "QListWidget": WidgetClass("QListView", _names("""
        count currentRow setCurrentRow sortingEnabled setSortingEnabled isSortingEnabled addItem
        addItems insertItem insertItems item itemAt takeItem clear currentItem setCurrentItem row
        findItems selectedItems sortItems itemWidget setItemWidget removeItemWidget scrollToItem
        editItem openPersistentEditor closePersistentEditor"""),
        _names("""
        itemChanged(QListWidgetItem*) itemClicked(QListWidgetItem*) itemDoubleClicked(QListWidgetItem*)
        itemActivated(QListWidgetItem*) itemEntered(QListWidgetItem*) itemPressed(QListWidgetItem*)
        currentItemChanged(QListWidgetItem*,QListWidgetItem*) currentRowChanged(int)
        currentTextChanged(QString) itemSelectionChanged()""")),
    "QTableView": WidgetClass("QAbstractItemView", _names("""
        showGrid setShowGrid gridStyle setGridStyle sortingEnabled setSortingEnabled
        isSortingEnabled wordWrap setWordWrap cornerButtonEnabled setCornerButtonEnabled
        horizontalHeader verticalHeader resizeColumnsToContents resizeRowsToContents
        resizeColumnToContents resizeRowToContents columnWidth setColumnWidth rowHeight
        setRowHeight hideColumn showColumn hideRow showRow isColumnHidden setColumnHidden
        isRowHidden setRowHidden selectRow selectColumn sortByColumn setSpan clearSpans""")),
    "QTableWidget": WidgetClass("QTableView", _names("""
        rowCount setRowCount columnCount setColumnCount item setItem takeItem itemAt
        horizontalHeaderItem setHorizontalHeaderItem verticalHeaderItem setVerticalHeaderItem
        setHorizontalHeaderLabels setVerticalHeaderLabels cellWidget setCellWidget
        removeCellWidget insertRow removeRow insertColumn removeColumn clear clearContents
        currentRow currentColumn currentItem setCurrentItem setCurrentCell selectedItems
        sortItems findItems row column scrollToItem editItem"""),
        _names("""
        cellActivated(int,int) cellChanged(int,int) cellClicked(int,int) cellDoubleClicked(int,int)
        cellEntered(int,int) cellPressed(int,int) currentCellChanged(int,int,int,int)
        itemChanged(QTableWidgetItem*) itemClicked(QTableWidgetItem*)
        itemDoubleClicked(QTableWidgetItem*) itemSelectionChanged()""")),
    # --- CTK (properties, public slots, Q_INVOKABLE methods, signals)
    "ctkCollapsibleButton": WidgetClass("QAbstractButton", _names("""
        collapsed collapsedHeight flat contentsFrameShape contentsFrameShadow contentsLineWidth
        contentsMidLineWidth buttonTextAlignment indicatorAlignment"""),
        _names("contentsCollapsed(bool)")),
    "ctkSliderWidget": WidgetClass("QWidget", _names("""
        decimals singleStep pageStep minimum maximum value prefix suffix tickInterval tickPosition
        synchronizeSiblings spinBoxAlignment tracking spinBoxVisible popupSlider
        invertedAppearance invertedControls reset setValue setSpinBoxVisible setDecimals"""),
        _names("valueChanged(double) valueIsChanging(double) decimalsChanged(int)")),
    "ctkPathLineEdit": WidgetClass("QWidget", _names("""
        label filters currentPath options settingKey showBrowseButton showHistoryButton
        sizeAdjustPolicy minimumContentsLength nameFilters comboBox setCurrentPath browse
        retrieveHistory addCurrentPathToHistory"""),
        _names("validInputChanged(bool) currentPathChanged(QString)")),
    # --- qMRML
    "qMRMLWidget": WidgetClass("QWidget", _names("""
        mrmlScene preInitializeApplication postInitializeApplication pixmapFromIcon
        setMRMLScene"""),
        _names("mrmlSceneChanged(vtkMRMLScene*)")),
    "qMRMLNodeComboBox": WidgetClass("QWidget", _names("""
        currentNodeID currentNodeId nodeTypes showHidden showChildNodeTypes hideChildNodeTypes
        baseName noneEnabled addEnabled removeEnabled editEnabled renameEnabled
        interactionNodeSingletonTag selectNodeUponCreation noneDisplay sizeAdjustPolicy mrmlScene
        addAttribute removeAttribute setNodeTypeLabel nodeTypeLabel nodeCount nodeFromIndex
        currentNode sortFilterProxyModel addMenuAction setMRMLScene setCurrentNode
        setCurrentNodeID setCurrentNodeIndex addNode removeCurrentNode editCurrentNode
        renameCurrentNode"""),
        _names("""
        currentNodeChanged(vtkMRMLNode*) currentNodeChanged(bool) currentNodeIDChanged(QString)
        nodeActivated(vtkMRMLNode*) nodeAdded(vtkMRMLNode*) nodeAddedByUser(vtkMRMLNode*)
        nodeAddedByUserAction(vtkMRMLNode*) nodeAboutToBeRemoved(vtkMRMLNode*)
        currentNodeRenamed(QString) nodeAboutToBeEdited(vtkMRMLNode*)""")),
}


def _lineage(class_name: str) -> list[WidgetClass]:
    """The class and its bases, most derived first; KeyError for a class not in the table."""
    lineage = []
    name = class_name
    while name is not None:
        entry = WIDGET_CLASSES[name]
        lineage.append(entry)
        name = entry.base
    return lineage


def signals(class_name: str) -> frozenset[str]:
    """Signal signatures of a class, inherited ones included."""
    return frozenset().union(*(entry.signals for entry in _lineage(class_name)))


def attributes(class_name: str) -> frozenset[str]:
    """Attribute names Python may use on a class: members, and signals by name
    (``widget.clicked.connect(slot)``), inherited ones included."""
    signal_names = {signature.split("(")[0] for signature in signals(class_name)}
    return frozenset().union(*(entry.members for entry in _lineage(class_name)), signal_names)


def normalized_signal(signature: str) -> str:
    """A signal signature as Qt normalises it: no spaces, ``const T&`` read as ``T``."""
    name, _, arguments = signature.replace(" ", "").partition("(")
    types = [argument.removeprefix("const").removesuffix("&") for argument in arguments.rstrip(")").split(",")]
    return f"{name}({','.join(t for t in types if t)})"
