"""A style LoRA from renders: images (chosen Image datablocks, snapshots of the Render Result) or a
folder of renders become a Kiln dataset with the `style` preset, then kilnd trains a LoRA on it.

The run is a small state machine like the animation's: the dataset import is a kilnd job, the
training another; their progress (step, epoch, loss, ETA) and the training's sample images reach
the panel through the shared Session. It shares kilnd's one queue with Krita, Photoshop and the
CLI: a restyle asked for during the training runs first (the training yields between steps).
"""

import os

import bpy

from . import image_io
from .backend import jobs, kiln, requests
from .connection import UserError


def _is_job_record(value):
    return isinstance(value, dict) and "id" in value and "state" in value and "type" in value


class TrainingRun:
    def __init__(self, ctl, scene, dataset, train, images=(), folder=""):
        """dataset: kiln.requests.DatasetSettings (preset style); train: TrainSettings; images:
        Image datablocks; folder: a folder of rendered images (kilnd reads it)."""
        self.ctl = ctl
        self.scene_name = scene.name if scene is not None else ""
        self.dataset = dataset
        self.train_settings = train
        self.folder = bpy.path.abspath(folder) if folder else ""
        self.image_names = [im.name for im in images]
        self.state = "import"              # import -> training -> done / failed / cancelled
        self.import_id = None
        self.train_id = None
        self.inputs = []
        self.added = 0
        self.import_errors = []
        self.last_sample = ""
        self.sample_image = None
        self.loss = None
        self.finished = False
        self.cancelled = False
        self.result = None

    def start(self):
        ctl = self.ctl
        try:
            create = requests.dataset_create_params(self.dataset)
            params = requests.train_params(self.train_settings)
        except requests.RequestError as e:
            raise UserError(str(e))
        scene = bpy.data.scenes.get(self.scene_name)
        entries = []
        for name in self.image_names:
            image = bpy.data.images.get(name)
            if image is None:
                raise UserError("The image '%s' is gone; remove it from the list." % name)
            rgba, w, h = image_io.read_image(image, scene)
            shm = ctl.conn.session.create_image(w, h, 4)
            shm.write(rgba, "RGBA")
            self.inputs.append(shm)
            entries.append(requests.dataset_image_entry(shm, name))
        if self.folder and not os.path.isdir(self.folder):
            raise UserError("The folder of renders '%s' does not exist." % self.folder)
        if not entries and not self.folder:
            raise UserError("Choose the renders to learn the style from: add images (or the Render Result) to the "
                            "list, or pick a folder of renders.")
        ctl.conn.ensure()
        for method, what in (("datasets.add_images", "datasets"), ("train", "training")):
            if not ctl.conn.has_method(method):
                raise UserError("This kilnd does not offer %s yet (no '%s' method): update Kiln." % (what, method))
        self.train_params = params
        self._ensure_dataset(create)
        add = {"name": create["name"]}
        if entries:
            add["images"] = entries
        if self.folder:
            add["paths"] = [self.folder]
        result = ctl.conn.call("datasets.add_images", add)
        ctl.train_status = "Adding %d image%s%s to the dataset '%s'..." % (
            len(entries), "" if len(entries) == 1 else "s", " and the folder's renders" if self.folder else "", create["name"])
        ctl.train_progress = 0.0
        if _is_job_record(result):
            self.import_id = result["id"]
            ctl.conn.session.watch(self.import_id, self._on_import)
        else:
            self._imported(result)
        ctl.changed()

    def _ensure_dataset(self, create):
        try:
            self.ctl.conn.session.call("datasets.get", {"name": create["name"]})
        except kiln.RpcError as e:
            if e.code != kiln.NOT_FOUND:
                raise UserError(str(e))
            self.ctl.conn.call("datasets.create", create)

    def step(self):
        pass  # everything moves on notifications

    # -- the dataset -------------------------------------------------------------------------

    def _on_import(self, p):
        if p.job_id != self.import_id or self.finished:
            return
        self.ctl.train_progress = p.fraction
        if not p.finished:
            self.ctl.train_status = "Dataset: " + jobs.describe(p)
            self.ctl.changed()
            return
        self.inputs = []
        if p.state != "done":
            self._end("Adding the renders to '%s' %s: %s" % (self.dataset.name, p.state, p.error or ""),
                      "ERROR" if p.state == "failed" else "WARNING")
            return
        record = self.ctl.conn.session.tracker.get(p.job_id) or {}
        self._imported(record.get("result") or {})

    def _imported(self, result):
        self.inputs = []
        added = result.get("added") or 0
        self.added = len(added) if isinstance(added, list) else int(added)
        self.import_errors = ["%s: %s" % (e.get("source", "?"), e.get("message", ""))
                              for e in result.get("errors") or [] if isinstance(e, dict)]
        if self.cancelled:
            self._end("Cancelled before the training started (the dataset '%s' keeps its images)." % self.dataset.name,
                      "WARNING")
            return
        if self.added == 0 and not self._dataset_has_images():
            self._end("No image could be added to '%s': %s" % (self.dataset.name, "; ".join(self.import_errors) or "?"),
                      "ERROR")
            return
        record = self.ctl.conn.call("train", self.train_params)
        self.train_id = record["id"]
        self.state = "training"
        line = "Training '%s' on %s (%d image%s added)..." % (self.train_params["name"], self.train_params["base"],
                                                             self.added, "" if self.added == 1 else "s")
        if self.import_errors:
            line += " Not added: " + "; ".join(self.import_errors)
        self.ctl.train_status = line
        self.ctl.conn.session.watch(self.train_id, self._on_training)
        self.ctl.changed()

    def _dataset_has_images(self):
        try:
            return bool(self.ctl.conn.call("datasets.get", {"name": self.dataset.name}).get("images"))
        except UserError:
            return False

    # -- the training ------------------------------------------------------------------------

    def _on_training(self, p):
        if p.job_id != self.train_id or self.finished:
            return
        self.ctl.train_progress = p.fraction
        self.ctl.train_status = jobs.describe(p)
        if p.loss is not None:
            self.loss = p.loss
        if p.preview:  # a sample image just made (kilnd sends it as the job's preview)
            self._show_sample(ref=p.preview)
        else:
            self._show_sample(path=p.extra.get("last_sample"))
        self.ctl.changed()
        if not p.finished:
            return
        record = self.ctl.conn.session.tracker.get(p.job_id) or {}
        self.result = record
        samples = (record.get("result") or {}).get("samples") or []
        if samples:
            self._show_sample(path=samples[-1])
        name = self.train_params["name"]
        if p.state == "done":
            self.ctl.refresh()
            listed = name in self.ctl.loras
            self._end("The style LoRA '%s' is trained%s: pick it in the LoRA list (<lora:%s:0.8>)."
                      % (name, " (loss %.4f)" % self.loss if self.loss is not None else "", name)
                      if listed else "Training finished, but '%s' is not in kilnd's LoRA list." % name,
                      "INFO" if listed else "ERROR")
        elif p.state == "failed":
            self._end("Training '%s' failed: %s" % (name, p.error or "see kilnd's log"), "ERROR")
        else:
            self._end("Training '%s' was cancelled; its saved epochs stay in kilnd's library." % name, "WARNING")

    def _show_sample(self, ref=None, path=None):
        """Shows a training sample in the 'Kiln Training Sample' image (the panel shows its icon)."""
        try:
            if ref is not None:
                img = self.ctl.conn.session.read_image(ref)
                rgb, w, h, ch = img.tobytes("RGB"), img.width, img.height, 3
            elif isinstance(path, str) and path and path != self.last_sample:
                local = self.ctl.conn.session.local_file(path)  # downloaded from a remote kilnd
                if not os.path.exists(local):
                    return
                self.last_sample = path
                rgb, w, h = image_io.read_file(local)
                ch = 4
            else:
                return
        except (kiln.Error, UserError):
            return  # a sample that expired or vanished: the next one will do
        self.sample_image = image_io.set_image(image_io.SAMPLE_NAME, rgb, w, h, ch).name

    def cancel(self):
        self.cancelled = True
        job = self.train_id or self.import_id
        if job:
            self.ctl.conn.call("jobs.cancel", {"id": job})

    def _end(self, line, level):
        self.finished = True
        self.state = {"INFO": "done", "ERROR": "failed"}.get(level, "cancelled")
        if self.ctl.training is self:
            self.ctl.training = None
        self.ctl.train_status = line
        self.ctl.report(level, line)
