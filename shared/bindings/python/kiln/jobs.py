"""Following kilnd's jobs from their notifications, without any host API.

kilnd sends `job.state` (every state change, with the whole record) and `job.progress` (at most
~20 a second: step, total, fraction, ETA, message, job-specific `extra` values such as loss and
epoch, and sometimes a `preview` image reference) to sessions that subscribed with
`jobs.subscribe`. This module turns those into plain values a panel can show.
"""

from dataclasses import dataclass, field
from typing import Optional

FINISHED = ("done", "failed", "cancelled")
STATES = ("queued", "running", "paused") + FINISHED


def is_finished(state):
    return state in FINISHED


@dataclass
class Progress:
    job_id: str
    type: str
    state: str
    step: int = 0
    total: int = 0
    fraction: float = 0.0
    eta_s: float = -1.0
    steps_per_s: float = 0.0
    message: str = ""
    extra: dict = field(default_factory=dict)
    preview: Optional[dict] = None  # an image reference (RGB u8), shared by all subscribers
    error: Optional[str] = None

    @property
    def finished(self):
        return is_finished(self.state)

    @property
    def loss(self):
        return _number(self.extra, "loss", "loss_avg", "average_loss")

    @property
    def epoch(self):
        return _number(self.extra, "epoch")

    @property
    def epochs(self):
        return _number(self.extra, "epochs", "max_train_epochs", "total_epochs")

    @property
    def sample(self):
        """A training sample image reference, when the job reported one."""
        for key in ("sample", "sample_image", "latest_sample"):
            value = self.extra.get(key)
            if isinstance(value, dict) and "shm" in value:
                return value
        return None


def _number(extra, *keys):
    for k in keys:
        v = extra.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
    return None


def progress_from_record(record, preview=None):
    p = record.get("progress") or {}
    error = record.get("error")
    return Progress(
        job_id=record.get("id", ""),
        type=record.get("type", ""),
        state=record.get("state", ""),
        step=int(p.get("step", 0) or 0),
        total=int(p.get("total", 0) or 0),
        fraction=float(p.get("fraction", 0.0) or 0.0),
        eta_s=float(p.get("eta_s", -1) if p.get("eta_s") is not None else -1),
        steps_per_s=float(p.get("steps_per_s", 0.0) or 0.0),
        message=p.get("message", "") or "",
        extra=p.get("extra") or {},
        preview=preview,
        error=(error or {}).get("message") if isinstance(error, dict) else None,
    )


def progress_from_notification(method, params):
    """A Progress for a job.state / job.progress notification, or None for anything else."""
    if method not in ("job.state", "job.progress") or not isinstance(params, dict):
        return None
    record = params.get("job")
    if not isinstance(record, dict):
        return None
    return progress_from_record(record, params.get("preview"))


def format_eta(seconds):
    if seconds is None or seconds < 0:
        return ""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return "%d:%02d:%02d" % (h, m, s) if h else "%d:%02d" % (m, s)


def describe(progress):
    """One line for a status label: 'running · step 12/40 · epoch 2/10 · loss 0.1234 · ETA 0:16'."""
    p = progress
    parts = [p.state]
    if p.total:
        parts.append("step %d/%d" % (p.step, p.total))
    if p.epoch is not None:
        parts.append("epoch %d/%d" % (p.epoch, p.epochs) if p.epochs else "epoch %d" % p.epoch)
    if p.loss is not None:
        parts.append("loss %.4f" % p.loss)
    if p.state == "running" and p.eta_s >= 0:
        parts.append("ETA " + format_eta(p.eta_s))
    if p.state == "failed" and p.error:
        parts.append(p.error)
    elif p.message and p.state in ("running", "paused", "queued") and p.message != "step %d/%d" % (p.step, p.total):
        parts.append(p.message)
    return " · ".join(parts)


class JobTracker:
    """The latest record of every job seen, from notifications and jobs.get answers."""

    def __init__(self):
        self.records = {}

    def update(self, record, preview=None):
        """Stores a record (newer replaces older) and returns its Progress."""
        job_id = record.get("id")
        if job_id:
            old = self.records.get(job_id)
            # A late progress notification must not undo a finished state.
            if old is None or not is_finished(old.get("state")) or is_finished(record.get("state")):
                self.records[job_id] = record
            else:
                record = old
        return progress_from_record(record, preview)

    def feed(self, method, params):
        """Takes a notification; returns the job's Progress, or None when it was not about a job."""
        if method not in ("job.state", "job.progress") or not isinstance(params, dict):
            return None
        record = params.get("job")
        if not isinstance(record, dict):
            return None
        return self.update(record, params.get("preview"))

    def get(self, job_id):
        return self.records.get(job_id)
