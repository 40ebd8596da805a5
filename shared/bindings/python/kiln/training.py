"""Training panels without a host: what Krita's docker, Blender's panel and Photoshop's would all
show, as plain values.

  * the parameters that matter (PARAMETERS), read from a `train.plan` answer (values_from_plan) and
    sent back as the request's `config` when the user changed them (changed_values), and the
    other kohya options typed as key=value lines (other_options);
  * the plan as lines a user reads (plan_summary, plan_warnings): steps, files, samples, time;
  * a live run from `train.history` answers (LiveTraining): the loss at every step, raw and
    smoothed (LossHistory, plot_curves), the samples of each epoch, the files saved;
  * the result to choose from (epoch_rows) and the grid's request (grid_params);
  * the trainings a panel can attach to (trainings_from_jobs).

Nothing here touches a host API or the network: the host's controller calls kilnd and hands the
answers in. Parameter names are kohya's, as shared/protocol/methods.cpp and train_config.h use.
"""

import math
import os
import time
from dataclasses import dataclass, field
from typing import List, Optional

from .jobs import format_eta
from .requests import RequestError

# The word the user types once in the dataset panel, explained where it is typed.
TRIGGER_HELP = ("The trigger is the word the LoRA learns: Kiln puts it first in every caption, and writing it in a "
                "prompt brings the subject back. Describe in the captions what should stay changeable (background, "
                "light, pose) and leave out what makes the subject itself: the trigger learns that. Use a word the "
                "model does not know already, e.g. 'sks_bottle'.")

LR_SCHEDULERS = ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"]
OPTIMIZERS = ["AdamW", "AdamW8bit", "Lion", "SGDNesterov"]


@dataclass
class Param:
    key: str              # kohya's name
    label: str
    kind: str             # "int", "float", "choice", "text"
    minimum: float = 0
    maximum: float = 0
    step: float = 1
    choices: List[str] = field(default_factory=list)
    help: str = ""
    zero_means: str = ""  # int fields: what 0 stands for ("off"); 0 is then sent as null


# The values that matter (../shared/WORKFLOW.md, "Parameters"), in the order a panel shows them.
PARAMETERS = [
    Param("num_repeats", "Repeats", "int", 1, 1000, help="How often each image is shown per epoch (kohya's N_ folder "
          "prefix): anime 10-15, a person 30-50, scenery up to 100."),
    Param("max_train_epochs", "Epochs", "int", 1, 1000, help="Passes over the images; one LoRA file is saved per "
          "epoch to choose from at the end (10 is the usual start)."),
    Param("resolution", "Resolution", "int", 64, 2048, 64, help="Training side in pixels: 512 for SD1.5 (higher "
          "costs memory; below 512 is clearly worse)."),
    Param("train_batch_size", "Batch size", "int", 1, 64, help="Images per step: 1 with 6 GB of VRAM at 512, 4-6 "
          "with 12 GB or more. A larger batch needs a little more epochs."),
    Param("network_dim", "Network dim (rank)", "int", 1, 1024, help="The LoRA's rank: 4-8 light styles, 12-16 "
          "characters and products, 32 anime; 32 and more rarely pays and overfits. Dim 32 is about 40 MB."),
    Param("network_alpha", "Network alpha", "float", 0, 1024, 1, help="Scales the LoRA's updates: usually dim/2 or dim; "
          "a smaller alpha needs a higher learning rate."),
    Param("learning_rate", "Learning rate", "float", 0, 1, 1e-5, help="1e-4 is the usual value (5e-5 to 2e-4)."),
    Param("unet_lr", "U-Net learning rate", "float", 0, 1, 1e-5, help="Overrides the learning rate for the U-Net "
          "(1e-4 or 5e-5)."),
    Param("text_encoder_lr", "Text encoder learning rate", "float", 0, 1, 1e-6, help="Overrides the learning rate for "
          "the text encoder (1e-5 or 6e-6)."),
    Param("lr_scheduler", "Scheduler", "choice", choices=LR_SCHEDULERS, help="How the learning rate changes over the "
          "run."),
    Param("optimizer_type", "Optimizer", "choice", choices=OPTIMIZERS, help="AdamW (8-bit saves memory on CUDA); Lion "
          "generalised better in one guide's tests."),
    Param("clip_skip", "Clip skip", "int", 1, 12, help="2 for anime / NovelAI-derived models, 1 for realistic ones."),
    Param("sample_prompts", "Sample prompts", "text", help="One prompt per line, kohya's syntax (--w 512 --h 512 --d "
          "seed --s steps). Add test words (white hair, red dress) to check the prompt still changes things."),
    Param("sample_every_n_epochs", "Sample every", "int", 0, 1000, help="A sample image of each prompt every N epochs "
          "(and of the final weights).", zero_means="off"),
]
PARAMETER_KEYS = [p.key for p in PARAMETERS]


