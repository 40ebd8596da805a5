"""What the docker's buttons do, without the widgets: the Krita tests drive these same methods.

Everything heavy happens in kilnd. This module gathers pixels from the document (canvas.py),
builds requests (kiln.requests), follows jobs through the shared Session, and puts results back
into the document — always on Krita's UI thread: the Session is pumped by a QTimer.
"""

import os
from dataclasses import dataclass, field
from typing import Optional

from PyQt5.QtCore import QObject, QTimer, pyqtSignal
from PyQt5.QtGui import QImage

from . import canvas
from .backend import findings, jobs, kiln, load_error, pixels, requests, session
from .canvas import UserError
from .training_flow import TrainingFlow, is_job_record

# One version for all of Kiln: the plugin's is that of the kiln package it carries.
PLUGIN_VERSION = getattr(kiln, "VERSION", "unknown") if kiln is not None else "unknown"
CLIENT_NAME = "krita-plugin " + PLUGIN_VERSION


def _settings_value(key, default=""):
    try:
        from krita import Krita
        return Krita.instance().readSetting("kiln", key, default) or default
    except Exception:  # noqa: BLE001 - outside Krita (never in practice)
        return default


def _save_setting(key, value):
    from krita import Krita
    Krita.instance().writeSetting("kiln", key, value)


def explain_connection_error(e):
    text = str(e)
    if "not found" in text or "looked at" in text:
        return ("Kiln's daemon (kilnd) is not running and its program was not found. Install Kiln so that kilnd "
                "is on PATH, set KILN_DAEMON, or choose the kilnd program with 'Daemon...'.\n\n" + text)
    return "Cannot reach Kiln's daemon (kilnd): " + text


class Connection(QObject):
    """The one Session to kilnd shared by every Kiln docker in this Krita, pumped every
    `interval_ms` by a Qt timer on the UI thread."""

    connectedChanged = pyqtSignal(bool, str)  # connected, a line about the daemon (or why not)
    jobUpdated = pyqtSignal(object)            # kiln.jobs.Progress of any job

    def __init__(self, socket=None, data_dir=None, daemon=None, interval_ms=40, remote=None, token=None):
        super().__init__()
        if kiln is None:
            raise UserError(load_error)
        # remote/token: a daemon on another machine (default: $KILN_REMOTE / $KILN_TOKEN, as every client)
        self.session = session.Session(name=CLIENT_NAME, socket=socket, data_dir=data_dir, daemon=daemon or None,
                                       remote=remote, token=token)
        self.session.add_disconnect_listener(self._on_disconnect)
        self.session.add_listener(self.jobUpdated.emit)
        self.session.on_callback_error = self._on_callback_error
        self.callback_errors = []
        self._pumping = False
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.pump)
        self.timer.start(interval_ms)

    def pump(self):
        # Krita may run a nested event loop while a callback edits the image (its busy-wait on
        # the image's strokes), and this timer fires inside it: never pump re-entrantly.
        if self._pumping:
            return
        self._pumping = True
        try:
            self.session.pump()
        finally:
            self._pumping = False

    def _on_callback_error(self, e):
        import traceback
        traceback.print_exception(type(e), e, e.__traceback__)
        self.callback_errors.append(e)

    def _on_disconnect(self, reason):
        self.connectedChanged.emit(False, "Disconnected from kilnd: %s" % reason)

    def ensure(self):
        """Connects when needed (starting kilnd when it is not running). Raises UserError."""
        was = self.session.connected
        try:
            self.session.ensure_connected()
        except kiln.ConnectionError as e:
            raise UserError(explain_connection_error(e))
        except kiln.RpcError as e:
            raise UserError("kilnd refused the connection: %s" % e)
        if not was:
            info = self.session.client.server_info
            device = str(info.get("device", "?"))  # e.g. "cpu (2 threads, LibTorch 1.13.0)"
            self.connectedChanged.emit(True, "kilnd %s on %s" % (info.get("version", "?"), device.split(" (")[0]))
        return self.session

    def call(self, method, params=None):
        self.ensure()
        try:
            return self.session.call(method, params or {})
        except kiln.ConnectionError as e:
            raise UserError(explain_connection_error(e))
        except kiln.RpcError as e:
            raise UserError(str(e))

    def has_method(self, method):
        self.ensure()
        return self.session.has_method(method)

    def close(self):
        self.timer.stop()
        self.session.close()


