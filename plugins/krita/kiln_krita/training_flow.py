"""What the Train tab's buttons do, without the widgets (a part of the Controller, which the Krita
tests drive): the plan before training, starting a training or attaching to one started elsewhere,
following it live from train.history (loss, samples, files), and the result — the epochs to choose
from, "use this epoch" and the validation grid.

The Controller's signals and state (conn, training, shown_training, history_interval, ...) are
declared in controller.py; this class only adds its methods. The values and lines come from
kiln.training, which every host's panel shares.
"""

import os
from dataclasses import dataclass

from PyQt5.QtGui import QImage

from . import canvas
from .backend import jobs, requests, training
from .canvas import UserError


@dataclass
class TrainingJob:
    """The training the controller follows: one it started, or one it attached to."""
    id: str
    name: str
    prompt: str = ""
    last_sample: str = ""
    live: object = None     # kiln.training.LiveTraining, fed from train.history
    attached: bool = False  # started elsewhere (the CLI, another application)


def train_params(settings):
    try:
        return requests.train_params(settings)
    except requests.RequestError as e:
        raise UserError(str(e))


def is_job_record(value):
    return isinstance(value, dict) and "id" in value and "state" in value and "type" in value


class TrainingFlow:
    """The Controller's training methods (a mixin of Controller; see controller.py)."""

    # -- training: plan, start, attach, live view, result ---------------------------------

    def plan_training(self, settings):
        """What Train would do with these settings (kilnd's train.plan: every resolved value,
        steps, files, samples, time, warnings), sent with planReady. Raises UserError with kilnd's
        list of problems."""
        self._require("train.plan", "training plans")
        plan = self.conn.call("train.plan", train_params(settings))
        self.last_plan = plan
        self.planReady.emit(plan)
        return plan

    def train(self, settings, grid_prompt=None):
        """Starts a training job and follows it: the loss, samples and files arrive with
        liveUpdated, the epochs to choose from with epochsReady when it ends. Returns the job id."""
        if self.training is not None and not self.training.attached:
            raise UserError("A training is already running; cancel it or wait for it.")
        self._require("train", "training")
        params = train_params(settings)
        record = self.conn.call("train", params)
        self._follow(record["id"], params["name"], grid_prompt or "", attached=False)
        self.busyChanged.emit("train", True)
        self.status.emit("Training '%s' on %s..." % (params["name"], params["base"]))
        return self.training.id

    def list_trainings(self):
        """The trainings on this kilnd, running first, then the recent ones (whoever started them)."""
        answer = self.conn.call("jobs.list", {"limit": 200})
        entries = training.trainings_from_jobs(answer.get("jobs") or [])
        self.trainingsListed.emit(entries)
        return entries

    def attach_training(self, job_id):
        """Follows a training started elsewhere (the CLI, another application) or earlier: its
        whole loss history and samples first, then live. Returns its LiveTraining."""
        self._require("train.history", "attaching to trainings")
        history = self.conn.call("train.history", {"id": job_id})
        if self.training is not None and self.training.id != job_id:
            self.conn.session.unwatch(self.training.id)
        self._follow(job_id, history.get("lora") or "", "", attached=True)
        self._take_history(self.training, history)
        self.status.emit("Attached to the training of '%s' (%s)." % (self.training.name, history.get("state")))
        if not self.training.live.finished:
            self.busyChanged.emit("train", True)
        else:
            self._finish_training(self.training, self.conn.session.tracker.get(job_id) or {})
        return self.training.live if self.training is not None else self.shown_training.live

    def _follow(self, job_id, name, prompt, attached):
        job = TrainingJob(job_id, name, prompt, live=training.LiveTraining(job_id, self.history_interval),
                          attached=attached)
        self.training = job
        self.shown_training = job
        self.last_epochs = []
        self.trainingShown.emit(job.live)
        self.conn.session.watch(job_id, self._on_training)
        self._fetch_history(job)

    def pause_training(self):
        if self.training is not None:
            self.conn.call("jobs.pause", {"id": self.training.id})

    def resume_training(self):
        if self.training is not None:
            self.conn.call("jobs.resume", {"id": self.training.id})

    def cancel_training(self):
        if self.training is not None:
            self.conn.call("jobs.cancel", {"id": self.training.id})

    def _fetch_history(self, job, wait=False):
        """Asks train.history for what is new (from the last point held). wait: block for it."""
        params = job.live.fetch_params()
        if wait:
            self._take_history(job, self.conn.call("train.history", params))
            return

        def done(result, error):
            if error is not None or not isinstance(result, dict):
                job.live.fetching = False
                return
            self._take_history(job, result)
        self.conn.session.call_async("train.history", params, done)

    def _take_history(self, job, history):
        added, new_samples, new_files = job.live.feed(history)
        if job.name == "" and job.live.lora:
            job.name = job.live.lora
        if new_samples and job.live.samples:
            path = job.live.samples[-1].get("path", "")
            local = self.local_file(path) if path and path != job.last_sample else ""
            if local and os.path.exists(local):
                job.last_sample = path
                image = QImage(local)
                if not image.isNull():
                    self.preview.emit(image)
        self.liveUpdated.emit(job.live, added, new_samples, new_files)

    def _on_training(self, p):
        job = self.training
        if job is None or p.job_id != job.id:
            return
        if p.preview:
            self._show_preview(p.preview)
        self.progress.emit(p.step, p.total)
        self.status.emit(job.live.status_line(p))
        if job.live.should_fetch(p):
            # The end is fetched at once, so the curve and the epoch list are complete.
            self._fetch_history(job, wait=p.finished)
        if not p.finished:
            return
        self.training = None
        self.busyChanged.emit("train", False)
        record = self.conn.session.tracker.get(p.job_id) or {}
        if not job.live.finished:
            self._fetch_history(job, wait=True)
        self._finish_training(job, record)

    def _finish_training(self, job, record):
        state = record.get("state") or job.live.state
        if self.training is job:
            self.training = None
        if state == "done":
            self.refresh_loras()
            try:
                self.load_epochs(job)
            except UserError as e:
                self.error.emit("Training finished, but its files could not be listed: %s" % e)
            self.status.emit("Training of '%s' done: choose an epoch below, or open the validation grid." % job.name)
        elif state == "failed":
            self.error.emit("Training failed: %s" % (job.live.error or (record.get("error") or {}).get("message")
                                                      or "see kilnd's log"))
        elif state == "cancelled":
            self.status.emit("Training of '%s' cancelled; the epochs saved so far are listed." % job.name)
            try:
                self.load_epochs(job)
            except UserError:
                pass
        self.trainingFinished.emit(record or {"id": job.id, "state": state})

    def load_epochs(self, job=None):
        """The epoch files of the shown training with their samples and mean loss (epochsReady)."""
        job = job or self.shown_training
        if job is None:
            raise UserError("No training to choose an epoch from: start one, or attach to one.")
        try:
            lora = self.conn.call("loras.get", {"name": job.name})
        except UserError:
            lora = None  # nothing saved yet (a cancelled run)
        rows = training.epoch_rows(job.live, lora)
        self.last_epochs = rows
        self.epochsReady.emit(rows, lora)
        return rows

    def use_epoch(self, name, epoch):
        """"Use this epoch": kilnd makes that epoch's file the LoRA <lora:name:w> gives (every file
        kept); the Generate tab's picker gets it."""
        self._require("loras.use_epoch", "choosing an epoch")
        lora = self.conn.call("loras.use_epoch", {"name": name, "epoch": int(epoch)})
        self.refresh_loras()
        if self.shown_training is not None and self.shown_training.name == name:
            rows = training.epoch_rows(self.shown_training.live, lora)
            self.last_epochs = rows
            self.epochsReady.emit(rows, lora)
        self.loraUsed.emit(name, int(epoch))
        self.status.emit("<lora:%s:…> now uses epoch %d; the other epoch files are kept." % (name, int(epoch)))
        return lora

    def request_grid(self, lora, prompt="", strengths=""):
        """Asks kilnd for the LoRA's validation grid (epochs x strengths, the prompt and strengths
        as typed); it opens as a new document (gridOpened) when ready. False when this kilnd cannot
        draw grids."""
        if not self.conn.has_method("lora.grid"):
            self.status.emit("This kilnd cannot draw validation grids yet.")
            return False
        try:
            params = dict(self.grid_options)
            params.update(training.grid_params(lora, prompt, strengths))
        except requests.RequestError as e:
            raise UserError(str(e))
        result = self.conn.call("lora.grid", params)
        if is_job_record(result):
            self.status.emit("Drawing the validation grid of '%s'..." % lora)
            self.conn.session.watch(result["id"], self._on_grid_job)
        else:
            self._open_grid(result)
        return True

    def _on_grid_job(self, p):
        self.progress.emit(p.step, p.total)
        if not p.finished:
            self.status.emit("Validation grid: " + jobs.describe(p))
            return
        if p.state != "done":
            self.error.emit("The validation grid %s: %s" % (p.state, p.error or ""))
            return
        record = self.conn.session.tracker.get(p.job_id) or {}
        try:
            self._open_grid(record.get("result") or {})
        except UserError as e:
            self.error.emit(str(e))

    def _open_grid(self, result):
        daemon_path = result.get("png") or result.get("path") or result.get("grid")
        if not daemon_path:
            raise UserError("kilnd did not say where the grid is (%s)." % result)
        path = self.local_file(daemon_path, fresh=True)  # grid.png is redrawn in place
        if not path or not os.path.exists(path):
            raise UserError("The grid %s could not be read from kilnd's machine; draw it again." % daemon_path)
        self.last_grid_path = path
        doc = canvas.open_image_document(path)
        self.status.emit("Opened the validation grid %s." % path)
        self.gridOpened.emit(doc, path)
        return doc