def find_param(key):
    for p in PARAMETERS:
        if p.key == key:
            return p
    raise KeyError(key)


# ----------------------------------------------------------------------------------------------
# Parameters <-> train.plan


def _resolution_value(text):
    """config.json's "512,512" -> 512; "512,768" stays text (the panel shows it as it is)."""
    if isinstance(text, (int, float)):
        return int(text)
    parts = [p.strip() for p in str(text or "").split(",") if p.strip()]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        return text
    if len(numbers) == 1 or (len(numbers) == 2 and numbers[0] == numbers[1]):
        return numbers[0]
    return ",".join(str(n) for n in numbers)


def values_from_plan(plan):
    """{key: value} of PARAMETERS as a `train.plan` answer resolved them (the preset, the dataset's
    repeats, the request). Prompts are one text, one prompt per line; "off" is 0."""
    config = plan.get("config") or {}
    values = {}
    for p in PARAMETERS:
        v = config.get(p.key)
        if p.key == "num_repeats" and v is None:
            folders = plan.get("folders") or []
            v = folders[0].get("repeats") if folders else None
        elif p.key == "resolution":
            v = _resolution_value(v)
        elif p.key in ("unet_lr", "text_encoder_lr") and v is None:
            v = config.get("learning_rate")
        elif p.key == "clip_skip" and v is None:
            v = 1
        elif p.key == "sample_prompts":
            v = "\n".join(l for l in (v or []) if l.strip() and not l.lstrip().startswith("#"))
        elif p.key == "max_train_epochs" and v is None:
            v = plan.get("epochs")
        elif p.zero_means and v is None:
            v = 0
        values[p.key] = v
    return values


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def changed_values(values, baseline):
    """The request's `config` for the values the user changed from `baseline` (values_from_plan of
    the plan without them): kohya keys, prompts as a list of lines, 0 of an "off" field as null.
    Raises RequestError for a value the daemon would refuse anyway, in plain words."""
    config = {}
    for p in PARAMETERS:
        if p.key not in values:
            continue
        v = values[p.key]
        if _same(v, baseline.get(p.key)):
            continue
        if p.kind == "int" and not isinstance(v, str):
            v = int(v)
            if p.zero_means and v == 0:
                config[p.key] = None
                continue
            if not p.minimum <= v <= p.maximum:
                raise RequestError("%s must be between %d and %d." % (p.label, p.minimum, p.maximum))
            if p.key == "resolution" and v % 64:
                raise RequestError("The resolution must be a multiple of 64 (e.g. 512).")
        elif p.kind == "float":
            v = float(v)
            if v < 0 or (p.maximum and v > p.maximum):
                raise RequestError("%s must be between 0 and %g." % (p.label, p.maximum))
        elif p.kind == "choice" and v not in p.choices:
            raise RequestError("%s must be one of: %s." % (p.label, ", ".join(p.choices)))
        elif p.kind == "text":
            lines = [l.strip() for l in str(v or "").splitlines() if l.strip()]
            v = lines
        config[p.key] = v
    return config


def other_options(text):
    """A panel's "Other" box: one kohya option per line as `key=value` (blank lines and # comments
    skipped), for the request's `set`. Raises RequestError naming the lines that are not."""
    lines = [l.strip() for l in str(text or "").splitlines() if l.strip() and not l.strip().startswith("#")]
    bad = [l for l in lines if "=" not in l or not l.split("=", 1)[0].strip()]
    if bad:
        raise RequestError("Other options are key=value lines (e.g. min_bucket_reso=256), not: %s" % "; ".join(bad))
    return lines


