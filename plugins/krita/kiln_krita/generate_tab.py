"""The docker's Generate tab: model, prompts, LoRA picker, seed, steps, sampler, CFG, mode (txt2img,
img2img, inpaint, product shot) and the size note of the area that will be generated.

Widgets only: each button calls one Controller method (the Krita tests call the same ones).
"""

import random

from PyQt5.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPlainTextEdit,
                             QPushButton, QSizePolicy, QSpinBox, QToolButton)

from . import canvas
from .backend import requests
from .canvas import UserError
from .widgets import Tab, fill_combo


class GenerateTab(Tab):
    def __init__(self, docker):
        super().__init__(docker)
        w = self
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

    # -- actions (each is one Controller call) ------------------------------------------------

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
        self.update_size_note()
        source = "visible" if self.gen_source.currentIndex() == 1 else "layer"
        return self.guard(lambda: self.controller.generate(self.docker.active_document(), self.generation_settings(),
                                                            None, source))

    def cancel_generation(self):
        self.guard(lambda: self.controller.cancel_generation())

    def insert_lora(self):
        name = self.gen_lora.currentText()
        if not name:
            self.show_error("No LoRA picked: train one, or add one to Kiln's library.")
            return
        try:
            text, cursor = requests.insert_lora_tag(self.gen_prompt.toPlainText(), name, self.gen_lora_weight.value(),
                                                    self.gen_prompt.textCursor().position())
        except requests.RequestError as e:
            self.show_error(str(e))
            return
        self.gen_prompt.setPlainText(text)
        tc = self.gen_prompt.textCursor()
        tc.setPosition(cursor)
        self.gen_prompt.setTextCursor(tc)

    # -- showing things -----------------------------------------------------------------------

    def set_busy(self, what, busy):
        if what == "generate":
            self.gen_start.setEnabled(not busy)
            self.gen_cancel.setEnabled(busy)

    def set_models(self, names):
        fill_combo(self.gen_model, names)

    def set_loras(self, names):
        fill_combo(self.gen_lora, names)

    def pick_lora(self, name, _epoch=None):
        """The LoRA just chosen in the Train tab, picked here ready to insert."""
        i = self.gen_lora.findText(name)
        if i >= 0:
            self.gen_lora.setCurrentIndex(i)

    def _mode_changed(self, mode):
        needs_source = mode in ("img2img", "inpaint")
        self.gen_source.setEnabled(needs_source)
        self.gen_strength.setEnabled(needs_source)
        shot = mode == requests.SHOT
        for widget in (self.gen_count, self.gen_edge, self.gen_harmonize):
            widget.setEnabled(shot)
        self.gen_start.setText("Make product shot" if shot else "Generate")
        self.update_size_note()

    def update_size_note(self):
        doc = self.docker.active_document()
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
            native = self.controller.native_size(self.gen_model.currentText()) if self.controller else 512
            region = canvas.generation_region(doc, self.gen_mode.currentText(), native)
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
