"""Building kilnd requests from what a host plugin's panel holds, with plain-language errors.

Host-independent: Krita's docker and Blender's panel fill the same dataclasses and get the same
params dicts and the same messages. Parameter names follow shared/protocol/methods.cpp.
"""

import math
import re
from dataclasses import dataclass, field
from typing import Optional

from . import sizes

# The samplers kilnd's `generate` accepts (A1111 names; see `generate` in methods.cpp).
SAMPLERS = ["Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DDIM"]
# Presets of datasets and training (../shared/WORKFLOW.md; `--preset` of the CLI).
PRESETS = ["product", "character", "anime", "style", "custom"]
BACKGROUNDS = ["white", "grey"]
MODES = ["txt2img", "img2img", "inpaint"]
# A product shot (kilnd's `shot`): a scene generated around the active layer's product cut-out.
SHOT = "product shot"

DEFAULT_LORA_WEIGHT = 0.8
SIZE_MULTIPLE = 8  # SD's VAE works on 8x8 blocks: kilnd refuses other sizes


class RequestError(ValueError):
    """A request that cannot be sent as it is; the message is for the user."""


# ----------------------------------------------------------------------------------------------
# Sizes

def round_to_multiple(n, multiple=SIZE_MULTIPLE):
    """Nearest multiple, halves rounded up (at least one multiple)."""
    return max(multiple, int(math.floor(n / float(multiple) + 0.5)) * multiple)


@dataclass
class Region:
    """Where a generation goes on the canvas, after rounding to multiples of 8."""
    x: int
    y: int
    width: int
    height: int
    requested: tuple  # (x, y, w, h) asked for: the selection's or the canvas's
    note: str = ""    # plain-language note when rounding changed the size

    @property
    def rect(self):
        return (self.x, self.y, self.width, self.height)


def plan_region(x, y, width, height, canvas_width, canvas_height, multiple=SIZE_MULTIPLE, context=0,
                native=sizes.SD1_SIZE):
    """The area to generate for a selection or canvas rectangle: grown by `context` pixels on
    every side (inpainting sees around the mask), clamped to the canvas, then each side rounded
    to the nearest multiple of 8 and kept inside the canvas where it fits (shifted, not cut).
    `native`: the model's own size (kiln.sizes.native_size), for the note about large areas."""
    if width <= 0 or height <= 0:
        raise RequestError("The selection is empty: select an area, or deselect to use the whole canvas.")
    requested = (x, y, width, height)
    if context:
        x0, y0 = max(0, x - context), max(0, y - context)
        x1, y1 = min(canvas_width, x + width + context), min(canvas_height, y + height + context)
        x, y, width, height = x0, y0, x1 - x0, y1 - y0
    w = round_to_multiple(width, multiple)
    h = round_to_multiple(height, multiple)

    def place(start, size, new_size, limit):
        # Centre the rounding, then shift back inside [0, limit] when the new size fits.
        s = start - (new_size - size) // 2
        if new_size <= limit:
            s = min(max(s, 0), limit - new_size)
        return s

    nx = place(x, width, w, canvas_width)
    ny = place(y, height, h, canvas_height)
    note = ""
    if (w, h) != (width, height):
        note = "%dx%d rounded to %dx%d (sizes must be multiples of %d)." % (width, height, w, h, multiple)
    area = sizes.area_note(w, h, native)
    if area:
        note += (" " if note else "") + area
    return Region(nx, ny, w, h, requested, note)


# ----------------------------------------------------------------------------------------------
# Prompts

_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>")


def lora_tags(prompt):
    """[(name, weight)] of the <lora:name:weight> tags in a prompt (weight 1.0 when absent)."""
    tags = []
    for m in _LORA_TAG.finditer(prompt):
        try:
            weight = float(m.group(2)) if m.group(2) not in (None, "") else 1.0
        except ValueError:
            weight = 1.0
        tags.append((m.group(1), weight))
    return tags


def format_weight(weight):
    text = ("%.2f" % weight).rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def insert_lora_tag(prompt, name, weight=DEFAULT_LORA_WEIGHT, cursor=None):
    """Returns (new prompt, new cursor). A tag for the same LoRA is replaced where it stands;
    otherwise the tag goes at the cursor (default: the end), separated by ", "."""
    if not name or any(c in name for c in "<>:"):
        raise RequestError("'%s' cannot be used in a <lora:...> tag." % name)
    tag = "<lora:%s:%s>" % (name, format_weight(weight))
    for m in _LORA_TAG.finditer(prompt):
        if m.group(1) == name:
            new = prompt[:m.start()] + tag + prompt[m.end():]
            return new, m.start() + len(tag)
    pos = len(prompt) if cursor is None else max(0, min(int(cursor), len(prompt)))
    before, after = prompt[:pos], prompt[pos:]
    sep_before = ", " if before.strip() and not before.rstrip().endswith(",") else (" " if before and not before.endswith(" ") else "")
    sep_after = ", " if after.strip() and not after.lstrip().startswith(",") else ""
    if sep_after:
        after = after.lstrip()
    new = before + sep_before + tag + sep_after + after
    return new, len(before) + len(sep_before) + len(tag)


