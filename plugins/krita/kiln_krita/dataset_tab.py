"""The docker's Dataset tab: name, trigger (explained where it is typed), preset and background;
"Add selected layers"; the gallery (thumbnails with their findings, the dataset's own findings on
top); the selected image's caption; the tag list with its batch actions; auto-tag.

Widgets only: each button calls one Controller method (the Krita tests call the same ones).
"""

from PyQt5.QtCore import QSize, Qt, QTimer
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout,
                             QLabel, QLineEdit, QListView, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton)

from . import canvas
from .backend import findings, requests, training
from .widgets import Tab, badge_icon, fill_combo, narrow_combo, narrow_form

THUMB_SIZE = 80       # gallery icons


class DatasetTab(Tab):
    def __init__(self, docker):
        super().__init__(docker)
        self.thumbs = {}         # (dataset, image id) -> QImage
        self.dataset = None      # the datasets.get answer shown in the gallery
        w = self
        form = narrow_form(QFormLayout(w))
        self.ds_name = narrow_combo(QComboBox(w))
        self.ds_name.setEditable(True)
        self.ds_name.setToolTip("A dataset in Kiln's library; a new name creates it")
        self.ds_name.activated.connect(lambda _i: self.show_selected_dataset())
        form.addRow("Dataset", self.ds_name)
        self.ds_trigger = QLineEdit(w)
        self.ds_trigger.setPlaceholderText("e.g. sks_speaker")
        self.ds_trigger.setToolTip(training.TRIGGER_HELP)
        form.addRow("Trigger word", self.ds_trigger)
        # The word "trigger", explained once, where it is typed.
        self.ds_trigger_help = QLabel(training.TRIGGER_HELP, w)
        self.ds_trigger_help.setWordWrap(True)
        small = QFont(self.ds_trigger_help.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))
        self.ds_trigger_help.setFont(small)
        form.addRow(self.ds_trigger_help)
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
        # The dataset's own findings on top, then the gallery: each image with a badge counting its
        # findings, the reasons and what to do in its tooltip.
        self.ds_findings = QLabel(w)
        self.ds_findings.setWordWrap(True)
        self.ds_findings.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow(self.ds_findings)
        self.ds_gallery = QListWidget(w)
        self.ds_gallery.setViewMode(QListView.IconMode)
        self.ds_gallery.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.ds_gallery.setGridSize(QSize(THUMB_SIZE + 16, THUMB_SIZE + 30))
        self.ds_gallery.setResizeMode(QListView.Adjust)
        self.ds_gallery.setMovement(QListView.Static)
        self.ds_gallery.setWordWrap(True)
        self.ds_gallery.setMinimumHeight(2 * (THUMB_SIZE + 30) + 8)
        self.ds_gallery.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # it wraps
        self.ds_gallery.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.ds_gallery.setToolTip("The dataset's training images; a badge counts an image's findings (hover for "
                                   "what to do). Double-click opens the original as a document.")
        self.ds_gallery.itemSelectionChanged.connect(self._gallery_selection_changed)
        self.ds_gallery.itemDoubleClicked.connect(self.open_original)
        form.addRow(self.ds_gallery)
        row = QHBoxLayout()
        self.ds_remove = QPushButton("Remove selected", w)
        self.ds_remove.setToolTip("Drops the selected images (their originals, training files and captions) from "
                                  "the dataset; the layers in the document stay")
        self.ds_remove.clicked.connect(self.remove_images)
        row.addWidget(self.ds_remove)
        self.ds_open = QPushButton("Open original", w)
        self.ds_open.setToolTip("Opens the selected image's original as a new document")
        self.ds_open.clicked.connect(lambda: self.open_original(None))
        row.addWidget(self.ds_open)
        form.addRow(row)

        self.ds_caption = QPlainTextEdit(w)
        self.ds_caption.setPlaceholderText("Select an image to edit its caption: comma-separated tags, the trigger first")
        self.ds_caption.setMaximumHeight(56)
        form.addRow("Caption", self.ds_caption)
        self.ds_caption_save = QPushButton("Save caption", w)
        self.ds_caption_save.clicked.connect(self.save_caption)
        form.addRow(self.ds_caption_save)

        self.ds_tags = QListWidget(w)
        self.ds_tags.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.ds_tags.setMinimumHeight(110)
        self.ds_tags.setToolTip("How many captions hold each tag. Select tags for the buttons below; they act on "
                                "every caption.")
        form.addRow("Tags", self.ds_tags)
        self.ds_tag_value = QLineEdit(w)
        self.ds_tag_value.setPlaceholderText("new tag (for Replace and Add to all)")
        form.addRow(self.ds_tag_value)
        grid = QGridLayout()  # two by two: four buttons in a row do not fit a docker
        self.ds_tag_buttons = {}
        for action, label, tip in (("replace", "Replace", "Replace the selected tag with the new tag in every caption"),
                                   ("remove", "Remove", "Delete the selected tags from every caption"),
                                   ("move_to_end", "To end", "Move the selected tags to the end of every caption "
                                                             "(early tags weigh most)"),
                                   ("add", "Add to all", "Add the new tag to every caption that lacks it")):
            b = QPushButton(label, w)
            b.setToolTip(tip)
            b.clicked.connect(lambda _c=False, a=action: self.edit_tags(a))
            grid.addWidget(b, len(self.ds_tag_buttons) // 2, len(self.ds_tag_buttons) % 2)
            self.ds_tag_buttons[action] = b
        form.addRow(grid)
        row = QHBoxLayout()
        self.ds_threshold = QDoubleSpinBox(w)
        self.ds_threshold.setRange(0.05, 0.95)
        self.ds_threshold.setSingleStep(0.05)
        self.ds_threshold.setValue(0.35)
        self.ds_threshold.setToolTip("Tags the tagger is at least this sure of (0.35 is usual)")
        row.addWidget(QLabel("Threshold", w))
        row.addWidget(self.ds_threshold)
        self.ds_autotag = QPushButton("Auto-tag", w)
        self.ds_autotag.setToolTip("Adds the tags an installed WD1.4-style tagger finds (put model.onnx and "
                                   "selected_tags.csv in <data dir>/taggers/wd14/); the trigger stays first")
        self.ds_autotag.clicked.connect(self.auto_tag)
        row.addWidget(self.ds_autotag)
        form.addRow(row)
        self.tags_of = None      # the dataset whose tags the tag list shows

    # -- actions (each is one Controller call) ------------------------------------------------

    def dataset_settings(self):
        return requests.DatasetSettings(name=self.ds_name.currentText(), trigger=self.ds_trigger.text(),
                                        preset=self.ds_preset.currentText(),
                                        background=self.ds_background.currentText())

    def add_layers(self):
        return self.guard(lambda: self.controller.add_layers_to_dataset(
            self.docker.active_document(), canvas.selected_nodes(), self.dataset_settings()))

    def _selected_image_ids(self):
        return [item.data(Qt.UserRole) for item in self.ds_gallery.selectedItems() if item.data(Qt.UserRole)]

    def remove_images(self):
        ids = self._selected_image_ids()
        if not ids:
            self.set_status("Select the images to remove in the gallery first.")
            return None
        return self.guard(lambda: self.controller.remove_dataset_images(self.ds_name.currentText(), ids))

    def show_selected_dataset(self):
        name = self.ds_name.currentText().strip()
        if not name or self.controller is None or not self.controller.conn.session.connected:
            return None

        def show():
            self.controller.show_dataset(name)
            self.controller.tag_stats(name)
        return self.guard(show)

    def open_original(self, item=None):
        item = item or (self.ds_gallery.selectedItems() or [None])[0]
        if item is None or not item.data(Qt.UserRole):
            self.set_status("Select an image in the gallery first.")
            return None
        return self.guard(lambda: self.controller.open_original(self.ds_name.currentText(), item.data(Qt.UserRole)))

    def save_caption(self):
        ids = self._selected_image_ids()
        if len(ids) != 1:
            self.set_status("Select one image to edit its caption.")
            return None
        return self.guard(lambda: self.controller.set_caption(self.ds_name.currentText(), ids[0],
                                                               self.ds_caption.toPlainText()))

    def edit_tags(self, action):
        tags = [item.data(Qt.UserRole) for item in self.ds_tags.selectedItems()]
        return self.guard(lambda: self.controller.edit_tags(self.ds_name.currentText(), action, tags,
                                                             self.ds_tag_value.text()))

    def auto_tag(self):
        return self.guard(lambda: self.controller.auto_tag(self.ds_name.currentText(), self.ds_threshold.value()))

    # -- showing things -----------------------------------------------------------------------

    def set_busy(self, what, busy):
        if what == "dataset":
            self.ds_add.setEnabled(not busy)
            self.ds_remove.setEnabled(not busy)
        elif what == "autotag":
            self.ds_autotag.setEnabled(not busy)

    def set_datasets(self, names):
        fill_combo(self.ds_name, names)

    def show_dataset(self, dataset):
        """The gallery: one item per image, its badge counting findings, its tooltip saying them and
        what to do; the dataset's own findings above it. Thumbnails not held yet are asked for."""
        name = dataset.get("name", "")
        self.dataset = dataset
        selected = set(self._selected_image_ids())
        if self.ds_name.currentText() != name:
            self.ds_name.setEditText(name)
        own = findings.group_findings({"name": name, "findings": dataset.get("findings") or []})
        lines = ["Dataset '%s': %s" % (name, findings.summary(dataset))]
        for group in own:
            for f in group.findings:
                lines.append("! %s %s" % (f.message, f.action))
        self.ds_findings.setText("\n".join(lines))
        per_image = findings.by_image(dataset)
        self.ds_gallery.blockSignals(True)
        self.ds_gallery.clear()
        missing = []
        for image in dataset.get("images") or []:
            image_id = image.get("id")
            found = per_image.get(image_id, [])
            label = image.get("source_name") or image_id
            item = QListWidgetItem(label if len(label) <= 14 else label[:13] + "…")
            item.setData(Qt.UserRole, image_id)
            item.setToolTip(findings.tooltip(image, found))
            item.setIcon(badge_icon(self.thumbs.get((name, image_id)), len(found), THUMB_SIZE))
            self.ds_gallery.addItem(item)
            item.setSelected(image_id in selected)
            if (name, image_id) not in self.thumbs:
                missing.append(image_id)
        self.ds_gallery.blockSignals(False)
        self._gallery_selection_changed()
        if self.controller is not None and (missing or self.tags_of != name):
            # After this slot: a gallery never blocks the import's last signal.
            QTimer.singleShot(0, lambda: self.guard(lambda: self._load_gallery(name, missing)))

    def _load_gallery(self, name, missing):
        """The thumbnails not held yet and, for a newly shown dataset, its tags."""
        if missing and self.controller.conn.has_method("datasets.thumbnails"):
            self.controller.load_thumbnails(name, missing, THUMB_SIZE)
        if self.tags_of != name:
            self.controller.tag_stats(name)

    def set_thumbnails(self, name, images):
        for image_id, image in images.items():
            self.thumbs[(name, image_id)] = image
        if self.dataset is None or self.dataset.get("name") != name:
            return
        per_image = findings.by_image(self.dataset)
        for i in range(self.ds_gallery.count()):
            item = self.ds_gallery.item(i)
            image_id = item.data(Qt.UserRole)
            if image_id in images:
                item.setIcon(badge_icon(images[image_id], len(per_image.get(image_id, [])), THUMB_SIZE))

    def _gallery_selection_changed(self):
        ids = self._selected_image_ids()
        images = {i.get("id"): i for i in (self.dataset or {}).get("images") or []}
        if len(ids) == 1 and ids[0] in images:
            self.ds_caption.setPlainText(images[ids[0]].get("caption", ""))
            self.ds_caption.setEnabled(True)
        else:
            self.ds_caption.setPlainText("")
            self.ds_caption.setEnabled(False)
        self.ds_caption_save.setEnabled(len(ids) == 1)

    def set_tags(self, name, rows):
        """The tag list: each tag with the number of captions holding it; the trigger marked and not
        selectable (it stays first whatever the batch actions do)."""
        self.tags_of = name
        trigger = ((self.dataset or {}).get("settings") or {}).get("trigger", "")
        selected = {item.data(Qt.UserRole) for item in self.ds_tags.selectedItems()}
        self.ds_tags.clear()
        for tag, count in rows:
            item = QListWidgetItem("%s  (%d)%s" % (tag, count, "  — trigger, stays first" if tag == trigger else ""))
            item.setData(Qt.UserRole, tag)
            if tag == trigger:
                item.setFlags(item.flags() & ~Qt.ItemIsSelectable)
                f = item.font()
                f.setItalic(True)
                item.setFont(f)
            self.ds_tags.addItem(item)
            item.setSelected(tag in selected)