def plan_summary(plan):
    """Lines for the estimate under the parameters:
    '24 steps: 4 images x 2 repeats x 3 epochs / batch 1', 'writes 3 LoRA files and 3 samples',
    'about 0:09 (measured by ...)'."""
    images = int(plan.get("images") or 0)
    if not images:
        return ["No images to train on yet: add some to the dataset."]
    config = plan.get("config") or {}
    folders = plan.get("folders") or []
    repeats = sorted({int(f.get("repeats") or 1) for f in folders}) or [1]
    repeats_text = ("%d repeats" % repeats[0]) if len(repeats) == 1 else "repeats %s" % "/".join(map(str, repeats))
    epochs = int(plan.get("epochs") or 0)
    batch = int(config.get("train_batch_size") or 1)
    lines = ["%d steps: %d image%s x %s x %d epoch%s / batch %d" % (
        int(plan.get("steps") or 0), images, "" if images == 1 else "s", repeats_text, epochs, "" if epochs == 1 else "s",
        batch)]
    files, samples = int(plan.get("files") or 0), int(plan.get("sample_images") or 0)
    lines.append("writes %d LoRA file%s%s" % (files, "" if files == 1 else "s",
                                                 " and %d sample%s" % (samples, "" if samples == 1 else "s") if samples else
                                                 ", no samples"))
    seconds = plan.get("estimated_seconds")
    if isinstance(seconds, (int, float)):
        lines.append("about %s of training" % format_duration(seconds))
    else:
        lines.append("time: shown once the first steps are done")
    return lines


def plan_warnings(plan):
    return [str(w) for w in plan.get("warnings") or []]


def format_duration(seconds):
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return "%d s" % seconds
    return format_eta(seconds)


# ----------------------------------------------------------------------------------------------
# The loss


@dataclass
class LossPoint:
    step: int
    epoch: int
    loss: float
    lr: float = 0.0


class LossHistory:
    """The loss at every step of one run, as train.history sends it (in order, fetched from
    `next` on)."""

    def __init__(self):
        self.points = []
        self.next = 0   # the `from` of the next train.history call

    def __len__(self):
        return len(self.points)

    def feed(self, history):
        """Appends the points of a train.history answer; returns how many were new. An answer
        that starts before what is held (a second fetch of the same points) adds only the rest."""
        start = int(history.get("from", 0) or 0)
        loss = history.get("loss") or []
        skip = max(0, len(self.points) - start)
        added = 0
        for raw in loss[skip:]:
            try:
                self.points.append(LossPoint(int(raw["step"]), int(raw.get("epoch", 0)), float(raw["loss"]),
                                             float(raw.get("lr", 0.0) or 0.0)))
                added += 1
            except (KeyError, TypeError, ValueError):
                continue
        self.next = max(self.next, int(history.get("next", start + len(loss)) or 0), len(self.points))
        return added

    def smoothed(self, weight=0.9):
        """TensorBoard's smoothing: an exponential moving average, debiased so the start is not
        pulled towards 0. weight 0 = the raw values."""
        out, last, n = [], 0.0, 0
        for p in self.points:
            n += 1
            last = last * weight + (1 - weight) * p.loss
            out.append(last / (1 - weight ** n) if weight > 0 else p.loss)
        return out

    def epoch_means(self):
        """{epoch: mean loss of its steps}."""
        sums = {}
        for p in self.points:
            s = sums.setdefault(p.epoch, [0.0, 0])
            s[0] += p.loss
            s[1] += 1
        return {e: s[0] / s[1] for e, s in sums.items()}

    def epoch_starts(self):
        """Indices where a new epoch begins (after the first)."""
        return [i for i in range(1, len(self.points)) if self.points[i].epoch != self.points[i - 1].epoch]


@dataclass
class Curves:
    raw: list        # [(x, y)] in the box's pixels
    smooth: list
    epoch_x: list    # x of each epoch boundary
    y_min: float     # the loss at the bottom and the top of the box
    y_max: float
    x_max: int       # the last step (the x axis runs 0..total)


def plot_curves(history, width, height, total_steps=0, weight=0.9, margin=(0, 0, 0, 0)):
    """The loss and its smoothed line as pixel coordinates in a width x height box (y grows
    downwards as on screens), x by step over 0..max(total_steps, last step). margin: left, top,
    right, bottom. None while there is nothing to draw."""
    pts = history.points
    if not pts or width <= 0 or height <= 0:
        return None
    left, top, right, bottom = margin
    w, h = max(1, width - left - right), max(1, height - top - bottom)
    smooth = history.smoothed(weight)
    lo = min(min(p.loss for p in pts), min(smooth))
    hi = max(max(p.loss for p in pts), max(smooth))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
    x_max = max(int(total_steps or 0), pts[-1].step, 1)

    def xy(step, value):
        return (left + w * step / float(x_max), top + h * (1 - (value - lo) / (hi - lo)))

    raw = [xy(p.step, p.loss) for p in pts]
    sm = [xy(p.step, s) for p, s in zip(pts, smooth)]
    epoch_x = [left + w * pts[i - 1].step / float(x_max) for i in history.epoch_starts()]
    return Curves(raw, sm, epoch_x, lo, hi, x_max)