# ----------------------------------------------------------------------------------------------
# Generation

@dataclass
class GenerateSettings:
    model: str = ""
    prompt: str = ""
    negative: str = ""
    seed: int = -1
    steps: int = 20
    sampler: str = "Euler a"
    cfg: float = 7.0
    mode: str = "txt2img"          # txt2img, img2img, inpaint
    strength: float = 0.75         # img2img / inpaint denoising strength
    clip_skip: int = 1
    mask_blur: float = 4.0
    preview_every: int = 5
    save: bool = True
    tiling: bool = False           # seamless tiling (textures): the image wraps around at its edges
    # Product shots (mode SHOT) only:
    count: int = 1                 # variations, seed + k
    edge: int = 4                  # pixels of the product's edge repainted for shadow and transition
    harmonize: float = 0.0         # 0..0.5: a light pass so light and colour fit; the interior is kept


def _check_common(s, width, height):
    if not s.model:
        raise RequestError("Pick a base model first (or add one with 'Add model...').")
    if not s.prompt.strip():
        raise RequestError("Write a prompt first.")
    if s.sampler not in SAMPLERS:
        raise RequestError("Unknown sampler '%s'; use one of: %s." % (s.sampler, ", ".join(SAMPLERS)))
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise RequestError("The size must be a multiple of 8 (got %dx%d)." % (width, height))
    if not 1 <= int(s.steps) <= 500:
        raise RequestError("Steps must be between 1 and 500.")
    if not 0.0 <= float(s.cfg) <= 100.0:
        raise RequestError("CFG scale must be between 0 and 100.")


def _common_params(s, width, height):
    params = {
        "model": s.model,
        "prompt": s.prompt,
        "sampler": s.sampler,
        "steps": int(s.steps),
        "cfg": float(s.cfg),
        "seed": int(s.seed),
        "width": int(width),
        "height": int(height),
        "preview_every": int(s.preview_every),
        "save": bool(s.save),
    }
    if s.negative.strip():
        params["negative"] = s.negative
    if int(s.clip_skip) != 1:
        params["clip_skip"] = int(s.clip_skip)
    return params


def shot_params(settings, width, height, product, x, y, scale=1.0):
    """The `shot` params: a width x height scene around `product` (a kiln.Image, RGBA, or a ref),
    whose top-left corner goes at (x, y) of the output at `scale` (1 keeps its pixels 1:1, so a
    host's product layer stays where it is)."""
    s = settings
    _check_common(s, width, height)
    if product is None:
        raise RequestError("A product shot needs the product: select its layer (with transparency).")
    if not 1 <= int(s.count) <= 16:
        raise RequestError("Variations must be between 1 and 16.")
    if not 0 <= int(s.edge) <= 64:
        raise RequestError("The edge must be between 0 and 64 pixels.")
    if not 0.0 <= float(s.harmonize) <= 0.5:
        raise RequestError("Harmonize must be between 0 and 0.5.")
    if not scale > 0:
        raise RequestError("The product's scale must be above 0.")
    params = _common_params(s, width, height)
    params.update({"product": product, "x": int(x), "y": int(y), "scale": float(scale), "count": int(s.count),
                   "edge": int(s.edge)})
    if float(s.harmonize) > 0:
        params["harmonize"] = float(s.harmonize)
    return params


def generate_params(settings, width, height, init_image=None, mask=None):
    """The `generate` params for these settings at width x height. init_image and mask are
    kiln.Image objects (or refs) for img2img and inpainting."""
    s = settings
    if s.mode == SHOT:
        raise RequestError("A product shot is sent with shot_params, not generate_params.")
    if s.mode not in MODES:
        raise RequestError("Unknown mode '%s'." % s.mode)
    _check_common(s, width, height)
    params = _common_params(s, width, height)
    if s.tiling:
        params["tiling"] = True
    if s.mode in ("img2img", "inpaint"):
        if init_image is None:
            raise RequestError("%s needs a source image." % s.mode)
        if not 0.0 <= float(s.strength) <= 1.0:
            raise RequestError("Denoising strength must be between 0 and 1.")
        params["init_image"] = init_image
        params["strength"] = float(s.strength)
    if s.mode == "inpaint":
        if mask is None:
            raise RequestError("Inpainting repaints the selection: select an area first.")
        params["mask"] = mask
        params["mask_blur"] = float(s.mask_blur)
    return params


# ----------------------------------------------------------------------------------------------
# Datasets and training (issue 5: datasets.*, issue 4: train / loras.* / lora.grid)

_NAME = re.compile(r"^[^/\\\x00]{1,64}$")


def check_library_name(name, what="name"):
    """A client-side check with the daemon's rules in mind (it validates again): 1-64
    characters, no path separators, not '.' or '..'."""
    name = (name or "").strip()
    if not name:
        raise RequestError("Give the %s a name." % what)
    if not _NAME.match(name) or name in (".", ".."):
        raise RequestError("The %s '%s' cannot be used: at most 64 characters, no '/' or '\\'." % (what, name))
    return name