_connection = None


def connection():
    """The shared Connection, created on first use from the plugin's settings."""
    global _connection
    if _connection is None:
        _connection = Connection(socket=_settings_value("socket") or None, data_dir=_settings_value("data_dir") or None,
                                 daemon=_settings_value("daemon") or None)
    return _connection


def set_daemon_path(path):
    """Remembers the kilnd program to start and makes the next connection use it."""
    global _connection
    _save_setting("daemon", path)
    if _connection is not None:
        _connection.close()
        _connection = None


def qimage_from(image):
    """A QImage copy of a kiln.Image (RGB or RGBA u8), for previews."""
    fmt = {3: QImage.Format_RGB888, 4: QImage.Format_RGBA8888, 1: QImage.Format_Grayscale8}[image.channels]
    data = image.tobytes()
    return QImage(data, image.width, image.height, image.width * image.channels, fmt).copy()


def layer_name(settings, seed):
    prompt = " ".join(settings.prompt.split())
    if len(prompt) > 40:
        prompt = prompt[:39] + "…"
    return "Kiln %s: %s (seed %s)" % (settings.mode, prompt, seed)


@dataclass
class GenerationJob:
    id: str
    doc: object
    above: object
    region: object
    settings: object
    mask: Optional[bytes] = None
    inputs: tuple = ()  # the shm images sent, kept until the job ends


@dataclass
class DatasetImport:
    name: str
    sources: list = field(default_factory=list)   # layer names sent, in order
    skipped: list = field(default_factory=list)   # (layer name, why)
    inputs: list = field(default_factory=list)    # shm images, kept until the import ends
    job_id: Optional[str] = None


