"""The Kiln docker: three sections (Dataset, Train, Generate) over the Controller.

Widgets only: every button calls one Controller method, which the Krita tests call too.
"""

import random

from krita import DockWidget, Krita
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QPixmap
from PyQt5.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                             QLineEdit, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSizePolicy, QSpinBox,
                             QTabWidget, QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from . import canvas
from .backend import findings, load_error, requests
from .canvas import UnsupportedDocument, UserError

DOCKER_TITLE = "Kiln"
PREVIEW_SIZE = 200


class KilnDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle(DOCKER_TITLE)
        self.controller = None
        root = QWidget(self)
        layout = QVBoxLayout(root)
        layout.setContentsMargins(4, 4, 4, 4)

        self.tabs = QTabWidget(root)
        self.tabs.addTab(self._dataset_tab(), "Dataset")
        self.tabs.addTab(self._train_tab(), "Train")
        self.tabs.addTab(self._generate_tab(), "Generate")
        self.tabs.setCurrentIndex(2)
        layout.addWidget(self.tabs)

        self.preview = QLabel(root)
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumHeight(64)
        self.preview.setToolTip("Preview of the image being generated, or the latest training sample")
        layout.addWidget(self.preview)
        self.progress = QProgressBar(root)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        layout.addWidget(self.progress)
        self.status = QLabel(root)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.status)

        row = QHBoxLayout()
        self.daemon_label = QLabel("kilnd: not connected", root)
        self.daemon_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        row.addWidget(self.daemon_label, 1)
        self.connect_button = QPushButton("Connect", root)
        self.connect_button.clicked.connect(self.connect_daemon)
        row.addWidget(self.connect_button)
        self.daemon_button = QPushButton("Daemon...", root)
        self.daemon_button.setToolTip("Choose the kilnd program Kiln starts when it is not running")
        self.daemon_button.clicked.connect(self.choose_daemon)
        row.addWidget(self.daemon_button)
        layout.addLayout(row)
        layout.addStretch(1)
        self.setWidget(root)

        if load_error:
            self._set_status(load_error)
            self.tabs.setEnabled(False)
        else:
            self._attach_controller()

    # -- building the sections --------------------------------------------------------------

    def _dataset_tab(self):
        w = QWidget()
        form = QFormLayout(w)
        self.ds_name = QComboBox(w)
        self.ds_name.setEditable(True)
        self.ds_name.setToolTip("A dataset in Kiln's library; a new name creates it")
        form.addRow("Dataset", self.ds_name)
        self.ds_trigger = QLineEdit(w)
        self.ds_trigger.setPlaceholderText("e.g. sks_speaker")
        self.ds_trigger.setToolTip("The word the LoRA learns; it goes first in every caption")
        form.addRow("Trigger word", self.ds_trigger)
        self.ds_preset = QComboBox(w)
        self.ds_preset.addItems(requests.PRESETS)
        form.addRow("Preset", self.ds_preset)
        self.ds_background = QComboBox(w)
        self.ds_background.addItems(requests.BACKGROUNDS)
        self.ds_background.setToolTip("Product preset: what transparent pixels become")
        form.addRow("Background", self.ds_background)
        self.ds_add = QPushButton("Add selected layers", w)
        self.ds_add.setToolTip("Each selected layer (or each visible layer of one selected group) becomes a "
                               "training image, trimmed to its pixels, with its transparency")
        self.ds_add.clicked.connect(self.add_layers)
        form.addRow(self.ds_add)
        # Findings grouped as `kiln dataset check` prints them: the dataset first, then each image
        # that has some; each finding with its reason and, beside it, what to do.
        self.ds_findings = QLabel(w)
        self.ds_findings.setWordWrap(True)
        form.addRow(self.ds_findings)
        self.ds_images = QTreeWidget(w)
        self.ds_images.setHeaderLabels(["Finding", "What to do"])
        self.ds_images.setWordWrap(True)
        self.ds_images.setMinimumHeight(160)
        self.ds_images.setSelectionMode(QTreeWidget.ExtendedSelection)
        form.addRow(self.ds_images)
        self.ds_remove = QPushButton("Remove selected images", w)
        self.ds_remove.setToolTip("Drops the selected images (their originals, training files and captions) from "
                                  "the dataset; the layers in the document stay")
        self.ds_remove.clicked.connect(self.remove_images)
        form.addRow(self.ds_remove)
        return w

    def _train_tab(self):
        w = QWidget()
        form = QFormLayout(w)
        row = QHBoxLayout()
        self.tr_model = QComboBox(w)
        self.tr_model.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        row.addWidget(self.tr_model, 1)
        add = QToolButton(w)
        add.setText("Add model...")
        add.setToolTip("Register a .safetensors checkpoint (it is not copied)")
        add.clicked.connect(self.add_model)
        row.addWidget(add)
        form.addRow("Base model", row)
        self.tr_dataset = QComboBox(w)
        self.tr_dataset.setEditable(True)
        form.addRow("Dataset", self.tr_dataset)
        self.tr_name = QLineEdit(w)
        self.tr_name.setPlaceholderText("default: the dataset's name")
        form.addRow("LoRA name", self.tr_name)
        self.tr_preset = QComboBox(w)
        self.tr_preset.addItems(requests.PRESETS)
        form.addRow("Preset", self.tr_preset)
        self.tr_epochs = QSpinBox(w)
        self.tr_epochs.setRange(0, 1000)
        self.tr_epochs.setSpecialValueText("preset")
        self.tr_epochs.setToolTip("max_train_epochs; 'preset' keeps the preset's value")
        form.addRow("Epochs", self.tr_epochs)
        buttons = QHBoxLayout()
        self.tr_start = QPushButton("Train", w)
        self.tr_start.clicked.connect(self.start_training)
        buttons.addWidget(self.tr_start)
        self.tr_cancel = QPushButton("Cancel", w)
        self.tr_cancel.setEnabled(False)
        self.tr_cancel.clicked.connect(self.cancel_training)
        buttons.addWidget(self.tr_cancel)
        form.addRow(buttons)
        self.tr_progress = QLabel(w)
        self.tr_progress.setWordWrap(True)
        form.addRow(self.tr_progress)
        return w

    def _generate_tab(self):
        w = QWidget()
        form = QFormLayout(w)
        self.gen_model = QComboBox(w)
        form.addRow("Model", self.gen_model)
        self.gen_prompt = QPlainTextEdit(w)
        self.gen_prompt.setPlaceholderText("Prompt (A1111 syntax: (word:1.2), <lora:name:0.8>)")
        self.gen_prompt.setMaximumHeight(70)
        form.addRow(self.gen_prompt)
        self.gen_negative = QPlainTextEdit(w)
        self.gen_negative.setPlaceholderText("Negative prompt")
        self.gen_negative.setMaximumHeight(44)
        form.addRow(self.gen_negative)
        row = QHBoxLayout()
        self.gen_lora = QComboBox(w)
        self.gen_lora.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.gen_lora.setToolTip("LoRAs in Kiln's library")
        row.addWidget(self.gen_lora, 1)
        self.gen_lora_weight = QDoubleSpinBox(w)
        self.gen_lora_weight.setRange(-2.0, 2.0)
        self.gen_lora_weight.setSingleStep(0.1)
        self.gen_lora_weight.setValue(requests.DEFAULT_LORA_WEIGHT)
        row.addWidget(self.gen_lora_weight)
        insert = QToolButton(w)
        insert.setText("Insert")
        insert.setToolTip("Insert <lora:name:weight> at the cursor")
        insert.clicked.connect(self.insert_lora)
        row.addWidget(insert)
        form.addRow("LoRA", row)

        row = QHBoxLayout()
        self.gen_seed = QSpinBox(w)
        self.gen_seed.setRange(-1, 2 ** 31 - 1)
        self.gen_seed.setValue(-1)
        self.gen_seed.setSpecialValueText("random")
        row.addWidget(self.gen_seed, 1)
        dice = QToolButton(w)
        dice.setText("New")
        dice.setToolTip("Pick a new fixed seed")
        dice.clicked.connect(lambda: self.gen_seed.setValue(random.randint(0, 2 ** 31 - 1)))
        row.addWidget(dice)
        form.addRow("Seed", row)
        self.gen_steps = QSpinBox(w)
        self.gen_steps.setRange(1, 500)
        self.gen_steps.setValue(20)
        form.addRow("Steps", self.gen_steps)
        self.gen_sampler = QComboBox(w)
        self.gen_sampler.addItems(requests.SAMPLERS)
        form.addRow("Sampler", self.gen_sampler)
        self.gen_cfg = QDoubleSpinBox(w)
        self.gen_cfg.setRange(0.0, 30.0)
        self.gen_cfg.setSingleStep(0.5)
        self.gen_cfg.setValue(7.0)
        form.addRow("CFG scale", self.gen_cfg)
        self.gen_mode = QComboBox(w)
        self.gen_mode.addItems(requests.MODES + [requests.SHOT])
        self.gen_mode.setToolTip("txt2img: from the prompt; img2img: from the source; inpaint: repaint the selection; "
                                 "product shot: a scene around the active layer's cut-out product, which stays untouched")
        self.gen_mode.currentTextChanged.connect(self._mode_changed)
        form.addRow("Mode", self.gen_mode)
        self.gen_source = QComboBox(w)
        self.gen_source.addItems(["Current layer", "Visible image"])
        form.addRow("Source", self.gen_source)
        self.gen_strength = QDoubleSpinBox(w)
        self.gen_strength.setRange(0.0, 1.0)
        self.gen_strength.setSingleStep(0.05)
        self.gen_strength.setValue(0.75)
        self.gen_strength.setToolTip("Denoising strength: 0 keeps the source, 1 ignores it")
        form.addRow("Strength", self.gen_strength)
        # Product shots: the active layer is the product; scenes arrive as layers below it.
        self.gen_count = QSpinBox(w)
        self.gen_count.setRange(1, 16)
        self.gen_count.setToolTip("How many scenes (seed, seed + 1, ...), each its own layer")
        form.addRow("Variations", self.gen_count)
        self.gen_edge = QSpinBox(w)
        self.gen_edge.setRange(0, 64)
        self.gen_edge.setValue(4)
        self.gen_edge.setSuffix(" px")
        self.gen_edge.setToolTip("How far into the product's edge the scene is painted, for the contact shadow and "
                                 "the transition; the product's opaque pixels always stay exactly as they are")
        form.addRow("Edge", self.gen_edge)
        self.gen_harmonize = QDoubleSpinBox(w)
        self.gen_harmonize.setRange(0.0, 0.5)
        self.gen_harmonize.setSingleStep(0.05)
        self.gen_harmonize.setToolTip("A light pass so light and colour cast fit; the product's interior is restored "
                                      "exactly, only its edge band takes the new light (0 = off)")
        form.addRow("Harmonize", self.gen_harmonize)
        self.gen_size = QLabel(w)
        self.gen_size.setWordWrap(True)
        form.addRow("Size", self.gen_size)
        buttons = QHBoxLayout()
        self.gen_start = QPushButton("Generate", w)
        self.gen_start.clicked.connect(self.start_generation)
        buttons.addWidget(self.gen_start)
        self.gen_cancel = QPushButton("Cancel", w)
        self.gen_cancel.setEnabled(False)
        self.gen_cancel.clicked.connect(self.cancel_generation)
        buttons.addWidget(self.gen_cancel)
        form.addRow(buttons)
        self._mode_changed(self.gen_mode.currentText())
        return w

    # -- controller wiring ------------------------------------------------------------------

    def _attach_controller(self):
        from .controller import Controller, connection
        try:
            conn = connection()
        except UserError as e:
            self._set_status(str(e))
            return
        self.controller = c = Controller(conn)
        c.status.connect(self._set_status)
        c.error.connect(self._show_error)
        c.preview.connect(self._set_preview)
        c.progress.connect(self._set_progress)
        c.modelsChanged.connect(self._set_models)
        c.lorasChanged.connect(lambda names: self._fill(self.gen_lora, names))
        c.datasetsChanged.connect(self._set_datasets)
        c.datasetShown.connect(self._show_dataset)
        c.busyChanged.connect(self._set_busy)
        conn.connectedChanged.connect(self._connection_changed)

    def connect_daemon(self):
        """Connects (starting kilnd if needed) and fills the pickers from its library."""
        if self.controller is None:
            self._attach_controller()
            if self.controller is None:
                return False
        try:
            self.controller.conn.ensure()
            self.controller.refresh_models()
            self.controller.refresh_loras()
            self.controller.refresh_datasets()
        except UserError as e:
            self._show_error(str(e))
            return False
        return True

    def _connection_changed(self, connected, text):
        self.daemon_label.setText(text)
        self.daemon_label.setToolTip(text)
        self.connect_button.setText("Reconnect" if connected else "Connect")

    def choose_daemon(self):
        path, _ = QFileDialog.getOpenFileName(self, "Choose the kilnd program", "", "kilnd (kilnd*);;All files (*)")
        if path:
            from .controller import set_daemon_path
            set_daemon_path(path)
            self.controller = None
            self.connect_daemon()

    def canvasChanged(self, canvas_):
        self._update_size_note()

    # -- actions (each is one Controller call) ------------------------------------------------

    def _active_document(self):
        return Krita.instance().activeDocument()

    def _guard(self, fn):
        """Runs a controller call, turning its errors into messages (and offering to convert a
        document Kiln cannot read)."""
        if self.controller is None and not self.connect_daemon():
            return None
        try:
            return fn()
        except UnsupportedDocument as e:
            doc = self._active_document()
            if doc is not None and e.convertible and QMessageBox.question(
                    self, DOCKER_TITLE, str(e) + "\n\nConvert this document to 8-bit sRGB now?") == QMessageBox.Yes:
                try:
                    canvas.convert_to_srgb8(doc)
                    return fn()
                except UserError as again:
                    self._show_error(str(again))
            elif doc is None or not e.convertible:
                self._show_error(str(e))
        except UserError as e:
            self._show_error(str(e))
        return None

    def generation_settings(self):
        return requests.GenerateSettings(
            model=self.gen_model.currentText(),
            prompt=self.gen_prompt.toPlainText(),
            negative=self.gen_negative.toPlainText(),
            seed=self.gen_seed.value(),
            steps=self.gen_steps.value(),
            sampler=self.gen_sampler.currentText(),
            cfg=self.gen_cfg.value(),
            mode=self.gen_mode.currentText(),
            strength=self.gen_strength.value(),
            count=self.gen_count.value(),
            edge=self.gen_edge.value(),
            harmonize=self.gen_harmonize.value(),
            # A preview every few steps: four or so per image, at least one.
            preview_every=max(1, min(5, self.gen_steps.value() // 4)))

    def start_generation(self):
        self._update_size_note()
        source = "visible" if self.gen_source.currentIndex() == 1 else "layer"
        return self._guard(lambda: self.controller.generate(self._active_document(), self.generation_settings(),
                                                            None, source))

    def cancel_generation(self):
        self._guard(lambda: self.controller.cancel_generation())

    def insert_lora(self):
        name = self.gen_lora.currentText()
        if not name:
            self._show_error("No LoRA picked: train one, or add one to Kiln's library.")
            return
        try:
            text, cursor = requests.insert_lora_tag(self.gen_prompt.toPlainText(), name, self.gen_lora_weight.value(),
                                                    self.gen_prompt.textCursor().position())
        except requests.RequestError as e:
            self._show_error(str(e))
            return
        self.gen_prompt.setPlainText(text)
        tc = self.gen_prompt.textCursor()
        tc.setPosition(cursor)
        self.gen_prompt.setTextCursor(tc)

    def dataset_settings(self):
        return requests.DatasetSettings(name=self.ds_name.currentText(), trigger=self.ds_trigger.text(),
                                        preset=self.ds_preset.currentText(),
                                        background=self.ds_background.currentText())

    def add_layers(self):
        return self._guard(lambda: self.controller.add_layers_to_dataset(self._active_document(), canvas.selected_nodes(),
                                                                         self.dataset_settings()))

    def remove_images(self):
        ids = []
        for item in self.ds_images.selectedItems():
            while item is not None and item.data(0, Qt.UserRole) is None:
                item = item.parent()  # a finding: its image
            if item is not None and item.data(0, Qt.UserRole) not in ids:
                ids.append(item.data(0, Qt.UserRole))
        if not ids:
            self._set_status("Select the images (or their findings) to remove first.")
            return None
        return self._guard(lambda: self.controller.remove_dataset_images(self.ds_name.currentText(), ids))

    def add_model(self):
        path, _ = QFileDialog.getOpenFileName(self, "Add a Stable Diffusion checkpoint", "",
                                              "Checkpoints (*.safetensors);;All files (*)")
        if path:
            self._guard(lambda: self.controller.add_model(path))

    def training_settings(self):
        overrides = {"max_train_epochs": self.tr_epochs.value()} if self.tr_epochs.value() else {}
        return requests.TrainSettings(base_model=self.tr_model.currentText(), dataset=self.tr_dataset.currentText(),
                                      name=self.tr_name.text(), preset=self.tr_preset.currentText(),
                                      overrides=overrides)

    def start_training(self):
        trigger = self.ds_trigger.text().strip()
        return self._guard(lambda: self.controller.train(self.training_settings(), trigger))

    def cancel_training(self):
        self._guard(lambda: self.controller.cancel_training())

    # -- showing things -----------------------------------------------------------------------

    def _mode_changed(self, mode):
        needs_source = mode in ("img2img", "inpaint")
        self.gen_source.setEnabled(needs_source)
        self.gen_strength.setEnabled(needs_source)
        shot = mode == requests.SHOT
        for widget in (self.gen_count, self.gen_edge, self.gen_harmonize):
            widget.setEnabled(shot)
        self.gen_start.setText("Make product shot" if shot else "Generate")
        self._update_size_note()

    def _update_size_note(self):
        doc = self._active_document()
        if doc is None:
            self.gen_size.setText("no document")
            return
        if self.gen_mode.currentText() == requests.SHOT:
            region = canvas.canvas_region(doc)
            node = doc.activeNode()
            self.gen_size.setText("%dx%d scene around the layer '%s' (the product, kept as it is)"
                                  % (region.width, region.height, node.name() if node else "?"))
            return
        try:
            region = canvas.generation_region(doc, self.gen_mode.currentText())
        except UserError as e:
            self.gen_size.setText(str(e))
            return
        where = "selection" if canvas.selection_rect(doc) else "canvas"
        text = "%dx%d from the %s" % (region.width, region.height, where)
        if region.note:
            self.gen_size.setToolTip(region.note)
            asked = region.requested if where == "canvas" or self.gen_mode.currentText() != "inpaint" else None
            if asked and (asked[2], asked[3]) != (region.width, region.height):
                text += " (%dx%d, rounded to multiples of 8)" % (asked[2], asked[3])
            if "Large area" in region.note:
                text += ". Large area: slow; SD 1.x works best near 512x512"
        self.gen_size.setText(text)

    def _set_status(self, text):
        self.status.setText(text)

    def _show_error(self, text):
        self.status.setText(text)
        QMessageBox.warning(self, DOCKER_TITLE, text)

    def _set_preview(self, image):
        pix = QPixmap.fromImage(image)
        self.preview.setPixmap(pix.scaled(PREVIEW_SIZE, PREVIEW_SIZE, Qt.KeepAspectRatio, Qt.SmoothTransformation))

    def _set_progress(self, step, total):
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(min(step, max(total, 1)))
        if self.controller is not None and self.controller.training is not None:
            self.tr_progress.setText(self.status.text())

    def _set_busy(self, what, busy):
        if what == "generate":
            self.gen_start.setEnabled(not busy)
            self.gen_cancel.setEnabled(busy)
        elif what == "train":
            self.tr_start.setEnabled(not busy)
            self.tr_cancel.setEnabled(busy)
        elif what == "dataset":
            self.ds_add.setEnabled(not busy)
            self.ds_remove.setEnabled(not busy)

    @staticmethod
    def _fill(combo, names):
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        if current:
            i = combo.findText(current)
            if i >= 0:
                combo.setCurrentIndex(i)
            elif combo.isEditable():
                combo.setEditText(current)
        combo.blockSignals(False)

    def _set_models(self, names):
        self._fill(self.gen_model, names)
        self._fill(self.tr_model, names)

    def _set_datasets(self, names):
        self._fill(self.ds_name, names)
        self._fill(self.tr_dataset, names)

    def _show_dataset(self, dataset, imp):
        self.ds_images.clear()
        for group in findings.group_findings(dataset):
            labels = ", ".join(f.label for f in group.findings)
            top = QTreeWidgetItem([group.title, labels])
            top.setData(0, Qt.UserRole, group.image_id)  # None: the dataset's own findings
            for f in group.findings:
                child = QTreeWidgetItem([f.message, f.action])
                child.setToolTip(0, f.message)
                child.setToolTip(1, f.action)
                top.addChild(child)
            self.ds_images.addTopLevelItem(top)
            top.setExpanded(True)
        clean = [i for i in dataset.get("images", []) if isinstance(i, dict) and not i.get("findings")]
        if clean:
            rest = QTreeWidgetItem(["%d image%s without findings" % (len(clean), "" if len(clean) == 1 else "s"), ""])
            for image in clean:
                item = QTreeWidgetItem(["%s  %s" % (image.get("id", "?"), image.get("source_name", "")), "ok"])
                item.setData(0, Qt.UserRole, image.get("id"))
                item.setToolTip(0, image.get("stored_file", ""))
                rest.addChild(item)
            self.ds_images.addTopLevelItem(rest)
        self.ds_images.setColumnWidth(0, max(160, self.ds_images.width() * 3 // 5))
        self.ds_findings.setText("Dataset '%s': %s" % (dataset.get("name", ""), findings.summary(dataset)))
        if self.tr_dataset.currentText() == "":
            self.tr_dataset.setEditText(dataset.get("name", ""))