def check_trigger(trigger):
    """A trigger word is one token (kohya's folder is '<repeats>_<trigger>')."""
    trigger = (trigger or "").strip()
    if trigger and not re.match(r"^[\w\-]+$", trigger, re.UNICODE):
        raise RequestError("The trigger word must be a single word (letters, digits, '_' or '-'), e.g. 'sks_speaker'.")
    return trigger


@dataclass
class DatasetSettings:
    name: str = ""
    trigger: str = ""
    preset: str = "product"
    background: str = "white"      # product preset: what transparent pixels become
    resolution: Optional[int] = None  # training side (default: the preset's, 512)
    repeats: Optional[int] = None     # kohya repeats per epoch (default: the preset's)


def dataset_create_params(settings):
    name = check_library_name(settings.name, "dataset")
    if settings.preset not in PRESETS:
        raise RequestError("Unknown preset '%s'; use one of: %s." % (settings.preset, ", ".join(PRESETS)))
    params = {"name": name, "preset": settings.preset}
    trigger = check_trigger(settings.trigger)
    if trigger:
        params["trigger"] = trigger
    if settings.preset == "product" and settings.background in BACKGROUNDS:
        params["background"] = settings.background
    if settings.resolution:
        if settings.resolution % 64 or not 256 <= settings.resolution <= 2048:
            raise RequestError("The dataset resolution must be a multiple of 64 between 256 and 2048.")
        params["resolution"] = int(settings.resolution)
    if settings.repeats:
        params["repeats"] = int(settings.repeats)
    return params


def dataset_image_entry(image, source_name, caption=None):
    """One entry of datasets.add_images' `images` list: {image, name?, caption?} (kilnd keeps
    `name` as the image's source name)."""
    entry = {"image": image}
    if source_name:
        entry["name"] = source_name
    if caption:
        entry["caption"] = caption
    return entry


@dataclass
class TrainSettings:
    base_model: str = ""
    dataset: str = ""
    name: str = ""
    preset: str = "product"
    overrides: dict = field(default_factory=dict)  # kohya names -> values (the request's `config`)
    set: list = field(default_factory=list)        # "key=value" strings, applied last (kiln train --set)


def train_params(settings):
    if not settings.base_model:
        raise RequestError("Pick a base model to train on.")
    dataset = check_library_name(settings.dataset, "dataset")
    name = check_library_name(settings.name or settings.dataset, "LoRA")
    if settings.preset not in PRESETS:
        raise RequestError("Unknown preset '%s'." % settings.preset)
    params = {"base": settings.base_model, "dataset": dataset, "name": name, "preset": settings.preset}
    if settings.overrides:
        params["config"] = dict(settings.overrides)
    if settings.set:
        bad = [item for item in settings.set if not isinstance(item, str) or "=" not in item]
        if bad:
            raise RequestError("Training overrides are 'key=value' strings, not %s." % ", ".join(map(repr, bad)))
        params["set"] = list(settings.set)
    return params


# ----------------------------------------------------------------------------------------------
# Captions and tags (datasets.set_caption, datasets.tags, datasets.auto_tag)

TAG_ACTIONS = ("replace", "remove", "move_to_end", "add")


def split_tags(text):
    """'a, b ,, c' -> ['a', 'b', 'c']."""
    return [t.strip() for t in str(text or "").split(",") if t.strip()]


def tag_edit_params(dataset, action, tags, value="", ids=None):
    """datasets.tags params for one batch action of a panel's tag list: `tags` the selected tags,
    `value` what the action needs (the new tag for replace, the tags to add for add)."""
    name = check_library_name(dataset, "dataset")
    tags = [str(t).strip() for t in tags or [] if str(t).strip()]
    params = {"name": name}
    if action == "add":
        new = split_tags(value) or tags
        if not new:
            raise RequestError("Type the tag to add to every caption.")
        params["add"] = new
    elif action == "replace":
        new = str(value or "").strip()
        if len(tags) != 1:
            raise RequestError("Select the one tag to replace.")
        if not new or "," in new:
            raise RequestError("Type the one tag that replaces '%s'." % tags[0])
        params["replace"] = {"old": tags[0], "new": new}
    elif action in ("remove", "move_to_end"):
        if not tags:
            raise RequestError("Select the tags to %s first." % ("remove" if action == "remove" else "move to the end"))
        params[action] = tags
    else:
        raise RequestError("Unknown tag action '%s'." % action)
    if ids:
        params["ids"] = list(ids)
    return params


def auto_tag_params(dataset, threshold=0.35, replace=False, tagger=""):
    name = check_library_name(dataset, "dataset")
    if not 0.0 < float(threshold) < 1.0:
        raise RequestError("The tagger's threshold must be between 0 and 1 (0.35 is usual).")
    params = {"name": name, "threshold": float(threshold), "replace": bool(replace)}
    if tagger:
        params["tagger"] = tagger
    return params