# ----------------------------------------------------------------------------------------------
# A run, live or finished


def samples_by_epoch(samples):
    """[(epoch, [sample entries by prompt index])], epochs in order (epoch 0: before training)."""
    groups = {}
    for s in samples or []:
        if isinstance(s, dict) and "path" in s:
            groups.setdefault(int(s.get("epoch", 0)), []).append(s)
    return [(e, sorted(groups[e], key=lambda s: (int(s.get("step", 0)), int(s.get("index", 0)))))
            for e in sorted(groups)]


class LiveTraining:
    """One training job as a panel follows it: feed() every train.history answer; should_fetch()
    says when to ask again (not on every progress notification: at most every `interval` s, and at
    once when the job reports a new sample or file, or ends)."""

    def __init__(self, job_id, interval=0.5, clock=time.monotonic):
        self.job_id = job_id
        self.loss = LossHistory()
        self.samples = []
        self.files = []
        self.state = ""
        self.lora = None
        self.client = ""
        self.epochs = None
        self.result = None
        self.error = None
        self.progress = {}
        self.interval = interval
        self.clock = clock
        self.last_fetch = None
        self.fetching = False

    @property
    def finished(self):
        return self.state in ("done", "failed", "cancelled")

    def feed(self, history):
        """Takes a train.history answer; returns (new loss points, new samples?, new files?)."""
        self.fetching = False
        self.last_fetch = self.clock()
        added = self.loss.feed(history)
        samples = list(history.get("samples") or [])
        files = list(history.get("files") or [])
        new_samples, new_files = samples != self.samples, files != self.files
        self.samples, self.files = samples, files
        self.state = history.get("state", self.state)
        self.lora = history.get("lora") or self.lora
        self.client = history.get("client", self.client)
        self.epochs = history.get("epochs") or self.epochs
        self.result = history.get("result") if history.get("result") is not None else self.result
        self.error = history.get("error") or self.error
        self.progress = history.get("progress") or self.progress
        return added, new_samples, new_files

    def should_fetch(self, progress=None):
        """progress: a kiln.jobs.Progress of this job (or None on a timer)."""
        if self.fetching:
            return False
        if self.last_fetch is None:
            return True
        if progress is not None:
            if progress.state != self.state:
                return True  # paused, resumed, ended: at once
            extra = progress.extra or {}
            if extra.get("samples", len(self.samples)) != len(self.samples) or extra.get("files", len(self.files)) != len(self.files):
                return True
            if progress.step <= (self.loss.points[-1].step if self.loss.points else 0):
                return False
        elif self.finished:
            return False
        return self.clock() - self.last_fetch >= self.interval

    def fetch_params(self):
        self.fetching = True
        return {"id": self.job_id, "from": self.loss.next}

    def samples_by_epoch(self):
        return samples_by_epoch(self.samples)

    def status_line(self, progress=None):
        """'step 5/12 · epoch 1/2 · loss 0.1234 (smoothed 0.1301) · ETA 0:07', or how it ended."""
        p = progress
        step = p.step if p is not None else int((self.progress or {}).get("step", 0) or 0)
        total = p.total if p is not None else int((self.progress or {}).get("total", 0) or 0)
        state = p.state if p is not None else self.state
        parts = [state] if state else []
        if total:
            parts.append("step %d/%d" % (step, total))
        epoch = p.epoch if p is not None else None
        epochs = (p.epochs if p is not None else None) or self.epochs
        if epoch is None and self.loss.points:
            epoch = self.loss.points[-1].epoch
        if epoch is not None:
            parts.append("epoch %d/%d" % (epoch, epochs) if epochs else "epoch %d" % epoch)
        if self.loss.points:
            parts.append("loss %.4f (smoothed %.4f)" % (self.loss.points[-1].loss, self.loss.smoothed()[-1]))
        if p is not None and state == "running" and p.eta_s >= 0:
            parts.append("ETA " + format_eta(p.eta_s))
        if state == "failed" and (self.error or (p is not None and p.error)):
            parts.append(str(self.error or p.error))
        return " · ".join(parts)


# ----------------------------------------------------------------------------------------------
# The result