class Controller(QObject, TrainingFlow):
    status = pyqtSignal(str)                     # one line for the status label
    error = pyqtSignal(str)                      # something failed: the docker shows a message box
    preview = pyqtSignal(QImage)                 # generation preview, or the latest training sample
    progress = pyqtSignal(int, int)              # step, total
    modelsChanged = pyqtSignal(list)             # model names
    lorasChanged = pyqtSignal(list)              # LoRA names
    datasetsChanged = pyqtSignal(list)           # dataset names
    datasetShown = pyqtSignal(object, object)    # datasets.get result, the DatasetImport (or None)
    generationFinished = pyqtSignal(object, object)  # new layer (None unless done), final job record
    trainingFinished = pyqtSignal(object)        # final job record
    gridOpened = pyqtSignal(object, str)         # the validation grid's document, its PNG
    busyChanged = pyqtSignal(str, bool)          # "generate" / "train" / "dataset" / "autotag", busy
    thumbnailsReady = pyqtSignal(str, object)    # dataset name, {image id: QImage}
    tagsChanged = pyqtSignal(str, list)          # dataset name, [(tag, count)] most frequent first
    planReady = pyqtSignal(object)               # a train.plan answer
    trainingsListed = pyqtSignal(list)           # [kiln.training.TrainingEntry] to attach to
    liveUpdated = pyqtSignal(object, int, bool, bool)  # LiveTraining, new loss points, new samples?, new files?
    trainingShown = pyqtSignal(object)           # the LiveTraining now followed (started or attached)
    epochsReady = pyqtSignal(object, object)     # [kiln.training.EpochRow], the loras.get answer (or None)
    loraUsed = pyqtSignal(str, int)              # LoRA name, the epoch <lora:name:w> now gives

    def __init__(self, conn=None):
        super().__init__()
        self.conn = conn or connection()
        self.generation = None
        self.training = None
        self.dataset_import = None
        self.last_grid_path = None
        # Extra lora.grid params (steps, strengths, width, height, seed...) for every grid.
        self.grid_options = {}
        self.auto_tag_job = None    # (job id, dataset name)
        self.last_plan = None
        self.last_epochs = []       # EpochRows of the training shown last
        self.shown_training = None  # the TrainingJob whose view is shown (followed, or ended)
        self.history_interval = 0.5  # seconds between train.history fetches while a training runs

    # -- library ---------------------------------------------------------------------------

    def refresh_models(self):
        from .backend import sizes
        models = self.conn.call("models.list").get("models", [])
        names = [m.get("name", "") for m in models]
        self.model_sizes = sizes.model_sizes(models)
        self.modelsChanged.emit(names)
        return names

    def native_size(self, model):
        """The side `model` works at (512 for SD 1.x, 1024 for SDXL; kiln.sizes), for size notes."""
        from .backend import sizes
        return getattr(self, "model_sizes", {}).get(model, sizes.SD1_SIZE)

    def add_model(self, path):
        """Registers a checkpoint file or diffusers folder (never copied). Returns its name."""
        self.conn.ensure()
        try:
            path = self.conn.session.model_path_for_daemon(path)  # refuses a file of this computer over a remote daemon
        except ValueError as e:
            raise UserError(str(e))
        entry = self.conn.call("models.add", {"path": path})
        self.refresh_models()
        self.status.emit("Added model '%s'." % entry.get("name", path))
        return entry.get("name", "")

    def refresh_loras(self):
        if not self.conn.has_method("loras.list"):
            self.lorasChanged.emit([])
            return []
        loras = self.conn.call("loras.list").get("loras", [])
        names = [l.get("name", "") if isinstance(l, dict) else str(l) for l in loras]
        self.lorasChanged.emit(names)
        return names

    def refresh_datasets(self):
        if not self.conn.has_method("datasets.list"):
            self.datasetsChanged.emit([])
            return []
        sets = self.conn.call("datasets.list").get("datasets", [])
        names = [d.get("name", "") if isinstance(d, dict) else str(d) for d in sets]
        self.datasetsChanged.emit(names)
        return names

    def _require(self, method, what):
        if not self.conn.has_method(method):
            raise UserError("This kilnd does not offer %s yet (no '%s' method): update Kiln." % (what, method))

    def _show_preview(self, ref):
        try:
            self.preview.emit(qimage_from(self.conn.session.read_image(ref)))
        except kiln.Error:
            pass  # previews expire; the next one will do

    # -- generate --------------------------------------------------------------------------

    def generate(self, doc, settings, node=None, source="layer"):
        """Starts a generation into `doc` (txt2img, img2img, inpaint or a product shot per
        settings.mode) from the layer `node` (default: the active layer) or, with source="visible",
        the visible image. Returns the job id; the new layer arrives with generationFinished.
        Raises UserError."""
        if self.generation is not None:
            raise UserError("A generation is already running; cancel it or wait for it.")
        canvas.check_document(doc)
        node = node or doc.activeNode()
        if settings.mode == requests.SHOT:
            return self._start_shot(doc, settings, node)
        region = canvas.generation_region(doc, settings.mode, self.native_size(settings.model))
        init = mask = mask_bytes = None
        if settings.mode in ("img2img", "inpaint"):
            bgra = canvas.read_source(doc, node, region.rect, visible=(source == "visible"))
            # kilnd reads RGB: flatten transparency onto white, as the paper shows it.
            init = self.conn.session.create_image(region.width, region.height, 3)
            init.write(pixels.flatten_onto(bgra, region.width, region.height), "BGRA")
        if settings.mode == "inpaint":
            mask_bytes = canvas.read_selection_mask(doc, region.rect)
            if not any(mask_bytes):
                raise UserError("The selection is empty: select the area to repaint.")
            mask = self.conn.session.create_image(region.width, region.height, 1)
            mask.write(mask_bytes, "L")
        params = requests.generate_params(settings, region.width, region.height, init, mask)
        record = self.conn.call("generate", params)
        job = GenerationJob(record["id"], doc, node, region, settings, mask_bytes, (init, mask))
        self.generation = job
        self.busyChanged.emit("generate", True)
        self.status.emit(("%s " % region.note if region.note else "") + "Generating %dx%d..." % (region.width, region.height))
        self.conn.session.watch(job.id, self._on_generation)
        return job.id

    def _start_shot(self, doc, settings, node):
        """A product shot over the whole canvas: `node` is the product (a layer with transparency);
        it stays where it is (explicit placement at scale 1) and is never modified; the scenes come
        back as layers below it."""
        self._require("shot", "product shots")
        if node is None or not canvas.is_layer(node) or canvas.is_group(node):
            raise UserError("Select the product's layer (a paint layer with the product cut out on transparency).")
        exported = canvas.export_layer(node)
        if exported is None:
            raise UserError("The layer '%s' is empty: paint or paste the product cut-out into it." % node.name())
        bgra, rect = exported
        region = canvas.canvas_region(doc, self.native_size(settings.model))
        product = self.conn.session.create_image(rect[2], rect[3], 4)
        product.write(bgra, "BGRA")
        params = requests.shot_params(settings, region.width, region.height, product, rect[0] - region.x,
                                      rect[1] - region.y)
        record = self.conn.call("shot", params)
        job = GenerationJob(record["id"], doc, node, region, settings, None, (product,))
        self.generation = job
        self.busyChanged.emit("generate", True)
        self.status.emit(("%s " % region.note if region.note else "") +
                         "Painting a %dx%d scene around '%s'..." % (region.width, region.height, node.name()))
        self.conn.session.watch(job.id, self._on_generation)
        return job.id

    def cancel_generation(self):
        if self.generation is not None:
            self.conn.call("jobs.cancel", {"id": self.generation.id})

    def _on_generation(self, p):
        job = self.generation
        if job is None or p.job_id != job.id:
            return
        if p.preview and not p.finished:
            self._show_preview(p.preview)
        self.progress.emit(p.step, p.total)
        if not p.finished:
            self.status.emit(jobs.describe(p))
            return
        self.generation = None
        self.busyChanged.emit("generate", False)
        record = self.conn.session.tracker.get(job.id) or {}
        node = None
        if p.state == "done":
            try:
                if job.settings.mode == requests.SHOT:
                    node = self._insert_shot(job, record.get("result") or {})
                else:
                    node = self._insert_result(job, record.get("result") or {})
            except UserError as e:
                self.error.emit(str(e))
        elif p.state == "failed":
            self.error.emit("Generation failed: %s" % (p.error or "see kilnd's log"))
        else:
            self.status.emit("Generation cancelled.")
        self.generationFinished.emit(node, record)

    def _insert_result(self, job, result):
        images = result.get("images") or []
        if not images or "image" not in images[0]:
            raise UserError("kilnd finished without an image.")
        first = images[0]
        # A job's result block is shared with other clients: map and copy it, never take it.
        img = self.conn.session.read_image(first["image"])
        w, h = job.region.width, job.region.height
        if (img.width, img.height) != (w, h):
            raise UserError("kilnd returned a %dx%d image for a %dx%d area." % (img.width, img.height, w, h))
        self.preview.emit(qimage_from(img))  # the preview ends on the result
        bgra = img.tobytes("BGRA")
        if job.mask is not None:
            bgra = pixels.multiply_alpha(bgra, job.mask, w, h)  # only the selection changes
        if not canvas.is_open(job.doc):
            raise UserError("The document was closed before the image was ready; it is saved as %s."
                            % first.get("png", "a PNG in Kiln's outputs"))
        name = layer_name(job.settings, first.get("seed", result.get("seed", "?")))
        node = canvas.insert_layer(job.doc, bgra, job.region.rect, name, above=job.above)
        self.status.emit("Added layer '%s'." % name)
        return node

    def _insert_shot(self, job, result):
        """One layer per variation just below the product layer (the first shown, the others
        hidden), holding the scene alone: with the product layer above it, the canvas shows the
        product shot while the product's own pixels stay in their own, untouched layer."""
        images = result.get("images") or []
        if not images or "scene" not in images[0]:
            raise UserError("kilnd finished the product shot without an image.")
        if not canvas.is_open(job.doc):
            raise UserError("The document was closed before the shot was ready; it is saved as %s."
                            % images[0].get("png", "a PNG in Kiln's outputs"))
        w, h = job.region.width, job.region.height
        first = None
        below = job.above  # each variation goes under the one before: the first sits just below the product
        for entry in images:
            img = self.conn.session.read_image(entry["scene"])
            if (img.width, img.height) != (w, h):
                raise UserError("kilnd returned a %dx%d scene for a %dx%d canvas." % (img.width, img.height, w, h))
            name = layer_name(job.settings, entry.get("seed", "?"))
            node = canvas.insert_layer_below(job.doc, img.tobytes("BGRA"), job.region.rect, name, below)
            below = node
            if first is None:
                first = node
                self.preview.emit(qimage_from(self.conn.session.read_image(entry["image"])))
            else:
                node.setVisible(False)
        job.doc.setActiveNode(job.above)  # the product stays the active layer, ready for the next shot
        job.doc.refreshProjection()
        at = result.get("placement", {})
        self.status.emit("Added %d scene layer%s below '%s' (product at %s, %s)." % (
            len(images), "" if len(images) == 1 else "s", job.above.name(), at.get("x"), at.get("y")))
        return first

    # -- datasets --------------------------------------------------------------------------

    def add_layers_to_dataset(self, doc, nodes, settings):
        """Sends `nodes` (selected layers, or one group's visible children) as training images of
        the dataset settings.name, creating it with settings' preset and trigger when new. Each
        layer is trimmed to its opaque pixels and keeps its alpha. The dataset arrives with
        datasetShown. Returns the DatasetImport."""
        if self.dataset_import is not None:
            raise UserError("Layers are still being added to a dataset; wait for it.")
        canvas.check_document(doc)
        self._require("datasets.add_images", "datasets")
        create = requests.dataset_create_params(settings)
        layers = canvas.dataset_layers(nodes)
        if not layers:
            raise UserError("Select the layers to use as training images (or one group whose visible layers are the images).")
        imp = DatasetImport(create["name"])
        entries = []
        for node in layers:
            exported = canvas.export_layer(node)
            if exported is None:
                imp.skipped.append((node.name(), "the layer is empty or fully transparent"))
                continue
            bgra, rect = exported
            img = self.conn.session.create_image(rect[2], rect[3], 4)
            img.write(bgra, "BGRA")
            imp.inputs.append(img)
            imp.sources.append(node.name())
            entries.append(requests.dataset_image_entry(img, node.name()))
        if not entries:
            raise UserError("Every chosen layer is empty: " + ", ".join(n for n, _ in imp.skipped))
        self._ensure_dataset(create)
        result = self.conn.call("datasets.add_images", {"name": imp.name, "images": entries})
        self.dataset_import = imp
        self.busyChanged.emit("dataset", True)
        if is_job_record(result):
            imp.job_id = result["id"]
            self.status.emit("Adding %d layers to '%s'..." % (len(entries), imp.name))
            self.conn.session.watch(imp.job_id, self._on_dataset_job)
        else:
            self._finish_import(result)
        return imp

    def _ensure_dataset(self, create):
        try:
            self.conn.session.call("datasets.get", {"name": create["name"]})
        except kiln.RpcError as e:
            if e.code != kiln.NOT_FOUND:
                raise UserError(str(e))
            self.conn.call("datasets.create", create)

    def _on_dataset_job(self, p):
        imp = self.dataset_import
        if imp is None or p.job_id != imp.job_id:
            return
        self.progress.emit(p.step, p.total)
        if not p.finished:
            self.status.emit(jobs.describe(p))
            return
        record = self.conn.session.tracker.get(p.job_id) or {}
        if p.state != "done":
            self.dataset_import = None
            self.busyChanged.emit("dataset", False)
            self.error.emit("Adding layers to '%s' %s: %s" % (imp.name, p.state, p.error or ""))
            return
        self._finish_import(record.get("result") or {})

    def _finish_import(self, result):
        imp, self.dataset_import = self.dataset_import, None
        self.busyChanged.emit("dataset", False)
        imp.inputs = []
        errors = result.get("errors") or []
        dataset = self.show_dataset(imp.name, imp)
        added = result.get("added") or 0  # a count
        if isinstance(added, list):
            added = len(added)
        msg = "Added %d image%s to '%s'. %s" % (added, "" if added == 1 else "s", imp.name, findings.summary(dataset))
        problems = ["%s: %s" % (e.get("source", "?"), e.get("message", "")) for e in errors if isinstance(e, dict)]
        problems += ["%s: %s" % s for s in imp.skipped]
        if problems:
            msg += " Not added: " + "; ".join(problems)
        self.status.emit(msg)
        self.refresh_datasets()
        return dataset

    def show_dataset(self, name, imp=None):
        dataset = self.conn.call("datasets.get", {"name": name})
        self.datasetShown.emit(dataset, imp)
        return dataset

    def remove_dataset_images(self, name, ids):
        """Drops the images `ids` from the dataset `name` (what a finding's "remove this one" asks);
        the dataset arrives again with datasetShown."""
        if self.dataset_import is not None:
            raise UserError("Layers are still being added to a dataset; wait for it.")
        self._require("datasets.remove_images", "datasets")
        dataset = self.conn.call("datasets.remove_images", {"name": name, "ids": list(ids)})
        self.datasetShown.emit(dataset, None)
        self.status.emit("Removed %d image%s from '%s'. %s" % (len(ids), "" if len(ids) == 1 else "s", name,
                                                               findings.summary(dataset)))
        return dataset

    # -- dataset editing: gallery, captions, tags, auto-tag ----------------------------------

    def load_thumbnails(self, name, ids=None, size=96, source="training"):
        """Previews of the dataset's images ({id: QImage}, also sent with thumbnailsReady): kilnd
        hands each over in shared memory and this takes it (the block goes once it is copied)."""
        self._require("datasets.thumbnails", "dataset galleries")
        params = {"name": name, "size": int(size), "source": source}
        if ids:
            params["ids"] = list(ids)
        answer = self.conn.call("datasets.thumbnails", params)
        images = {}
        for entry in answer.get("images") or []:
            ref = entry.get("image")
            if not ref:
                continue
            try:
                images[entry["id"]] = qimage_from(self.conn.session.read_image(ref, True))
            except kiln.Error as e:
                self.status.emit("No preview of %s: %s" % (entry.get("id"), e))
        self.thumbnailsReady.emit(name, images)
        return images

    def set_caption(self, name, image_id, caption):
        """Saves one image's caption (kilnd puts the trigger first and drops repeated tags);
        returns the image as stored. The dataset arrives again with datasetShown."""
        if not str(caption or "").strip():
            raise UserError("A caption needs at least the trigger word.")
        image = self.conn.call("datasets.set_caption", {"name": name, "id": image_id, "caption": caption})
        self.show_dataset(name)
        self.tag_stats(name)
        self.status.emit("Caption of %s saved: %s" % (image_id, image.get("caption", "")))
        return image

    def tag_stats(self, name):
        answer = self.conn.call("datasets.tag_stats", {"name": name})
        rows = [(t.get("tag", ""), int(t.get("count", 0))) for t in answer.get("tags") or [] if isinstance(t, dict)]
        self.tagsChanged.emit(name, rows)
        return rows

    def edit_tags(self, name, action, tags, value="", ids=None):
        """One batch action on every caption (or `ids`'): replace, remove, move_to_end or add.
        Raises UserError in plain words (nothing selected, no new tag typed)."""
        try:
            params = requests.tag_edit_params(name, action, tags, value, ids)
        except requests.RequestError as e:
            raise UserError(str(e))
        dataset = self.conn.call("datasets.tags", params)
        self.datasetShown.emit(dataset, None)
        self.tag_stats(name)
        what = {"replace": "Replaced '%s' with '%s'" % (", ".join(tags), value), "remove": "Removed " + ", ".join(tags),
                "move_to_end": "Moved %s to the end" % ", ".join(tags),
                "add": "Added %s" % ", ".join(params.get("add", []))}[action]
        self.status.emit("%s in the captions of '%s'; the trigger stays first." % (what, name))
        return dataset

    def auto_tag(self, name, threshold=0.35, replace=False):
        """Tags every image with the tagger installed in kilnd's data dir (a job); the dataset and
        its tags arrive again when it is done. Returns the job id."""
        if self.auto_tag_job is not None:
            raise UserError("Auto-tagging is already running; wait for it.")
        self._require("datasets.auto_tag", "auto-tagging")
        try:
            params = requests.auto_tag_params(name, threshold, replace)
        except requests.RequestError as e:
            raise UserError(str(e))
        record = self.conn.call("datasets.auto_tag", params)
        self.auto_tag_job = (record["id"], name)
        self.busyChanged.emit("autotag", True)
        self.status.emit("Tagging the images of '%s'..." % name)
        self.conn.session.watch(record["id"], self._on_auto_tag)
        return record["id"]

    def _on_auto_tag(self, p):
        if self.auto_tag_job is None or p.job_id != self.auto_tag_job[0]:
            return
        self.progress.emit(p.step, p.total)
        if not p.finished:
            self.status.emit("Auto-tag: " + jobs.describe(p))
            return
        name = self.auto_tag_job[1]
        self.auto_tag_job = None
        self.busyChanged.emit("autotag", False)
        if p.state != "done":
            self.error.emit("Auto-tagging '%s' %s: %s" % (name, p.state, p.error or ""))
            return
        result = (self.conn.session.tracker.get(p.job_id) or {}).get("result") or {}
        self.show_dataset(name)
        self.tag_stats(name)
        self.status.emit("Tagged %s image%s of '%s'; the trigger stays first." % (
            result.get("tagged", "the"), "" if result.get("tagged") == 1 else "s", name))

    def original_path(self, name, image_id):
        dataset = self.conn.call("datasets.get", {"name": name})
        image = next((i for i in dataset.get("images") or [] if i.get("id") == image_id), None)
        if image is None or not image.get("original_file"):
            raise UserError("The dataset '%s' has no image %s." % (name, image_id))
        path = self.local_file(os.path.join(dataset.get("folder", ""), image["original_file"]))
        if not path or not os.path.exists(path):
            raise UserError("The original of %s could not be read from kilnd's machine (%s)." % (image_id, path))
        return path

    def local_file(self, daemon_path, fresh=False):
        """A file kilnd named as a path here (downloaded from a remote kilnd: kiln.session), or
        "" when it cannot be had (gone, or the connection lost)."""
        try:
            return self.conn.session.local_file(daemon_path, fresh=fresh) or ""
        except (kiln.Error, OSError):
            return ""

    def open_original(self, name, image_id):
        """Opens the image's untouched original as a new document. Returns the document."""
        doc = canvas.open_image_document(self.original_path(name, image_id))
        self.status.emit("Opened the original of %s." % image_id)
        return doc
