"""Frame ranges for restyling animations, without any host API.

Blender names the frames it renders from its output path: the last run of '#' becomes the frame
number padded to that many digits ('shot_###' -> 'shot_012.png'), and a path without '#' gets the
frame appended with four digits ('/renders/' -> '/renders/0012.png'). A restyled animation keeps
those names in a folder of its own, so its frames line up with the renders one for one; a run that
stopped (cancelled, Blender closed, daemon restarted) resumes from the first frame whose output is
missing. Outputs are written atomically, so a file that exists is complete.
"""

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from .jobs import format_eta

# Image files a folder of rendered frames may hold (what kilnd and Blender both read).
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr")
DEFAULT_DIGITS = 4  # Blender pads frame numbers to 4 digits when the path has no '#'

_HASHES = re.compile(r"#+")
_DIGITS = re.compile(r"\d+")


class FrameError(ValueError):
    """A frame range or folder that cannot be restyled; the message is for the user."""


def frame_name(pattern, frame, ext=".png"):
    """The file name Blender gives `frame` for the output path `pattern` (its last part): the last
    run of '#' replaced by the zero-padded frame, else the frame appended with four digits; `ext`
    appended unless the pattern already ends with it."""
    matches = list(_HASHES.finditer(pattern))
    if matches:
        m = matches[-1]
        name = pattern[:m.start()] + _padded(frame, len(m.group(0))) + pattern[m.end():]
    else:
        name = pattern + _padded(frame, DEFAULT_DIGITS)
    if ext and not name.lower().endswith(ext.lower()):
        name += ext
    return name


def _padded(frame, digits):
    # As Blender's printf("%.*d"): the digits padded, a minus sign before them ('-0012').
    return "%.*d" % (digits, int(frame))


def split_output_path(path):
    """(folder, name pattern) of a Blender output path: '/r/shot_##' -> ('/r', 'shot_##'); a path
    ending in a separator is a folder with an empty pattern ('/r/' -> ('/r', ''))."""
    if not path:
        return "", ""
    if path.endswith(("/", os.sep)):
        return path.rstrip("/" + os.sep) or path[:1], ""
    return os.path.dirname(path), os.path.basename(path)


def restyled_frame_path(output_path, frame, subfolder="kiln", ext=".png"):
    """Where the restyled `frame` goes for Blender's (absolute) output path: the same file name as
    Blender's own frame, in `subfolder` beside it. '/r/shot_##' -> '/r/kiln/shot_07.png'."""
    folder, pattern = split_output_path(output_path)
    if not folder:
        raise FrameError("Set an output path (Output Properties > Output) or choose a folder for the restyled frames.")
    return os.path.join(folder, subfolder, frame_name(pattern, frame, ext)) if subfolder else \
        os.path.join(folder, frame_name(pattern, frame, ext))


def frame_number(filename):
    """The frame number of a rendered frame's file name: the last run of digits in its name
    without the extension ('shot_0012.png' -> 12, 'take2_0007.exr' -> 7); None when there is none."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    found = _DIGITS.findall(stem)
    return int(found[-1]) if found else None


def frames_in_folder(folder):
    """[(frame, path)] of the image files in `folder`, in frame order. Files are numbered by the
    last digits in their names; a folder where no name has digits is numbered 1, 2, ... in name
    order. Two files with the same number are refused (the outputs would overwrite each other)."""
    if not folder or not os.path.isdir(folder):
        raise FrameError("The folder of rendered frames '%s' does not exist." % folder)
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(FRAME_EXTENSIONS) and os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise FrameError("The folder '%s' holds no image files (%s)." % (folder, ", ".join(FRAME_EXTENSIONS)))
    numbers = [frame_number(n) for n in names]
    if all(n is None for n in numbers):
        return [(i + 1, os.path.join(folder, n)) for i, n in enumerate(names)]
    unnumbered = [n for n, k in zip(names, numbers) if k is None]
    if unnumbered:
        raise FrameError("These files in '%s' have no frame number: %s." % (folder, ", ".join(unnumbered[:5])))
    seen = {}
    for n, k in zip(names, numbers):
        if k in seen:
            raise FrameError("'%s' and '%s' are both frame %d." % (seen[k], n, k))
        seen[k] = n
    return sorted((k, os.path.join(folder, n)) for n, k in zip(names, numbers))


def frame_range(start, end, step=1):
    """The frames of Blender's range start..end (inclusive) every `step` frames."""
    start, end, step = int(start), int(end), int(step)
    if step < 1:
        raise FrameError("The frame step must be 1 or more.")
    if end < start:
        raise FrameError("The frame range ends (%d) before it starts (%d)." % (end, start))
    return list(range(start, end + 1, step))


def frames_to_do(frames, output_for, exists=os.path.exists):
    """The frames still to restyle, in order, from the first one whose output is missing; frames
    whose output exists are skipped. `output_for(frame)` names a frame's output file."""
    return [f for f in frames if not exists(output_for(f))]


def write_atomic(src, dst):
    """Copies the file `src` to `dst` through a temporary file in dst's folder and a rename, so
    `dst` is either absent or complete (a resumed run trusts every output that exists)."""
    folder = os.path.dirname(os.path.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kiln-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass
class FrameProgress:
    """Progress through a frame range, for a progress bar with an ETA."""
    frames: list                      # the frames of this run, in order
    skipped: int = 0                  # outputs that already existed when the run started (resume)
    done: list = field(default_factory=list)     # frames finished in this run
    seconds: list = field(default_factory=list)  # how long each took
    current: int = None               # the frame being worked on
    current_fraction: float = 0.0     # its own progress, 0..1 (sampling steps)
    started: float = field(default_factory=time.monotonic)
    frame_started: float = None

    @property
    def total(self):
        return len(self.frames)

    def begin(self, frame, now=None):
        self.current = frame
        self.current_fraction = 0.0
        self.frame_started = time.monotonic() if now is None else now

    def finish(self, frame, now=None):
        now = time.monotonic() if now is None else now
        self.done.append(frame)
        self.seconds.append(now - (self.frame_started if self.frame_started is not None else now))
        self.current = None
        self.current_fraction = 0.0

    @property
    def fraction(self):
        if not self.frames:
            return 1.0
        return min(1.0, (len(self.done) + self.current_fraction) / float(len(self.frames)))

    def eta_s(self, now=None):
        """Seconds left: the mean time of the frames done so far times what remains (-1 before the
        first frame is done: no estimate yet)."""
        if not self.seconds:
            return -1.0
        per = sum(self.seconds) / len(self.seconds)
        left = len(self.frames) - len(self.done) - self.current_fraction
        return max(0.0, per * left)

    def describe(self):
        """'frame 12 (3/10) · ETA 0:45' for a status bar."""
        parts = []
        n = len(self.done) + (1 if self.current is not None else 0)
        if self.current is not None:
            parts.append("frame %d (%d/%d)" % (self.current, n, len(self.frames)))
        else:
            parts.append("%d/%d frames" % (len(self.done), len(self.frames)))
        eta = self.eta_s()
        if eta >= 0 and len(self.done) < len(self.frames):
            parts.append("ETA " + format_eta(eta))
        return " · ".join(parts)