@dataclass
class EpochRow:
    epoch: int
    path: str
    samples: list          # sample PNG paths of this epoch, by prompt
    loss: Optional[float]  # the epoch's mean loss
    final: bool            # the file kohya names <name>.safetensors (the last epoch)
    in_use: bool           # what <lora:name:w> gives now

    @property
    def label(self):
        text = "epoch %d" % self.epoch
        if self.loss is not None:
            text += " · loss %.4f" % self.loss
        if self.final:
            text += " · final file"
        if self.in_use:
            text += " · in use"
        return text


def epoch_rows(live, lora=None):
    """The files of a run to choose from, epoch by epoch, with their samples and mean loss.

    `lora` is the loras.get answer, which says what is on disk now: its epoch files, the final file
    and chosen_epoch (set by loras.use_epoch; the final file then holds that epoch and every epoch
    has its own file). Without it, the run's own list of saved files is used."""
    by_epoch = dict(samples_by_epoch(live.samples))
    means = live.loss.epoch_means()
    name = (lora or {}).get("name") or live.lora or ""
    final_name = name + ".safetensors"
    final_epoch = None
    for f in live.files:
        if isinstance(f, dict) and os.path.basename(str(f.get("path", ""))) == final_name:
            final_epoch = int(f.get("epoch", 0))
    if lora:
        paths = {int(e.get("epoch", 0)): e.get("path", "") for e in lora.get("epochs") or [] if isinstance(e, dict)}
        if lora.get("file") and lora.get("chosen_epoch") is None:
            if final_epoch is None:
                try:
                    final_epoch = int(((lora.get("info") or {}).get("metadata") or {}).get("ss_epoch"))
                except (TypeError, ValueError):
                    final_epoch = max(paths, default=0) + 1
            paths.setdefault(final_epoch, lora["file"])
        chosen = lora.get("chosen_epoch")
    else:
        paths = {int(f.get("epoch", 0)): f.get("path", "") for f in live.files if isinstance(f, dict) and "path" in f}
        chosen = None
    in_use = chosen if chosen is not None else final_epoch
    rows = []
    for e in sorted(paths):
        final = os.path.basename(paths[e]) == final_name
        rows.append(EpochRow(e, paths[e], [s["path"] for s in by_epoch.get(e, [])], means.get(e), final, e == in_use))
    return rows


def parse_strengths(text):
    """'0.2, 0.5, 1' -> [0.2, 0.5, 1.0]; RequestError in plain words for anything else."""
    parts = [p for p in str(text or "").replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise RequestError("Strengths are numbers separated by commas, e.g. 0.25, 0.5, 0.75, 1.")
    if not 1 <= len(values) <= 20:
        raise RequestError("Give 1 to 20 strengths, e.g. 0.25, 0.5, 0.75, 1.")
    if any(abs(v) > 4 or v != v for v in values):
        raise RequestError("Each strength must be between -4 and 4 (usually 0 to 1).")
    return values


def grid_params(lora, prompt="", strengths="", **extra):
    """lora.grid params: the LoRA, the prompt (default: its trigger word) and the strengths typed
    in the panel; extra (steps, seed, width, ...) as given."""
    params = dict((k, v) for k, v in extra.items() if v is not None)
    params["lora"] = lora
    if str(prompt or "").strip():
        params["prompt"] = str(prompt).strip()
    if str(strengths or "").strip():
        params["strengths"] = parse_strengths(strengths)
    return params


# ----------------------------------------------------------------------------------------------
# Attaching


@dataclass
class TrainingEntry:
    id: str
    lora: str
    state: str
    client: str
    step: int
    total: int
    created_at: str

    @property
    def running(self):
        return self.state in ("queued", "running", "paused")

    @property
    def label(self):
        text = "%s — %s" % (self.lora or "?", self.state)
        if self.total and self.running:
            text += " %d/%d" % (self.step, self.total)
        if self.client:
            text += " (%s)" % self.client.split(" ")[0]
        return text


def trainings_from_jobs(jobs, recent=10):
    """The training jobs of a jobs.list answer a panel can attach to: those still going first, then
    the `recent` newest finished ones."""
    entries = []
    for j in jobs or []:
        if not isinstance(j, dict) or j.get("type") != "train":
            continue
        params, progress, result = j.get("params") or {}, j.get("progress") or {}, j.get("result") or {}
        entries.append(TrainingEntry(j.get("id", ""), result.get("lora") or params.get("name") or "", j.get("state", ""),
                                     j.get("client", ""), int(progress.get("step", 0) or 0),
                                     int(progress.get("total", 0) or 0), j.get("created_at", "")))
    going = [e for e in entries if e.running]
    ended = [e for e in entries if not e.running][:recent]
    return going + ended
