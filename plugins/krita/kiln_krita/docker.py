"""The Kiln docker: three tabs (Dataset, Train, Generate) over the Controller, and the lines under
them (preview, progress, status, the daemon).

This module holds the frame and the wiring: each tab lives in its own module (dataset_tab,
train_tab, generate_tab) and every button calls one Controller method, which the Krita tests call
too. The controller's signals are routed here to the tabs that show them.
"""

from krita import DockWidget, Krita
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QPixmap
from PyQt5.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QSizePolicy,
                             QTabWidget, QVBoxLayout, QWidget)

from . import canvas
from .backend import load_error
from .canvas import UnsupportedDocument, UserError
from .dataset_tab import DatasetTab
from .generate_tab import GenerateTab
from .train_tab import TrainTab
from .widgets import scroll

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
        self.dataset_tab = DatasetTab(self)
        self.train_tab = TrainTab(self)
        self.generate_tab = GenerateTab(self)
        self.tabs.addTab(scroll(self.dataset_tab), "Dataset")
        self.tabs.addTab(scroll(self.train_tab), "Train")
        self.tabs.addTab(self.generate_tab, "Generate")
        self.tabs.setCurrentIndex(2)
        layout.addWidget(self.tabs, 1)

        self.preview = QLabel(root)
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumHeight(96)
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
        self.setWidget(root)

        if load_error:
            self.set_status(load_error)
            self.tabs.setEnabled(False)
        else:
            self._attach_controller()

    # -- controller wiring ------------------------------------------------------------------

    def _attach_controller(self):
        from .controller import Controller, connection
        try:
            conn = connection()
        except UserError as e:
            self.set_status(str(e))
            return
        self.controller = c = Controller(conn)
        ds, tr, gen = self.dataset_tab, self.train_tab, self.generate_tab
        c.status.connect(self.set_status)
        c.error.connect(self.show_error)
        c.preview.connect(self._set_preview)
        c.progress.connect(self._set_progress)
        c.busyChanged.connect(self._set_busy)
        c.modelsChanged.connect(gen.set_models)
        c.modelsChanged.connect(tr.set_models)
        c.lorasChanged.connect(gen.set_loras)
        c.datasetsChanged.connect(ds.set_datasets)
        c.datasetsChanged.connect(tr.set_datasets)
        c.datasetShown.connect(self._show_dataset)
        c.thumbnailsReady.connect(ds.set_thumbnails)
        c.tagsChanged.connect(ds.set_tags)
        c.planReady.connect(tr.show_plan)
        c.trainingsListed.connect(tr.set_trainings)
        c.trainingShown.connect(tr.show_training)
        c.trainingShown.connect(tr.refresh_trainings)
        c.trainingFinished.connect(tr.refresh_trainings)
        c.liveUpdated.connect(tr.update_live)
        c.epochsReady.connect(tr.show_epochs)
        # "Use this epoch": the LoRA users pick in Generate is picked there, ready to insert.
        c.loraUsed.connect(gen.pick_lora)
        conn.connectedChanged.connect(self._connection_changed)
        conn.jobUpdated.connect(tr.job_updated)

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
            if self.controller.conn.has_method("train.history"):
                self.controller.list_trainings()
        except UserError as e:
            self.show_error(str(e))
            return False
        self.train_tab.schedule_plan(reset=True)
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
        self.generate_tab.update_size_note()

    # -- what the tabs share ------------------------------------------------------------------

    def active_document(self):
        return Krita.instance().activeDocument()

    def guard(self, fn):
        """Runs a controller call, turning its errors into messages (and offering to convert a
        document Kiln cannot read)."""
        if self.controller is None and not self.connect_daemon():
            return None
        try:
            return fn()
        except UnsupportedDocument as e:
            doc = self.active_document()
            if doc is not None and e.convertible and QMessageBox.question(
                    self, DOCKER_TITLE, str(e) + "\n\nConvert this document to 8-bit sRGB now?") == QMessageBox.Yes:
                try:
                    canvas.convert_to_srgb8(doc)
                    return fn()
                except UserError as again:
                    self.show_error(str(again))
            elif doc is None or not e.convertible:
                self.show_error(str(e))
        except UserError as e:
            self.show_error(str(e))
        return None

    def set_status(self, text):
        self.status.setText(text)

    def show_error(self, text):
        self.status.setText(text)
        QMessageBox.warning(self, DOCKER_TITLE, text)

    # -- showing things -----------------------------------------------------------------------

    def _set_preview(self, image):
        # Fit the label as laid out (a pixmap taller than the label shows only its middle strip);
        # small pictures (a 64 px model's) are enlarged with sharp pixels rather than smeared.
        pix = QPixmap.fromImage(image)
        width = max(64, min(PREVIEW_SIZE, self.preview.width()))
        height = max(64, min(PREVIEW_SIZE, self.preview.height()))
        enlarging = pix.width() < width and pix.height() < height
        mode = Qt.FastTransformation if enlarging else Qt.SmoothTransformation
        self.preview.setPixmap(pix.scaled(width, height, Qt.KeepAspectRatio, mode))

    def _set_progress(self, step, total):
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(min(step, max(total, 1)))

    def _set_busy(self, what, busy):
        for tab in (self.dataset_tab, self.train_tab, self.generate_tab):
            tab.set_busy(what, busy)

    def _show_dataset(self, dataset, _import=None):
        self.dataset_tab.show_dataset(dataset)
        self.train_tab.default_dataset(dataset.get("name", ""))
