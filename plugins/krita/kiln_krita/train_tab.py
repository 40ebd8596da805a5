"""The docker's Train tab: base model, dataset, name and preset; the "Advanced" parameters filled
from kilnd's plan (train.plan) with the estimate and the warnings as they change; the trainings on
this kilnd to attach to; the live view (loss curve, step/epoch/ETA, samples of each epoch, pause,
resume, cancel); and the result (the epochs, "Use this epoch", the validation grid).

Widgets only: each button calls one Controller method (the Krita tests call the same ones); the
values and lines shown come from kiln.training.
"""

from PyQt5.QtCore import QSize, Qt, QTimer
from PyQt5.QtGui import QDoubleValidator
from PyQt5.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                             QListView, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton,
                             QSpinBox, QToolButton, QVBoxLayout, QWidget)

from .backend import requests, training
from .canvas import UserError
from .widgets import LossCurve, Section, Tab, fill_combo, narrow_combo, narrow_form, sample_icon

SAMPLE_SIZE = 72      # the live view's sample strip and the epoch list
DEFAULT_STRENGTHS = "0.25, 0.5, 0.75, 1"
WARNING_STYLE = "color: #d9822b;"


class TrainTab(Tab):
    def __init__(self, docker):
        super().__init__(docker)
        self.sample_icons = {}   # sample path -> QIcon
        self.plan_baseline = {}  # the Advanced values of the plan without the user's changes
        self.plan_timer = QTimer(self)
        self.plan_timer.setSingleShot(True)
        self.plan_timer.setInterval(300)
        self.plan_timer.timeout.connect(self.refresh_plan)
        self.plan_reset = True
        self.filling = False     # the Advanced fields are being filled from a plan
        w = self
        outer = QVBoxLayout(w)
        outer.setContentsMargins(0, 0, 0, 0)
        setup = QWidget(w)
        form = narrow_form(QFormLayout(setup))
        row = QHBoxLayout()
        self.tr_model = narrow_combo(QComboBox(w))
        row.addWidget(self.tr_model, 1)
        add = QToolButton(w)
        add.setText("Add...")
        add.setToolTip("Add a model: register a .safetensors checkpoint (it is not copied)")
        add.clicked.connect(self.add_model)
        row.addWidget(add)
        form.addRow("Base model", row)
        self.tr_dataset = narrow_combo(QComboBox(w))
        self.tr_dataset.setEditable(True)
        form.addRow("Dataset", self.tr_dataset)
        self.tr_name = QLineEdit(w)
        self.tr_name.setPlaceholderText("default: the dataset's name")
        form.addRow("LoRA name", self.tr_name)
        self.tr_preset = QComboBox(w)
        self.tr_preset.addItems(requests.PRESETS)
        form.addRow("Preset", self.tr_preset)
        for widget in (self.tr_model, self.tr_dataset, self.tr_preset):
            widget.currentTextChanged.connect(lambda _t: self.schedule_plan(reset=True))
        outer.addWidget(setup)

        # Advanced: the values that matter, filled from kilnd's plan for this preset and dataset.
        adv = QWidget(w)
        adv_form = narrow_form(QFormLayout(adv))
        self.tr_params = {}
        for p in training.PARAMETERS:
            if p.kind == "int":
                field = QSpinBox(adv)
                field.setRange(int(p.minimum), int(p.maximum))
                field.setSingleStep(int(p.step))
                if p.zero_means:
                    field.setSpecialValueText(p.zero_means)
                field.valueChanged.connect(lambda _v: self.schedule_plan())
            elif p.kind == "float":
                field = QLineEdit(adv)
                validator = QDoubleValidator(0.0, p.maximum or 1e9, 10, field)
                validator.setNotation(QDoubleValidator.ScientificNotation)
                field.setValidator(validator)
                field.textEdited.connect(lambda _t: self.schedule_plan())
            elif p.kind == "choice":
                field = narrow_combo(QComboBox(adv))
                field.addItems(p.choices)
                field.currentTextChanged.connect(lambda _t: self.schedule_plan())
            else:
                field = QPlainTextEdit(adv)
                field.setMaximumHeight(52)
                field.textChanged.connect(lambda: self.schedule_plan())
            field.setToolTip(p.help)
            self.tr_params[p.key] = field
            adv_form.addRow(p.label, field)
        self.tr_other = QPlainTextEdit(adv)
        self.tr_other.setMaximumHeight(44)
        self.tr_other.setPlaceholderText("other kohya options, key=value per line")
        self.tr_other.setToolTip("Any other option of kohya's train_network.py, one key=value per line "
                                 "(e.g. min_bucket_reso=256); applied last")
        self.tr_other.textChanged.connect(lambda: self.schedule_plan())
        adv_form.addRow("Other", self.tr_other)
        self.tr_advanced = Section("Advanced", adv, expanded=False, parent=w)
        outer.addWidget(self.tr_advanced)

        self.tr_plan = QLabel("Pick a base model and a dataset to see what training will do.", w)
        self.tr_plan.setWordWrap(True)
        outer.addWidget(self.tr_plan)
        self.tr_warnings = QLabel(w)
        self.tr_warnings.setWordWrap(True)
        self.tr_warnings.setStyleSheet(WARNING_STYLE)
        outer.addWidget(self.tr_warnings)
        self.tr_start = QPushButton("Train", w)
        self.tr_start.clicked.connect(self.start_training)
        outer.addWidget(self.tr_start)
        row = QHBoxLayout()
        self.tr_runs = narrow_combo(QComboBox(w))
        self.tr_runs.setToolTip("Trainings on this kilnd, running first: started here, from the command line or "
                                "another application")
        row.addWidget(self.tr_runs, 1)
        refresh = QToolButton(w)
        refresh.setText("Refresh")
        refresh.clicked.connect(self.list_trainings)
        row.addWidget(refresh)
        self.tr_attach = QPushButton("Attach", w)
        self.tr_attach.setToolTip("Show this training here: its loss, samples and epochs")
        self.tr_attach.clicked.connect(self.attach_training)
        row.addWidget(self.tr_attach)
        outer.addLayout(row)

        # The live view: loss, samples per epoch, step/epoch/ETA, pause/resume/cancel.
        live = QGroupBox("Training", w)
        self.tr_live_box = live
        lv = QVBoxLayout(live)
        self.tr_curve = LossCurve(live)
        lv.addWidget(self.tr_curve)
        self.tr_progress = QLabel(live)
        self.tr_progress.setWordWrap(True)
        lv.addWidget(self.tr_progress)
        row = QHBoxLayout()
        self.tr_pause = QPushButton("Pause", live)
        self.tr_pause.clicked.connect(self.pause_training)
        row.addWidget(self.tr_pause)
        self.tr_resume = QPushButton("Resume", live)
        self.tr_resume.clicked.connect(self.resume_training)
        row.addWidget(self.tr_resume)
        self.tr_cancel = QPushButton("Cancel", live)
        self.tr_cancel.clicked.connect(self.cancel_training)
        row.addWidget(self.tr_cancel)
        lv.addLayout(row)
        for b in (self.tr_pause, self.tr_resume, self.tr_cancel):
            b.setEnabled(False)
        self.tr_samples = QListWidget(live)
        self.tr_samples.setViewMode(QListView.IconMode)
        self.tr_samples.setFlow(QListView.LeftToRight)
        self.tr_samples.setWrapping(False)
        self.tr_samples.setMovement(QListView.Static)
        self.tr_samples.setIconSize(QSize(SAMPLE_SIZE, SAMPLE_SIZE))
        self.tr_samples.setFixedHeight(SAMPLE_SIZE + 40)
        self.tr_samples.setToolTip("The sample images of each epoch, as they are made")
        lv.addWidget(self.tr_samples)
        outer.addWidget(live)

        # The result: the epoch files with their samples, "use this epoch", the grid.
        result = QGroupBox("Choose the epoch", w)
        rv = QVBoxLayout(result)
        self.tr_epochs = QListWidget(result)
        self.tr_epochs.setIconSize(QSize(SAMPLE_SIZE, SAMPLE_SIZE))
        self.tr_epochs.setMinimumHeight(SAMPLE_SIZE * 2 + 12)
        self.tr_epochs.setWordWrap(True)
        self.tr_epochs.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.tr_epochs.setToolTip("One LoRA file per epoch, with its samples and mean loss. The last is often not the "
                                  "best: pick the one that looks most like the subject while still following the "
                                  "prompt (the grid compares them).")
        rv.addWidget(self.tr_epochs)
        self.tr_use = QPushButton("Use this epoch", result)
        self.tr_use.setToolTip("Makes the selected epoch's file the LoRA that <lora:name:w> gives in Generate "
                               "(every epoch file is kept)")
        self.tr_use.clicked.connect(self.use_epoch)
        rv.addWidget(self.tr_use)
        gform = narrow_form(QFormLayout())
        self.tr_grid_prompt = QLineEdit(result)
        self.tr_grid_prompt.setPlaceholderText("default: the trigger word")
        gform.addRow("Grid prompt", self.tr_grid_prompt)
        self.tr_grid_strengths = QLineEdit(DEFAULT_STRENGTHS, result)
        gform.addRow("Strengths", self.tr_grid_strengths)
        rv.addLayout(gform)
        self.tr_grid = QPushButton("Validation grid", result)
        self.tr_grid.setToolTip("Every epoch (columns) at each strength (rows), one seed: opens as a new document")
        self.tr_grid.clicked.connect(self.open_grid)
        rv.addWidget(self.tr_grid)
        outer.addWidget(result)
        outer.addStretch(1)

    # -- actions (each is one Controller call) ------------------------------------------------

    def add_model(self):
        path, _ = QFileDialog.getOpenFileName(self, "Add a Stable Diffusion checkpoint", "",
                                              "Checkpoints (*.safetensors);;All files (*)")
        if path:
            self.guard(lambda: self.controller.add_model(path))

    def advanced_values(self):
        """The Advanced fields as kiln.training values."""
        values = {}
        for p in training.PARAMETERS:
            field = self.tr_params[p.key]
            if p.kind == "int":
                values[p.key] = field.value()
            elif p.kind == "float":
                text = field.text().strip()
                try:
                    values[p.key] = float(text) if text else self.plan_baseline.get(p.key)
                except ValueError:
                    raise UserError("%s: '%s' is not a number." % (p.label, text))
            elif p.kind == "choice":
                values[p.key] = field.currentText()
            else:
                values[p.key] = field.toPlainText()
        return values

    def other_options(self):
        try:
            return training.other_options(self.tr_other.toPlainText())
        except requests.RequestError as e:
            raise UserError(str(e))

    def training_settings(self, with_advanced=True):
        """What Train sends: the preset, then the Advanced values the user changed from the plan
        (only those, so the rest follows the preset), then the other options."""
        overrides = {}
        if with_advanced and self.plan_baseline:
            try:
                overrides = training.changed_values(self.advanced_values(), self.plan_baseline)
            except requests.RequestError as e:
                raise UserError(str(e))
        return requests.TrainSettings(base_model=self.tr_model.currentText(), dataset=self.tr_dataset.currentText(),
                                      name=self.tr_name.text().strip() or self.tr_dataset.currentText(),
                                      preset=self.tr_preset.currentText(), overrides=overrides,
                                      set=self.other_options() if with_advanced else [])

    def schedule_plan(self, reset=False):
        """Asks for the plan again a moment after the last change (reset: the preset, dataset or model
        changed, so the Advanced fields are filled anew)."""
        if self.filling:
            return
        self.plan_reset = self.plan_reset or reset
        self.plan_timer.start()

    def refresh_plan(self):
        """The estimate and the warnings for the current settings, from kilnd's train.plan; with a
        new preset, dataset or model the Advanced fields are first filled from the plan."""
        c = self.controller
        if c is None or not c.conn.session.connected or not c.conn.has_method("train.plan"):
            return None
        if not self.tr_model.currentText() or not self.tr_dataset.currentText().strip():
            self.tr_plan.setText("Pick a base model and a dataset to see what training will do.")
            self.tr_warnings.setText("")
            return None
        reset, self.plan_reset = self.plan_reset, False
        try:
            if reset or not self.plan_baseline:
                plan = c.plan_training(self.training_settings(with_advanced=False))
                self.plan_baseline = {}
                self._fill_advanced(training.values_from_plan(plan))
                if self.tr_other.toPlainText().strip():
                    plan = c.plan_training(self.training_settings())
            else:
                settings = self.training_settings()
                plan = c.plan_training(settings)
                # The fields the user left alone show what kilnd derives now (network_alpha follows
                # a changed network_dim, say), and stay unsent.
                self._fill_advanced(training.values_from_plan(plan), keep=set(settings.overrides))
            return plan
        except UserError as e:
            self.tr_plan.setText("Training cannot start as set:")
            self.tr_warnings.setText(str(e))
            return None

    def _fill_advanced(self, values, keep=()):
        """The Advanced fields and their baseline from a plan's values, but for the keys in `keep`
        (the user's changes)."""
        for key, v in values.items():
            if key not in keep:
                self.plan_baseline[key] = v
        self.filling = True
        try:
            for p in training.PARAMETERS:
                if p.key in keep:
                    continue
                field, v = self.tr_params[p.key], values.get(p.key)
                if p.kind == "int":
                    field.setValue(int(v) if isinstance(v, (int, float)) else int(p.minimum))
                elif p.kind == "float":
                    field.setText("" if v is None else ("%g" % v))
                elif p.kind == "choice":
                    field.setCurrentText(str(v or p.choices[0]))
                else:
                    field.setPlainText(str(v or ""))
        finally:
            self.filling = False

    def start_training(self):
        self.plan_timer.stop()
        trigger = self.docker.dataset_tab.ds_trigger.text().strip()
        return self.guard(lambda: self.controller.train(self.training_settings(), trigger))

    def list_trainings(self):
        return self.guard(lambda: self.controller.list_trainings())

    def attach_training(self):
        job_id = self.tr_runs.currentData()
        if not job_id:
            self.set_status("No training to attach to: Refresh lists those on this kilnd.")
            return None
        return self.guard(lambda: self.controller.attach_training(job_id))

    def pause_training(self):
        self.guard(lambda: self.controller.pause_training())

    def resume_training(self):
        self.guard(lambda: self.controller.resume_training())

    def cancel_training(self):
        self.guard(lambda: self.controller.cancel_training())

    def selected_epoch(self):
        item = self.tr_epochs.currentItem()
        return item.data(Qt.UserRole) if item is not None else None

    def use_epoch(self):
        job = self.controller.shown_training if self.controller is not None else None
        epoch = self.selected_epoch()
        if job is None or epoch is None:
            self.set_status("Select an epoch in the list first (it fills when a training ends).")
            return None
        return self.guard(lambda: self.controller.use_epoch(job.name, epoch))

    def open_grid(self):
        job = self.controller.shown_training if self.controller is not None else None
        name = job.name if job is not None else (self.tr_name.text().strip() or self.tr_dataset.currentText())
        if not name:
            self.set_status("Train or attach to a LoRA first: the grid compares its epochs.")
            return None
        prompt = self.tr_grid_prompt.text().strip() or (job.prompt if job is not None else "")
        return self.guard(lambda: self.controller.request_grid(name, prompt, self.tr_grid_strengths.text()))

    # -- showing things -----------------------------------------------------------------------

    def set_busy(self, what, busy):
        if what == "train":
            self.tr_start.setEnabled(not busy)
            self._update_train_buttons()

    def set_models(self, names):
        fill_combo(self.tr_model, names)

    def set_datasets(self, names):
        fill_combo(self.tr_dataset, names)

    def default_dataset(self, name):
        """The dataset just shown in the Dataset tab, when none is picked here yet."""
        if self.tr_dataset.currentText() == "":
            self.tr_dataset.setEditText(name)

    def show_plan(self, plan):
        self.tr_plan.setText("\n".join(training.plan_summary(plan)))
        self.tr_plan.setToolTip(plan.get("time_basis") or "")
        warnings = training.plan_warnings(plan)
        self.tr_warnings.setText("\n".join("! " + w for w in warnings))

    def refresh_trainings(self, *_args):
        """The list of trainings again, after this slot (a training started, attached or ended)."""
        c = self.controller
        if c is not None and c.conn.session.connected and c.conn.has_method("train.history"):
            QTimer.singleShot(0, self.list_trainings)

    def set_trainings(self, entries):
        """The trainings to attach to; the one shown here stays picked."""
        c = self.controller
        shown = c.shown_training.id if c is not None and c.shown_training is not None else None
        current = self.tr_runs.currentData() or shown
        self.tr_runs.clear()
        for e in entries:
            self.tr_runs.addItem(e.label, e.id)
        if current:
            i = self.tr_runs.findData(current)
            if i >= 0:
                self.tr_runs.setCurrentIndex(i)

    def show_training(self, live):
        self.tr_curve.set_live(live, 0)
        self.tr_samples.clear()
        self.tr_epochs.clear()
        self.tr_progress.setText("Starting...")
        self.tr_live_box.setTitle("Training '%s'" % (live.lora or self.tr_name.text() or "?"))
        self._update_train_buttons()

    def update_live(self, live, added, new_samples, new_files):
        total = int((live.progress or {}).get("total", 0) or 0)
        self.tr_curve.set_live(live, total)
        if live.lora:
            self.tr_live_box.setTitle("Training '%s'" % live.lora)
        self.tr_progress.setText(live.status_line())
        if new_samples:
            self.tr_samples.clear()
            for epoch, samples in live.samples_by_epoch():
                for s in samples:
                    item = QListWidgetItem(sample_icon(s["path"], SAMPLE_SIZE, self.sample_icons, self.controller.local_file),
                                           "epoch %d" % epoch if epoch else "start")
                    item.setToolTip("%s\n%s" % (s.get("prompt", ""), s["path"]))
                    self.tr_samples.addItem(item)
            self.tr_samples.scrollToBottom()
        self._update_train_buttons(live.state)

    def job_updated(self, p):
        c = self.controller
        if c is not None and c.training is not None and p.job_id == c.training.id:
            self.tr_progress.setText(c.training.live.status_line(p))
            self._update_train_buttons(p.state)

    def _update_train_buttons(self, state=None):
        c = self.controller
        following = c is not None and c.training is not None
        state = state or (c.training.live.state if following else "")
        self.tr_pause.setEnabled(following and state in ("running", "queued"))
        self.tr_resume.setEnabled(following and state == "paused")
        self.tr_cancel.setEnabled(following and state in ("running", "queued", "paused"))

    def show_epochs(self, rows, lora):
        self.tr_epochs.clear()
        for row in rows:
            icon = sample_icon(row.samples[0], SAMPLE_SIZE, self.sample_icons, self.controller.local_file) if row.samples else None
            item = QListWidgetItem(row.label)
            if icon is not None:
                item.setIcon(icon)
            item.setData(Qt.UserRole, row.epoch)
            item.setToolTip("%s\n%s" % (row.path, "\n".join(row.samples)))
            if row.in_use:
                f = item.font()
                f.setBold(True)
                item.setFont(f)
            self.tr_epochs.addItem(item)
            if row.in_use:
                self.tr_epochs.setCurrentItem(item)
        self._update_train_buttons()
