"""Qt pieces the docker's tabs share: the base of a tab, and widgets Krita has no stock version of
(the loss curve, gallery icons with a findings badge, a section that folds). Drawing only: the
numbers come from kiln.training."""

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPainterPath, QPen, QPixmap
from PyQt5.QtWidgets import QComboBox, QFormLayout, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from .backend import training


class Tab(QWidget):
    """One tab of the docker: its widgets and what its buttons do. The docker (`docker`) owns the
    controller, the status line and the error messages every tab reports through."""

    def __init__(self, docker):
        super().__init__()
        self.docker = docker

    @property
    def controller(self):
        return self.docker.controller

    def guard(self, fn):
        return self.docker.guard(fn)

    def set_status(self, text):
        self.docker.set_status(text)

    def show_error(self, text):
        self.docker.show_error(text)


def scroll(widget):
    """A tab's content in a scroll area: a docker is narrow and its tabs are tall. It scrolls down
    only: the content follows the docker's width (see narrow_form, narrow_combo)."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    area.setWidget(widget)
    return area


def narrow_form(form):
    """A form that fits a narrow docker: a field that does not fit beside its label goes below it."""
    form.setRowWrapPolicy(QFormLayout.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
    return form


def narrow_combo(combo, chars=8):
    """A picker whose long entries (LoRA or training names) do not widen the docker."""
    combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
    return combo


def fill_combo(combo, names):
    """Replaces a picker's items, keeping what was picked (or typed, in an editable one)."""
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


class LossCurve(QWidget):
    """The loss of the followed training at every step (thin, light) and smoothed (thick), the
    epochs as dashed lines, drawn again whenever points arrive."""

    MARGIN = (44, 8, 8, 18)  # left, top, right, bottom: room for the axis labels

    def __init__(self, parent=None):
        super().__init__(parent)
        self.live = None
        self.total = 0
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip("Training loss at every step (thin) and smoothed (thick); dashed lines end each epoch. "
                        "It should fall, then level out.")

    def set_live(self, live, total=0):
        self.live = live
        if total:
            self.total = total
        self.update()

    def curves(self):
        if self.live is None:
            return None
        return training.plot_curves(self.live.loss, self.width(), self.height(), self.total, margin=self.MARGIN)

    def paintEvent(self, _event):
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        pal = self.palette()
        left, top, right, bottom = self.MARGIN
        box = QRectF(left, top, self.width() - left - right, self.height() - top - bottom)
        p.fillRect(self.rect(), pal.base())
        p.setPen(QPen(pal.mid().color(), 1))
        p.drawRect(box)
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
        p.setFont(small)
        c = self.curves()
        if c is None:
            p.setPen(pal.text().color())
            p.drawText(box, Qt.AlignCenter, "The loss appears here while a training runs.")
            return
        p.setPen(pal.text().color())
        p.drawText(QRectF(0, top - 4, left - 4, 14), Qt.AlignRight, "%.3f" % c.y_max)
        p.drawText(QRectF(0, box.bottom() - 10, left - 4, 14), Qt.AlignRight, "%.3f" % c.y_min)
        p.drawText(QRectF(left, box.bottom() + 2, box.width(), 14), Qt.AlignRight, "step %d" % c.x_max)
        p.drawText(QRectF(left, box.bottom() + 2, box.width(), 14), Qt.AlignLeft, "0")
        dash = QPen(pal.mid().color(), 1, Qt.DashLine)
        p.setPen(dash)
        for x in c.epoch_x:
            p.drawLine(QPointF(x, box.top()), QPointF(x, box.bottom()))
        raw = QColor(pal.highlight().color())
        raw.setAlpha(110)
        p.setPen(QPen(raw, 1))
        p.drawPath(_path(c.raw))
        p.setPen(QPen(QColor(230, 120, 30), 2))
        p.drawPath(_path(c.smooth))
        p.end()


def _path(points):
    path = QPainterPath()
    for i, (x, y) in enumerate(points):
        if i == 0:
            path.moveTo(x, y)
        else:
            path.lineTo(x, y)
    if len(points) == 1:
        path.addEllipse(QPointF(*points[0]), 1.5, 1.5)
    return path


def badge_icon(image, count, size):
    """A gallery icon: the thumbnail centred on a square, with a warning badge holding the number
    of findings in its corner (none when count is 0)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.Antialiasing)
    if image is not None and not image.isNull():
        scaled = image.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        p.drawImage((size - scaled.width()) // 2, (size - scaled.height()) // 2, scaled)
    else:
        p.fillRect(0, 0, size, size, QColor(128, 128, 128, 60))
    if count:
        d = max(14, size // 4)
        rect = QRectF(size - d - 1, 1, d, d)
        p.setBrush(QColor(220, 120, 20))
        p.setPen(QPen(QColor(255, 255, 255), 1.5))
        p.drawEllipse(rect)
        f = QFont()
        f.setBold(True)
        f.setPixelSize(int(d * 0.65))
        p.setFont(f)
        p.drawText(rect, Qt.AlignCenter, "!" if count == 1 else str(count))
    p.end()
    return QIcon(pix)


def sample_icon(path, size, cache, local_file=None):
    """A sample PNG as an icon (kept in `cache` by kilnd's path: samples never change).
    local_file(path) gives the file on this machine (downloaded from a remote kilnd)."""
    icon = cache.get(path)
    if icon is None:
        image = QImage(local_file(path) if local_file else path)
        icon = QIcon(QPixmap.fromImage(image.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation))) \
            if not image.isNull() else QIcon()
        cache[path] = icon
    return icon


class Section(QWidget):
    """A titled part of a tab that folds away (the Advanced parameters)."""

    def __init__(self, title, content, expanded=False, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.button = QToolButton(self)
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.button.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.button.toggled.connect(self.set_expanded)
        layout.addWidget(self.button)
        self.content = content
        layout.addWidget(content)
        self.set_expanded(expanded)

    def set_expanded(self, expanded):
        if self.button.isChecked() != expanded:
            self.button.setChecked(expanded)
            return
        self.button.setArrowType(Qt.DownArrow if expanded else Qt.RightArrow)
        self.content.setVisible(expanded)
