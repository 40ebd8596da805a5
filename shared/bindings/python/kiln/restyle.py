"""Requests for restyling renders and making textures, without any host API.

A render (or a frame of an animation) goes to kilnd's `generate` as an img2img source: the prompt
(with <lora:name:w> tags for a style LoRA) says what it should look like, the strength how far it
may move from the render. A texture is a txt2img with `tiling`, so its opposite edges continue into
each other. Blender's add-on uses this; any host that renders can.
"""

import copy
import random
import re

from .requests import GenerateSettings, RequestError, SIZE_MULTIPLE, generate_params, round_to_multiple

MAX_ID_NAME = 63            # Blender's datablock names hold at most 63 bytes
SEED_MAX = 2 ** 32 - 1      # A1111's seeds are 32-bit


def plan_size(width, height, max_side=768, multiple=SIZE_MULTIPLE):
    """(w, h, note): the size to restyle a width x height render at. Models work near their own
    size (512 px SD 1.x, 1024 SDXL: kiln.sizes.restyle_max_side gives 768 and 1536) and need
    multiples of 8: the render is scaled so its long side is at most `max_side` (keeping its
    aspect), then each side rounded to the nearest multiple of 8. The note says what changed."""
    if width <= 0 or height <= 0:
        raise RequestError("Nothing rendered yet: render the scene first (F12).")
    scale = min(1.0, float(max_side) / max(width, height)) if max_side else 1.0
    w = round_to_multiple(width * scale, multiple)
    h = round_to_multiple(height * scale, multiple)
    note = ""
    if (w, h) != (width, height):
        note = "The %dx%d render is restyled at %dx%d (%s)." % (
            width, height, w, h, "long side at most %d px, multiples of %d" % (max_side, multiple)
            if scale < 1.0 else "sizes must be multiples of %d" % multiple)
    return w, h, note


def pick_seed(seed, rng=None):
    """The seed to use for a run: `seed` itself, or a random one for -1 (an animation draws it once
    so that every frame shares it)."""
    seed = int(seed)
    if seed >= 0:
        return seed
    return (rng or random).randint(0, SEED_MAX)


def restyle_params(settings, width, height, init_image, seed=None):
    """The `generate` params that restyle one render: img2img from `init_image` (a kiln.Image or
    ref, RGB or RGBA, width x height) with settings' prompt, strength, sampler... `seed` overrides
    settings.seed (an animation passes the seed it drew)."""
    s = copy.copy(settings)
    s.mode = "img2img"
    if seed is not None:
        s.seed = int(seed)
    if init_image is None:
        raise RequestError("Nothing rendered yet: render the scene first (F12).")
    return generate_params(s, width, height, init_image=init_image)


def texture_params(settings, width, height, tiling=True):
    """The `generate` params of a texture: txt2img at width x height; with `tiling` (A1111's
    'Tiling') its left and right, top and bottom edges continue into each other."""
    s = copy.copy(settings)
    s.mode = "txt2img"
    params = generate_params(s, width, height)
    if tiling:
        params["tiling"] = True
    return params


def result_name(kind, prompt, seed, limit=MAX_ID_NAME):
    """A short name for a result (Blender image, layer): 'Kiln restyle: a watercolour… (seed 12)'.
    <lora:...> tags are kept out (the prompt's words say more), and the prompt is shortened so
    the whole name fits `limit` characters."""
    words = " ".join(re.sub(r"<[^>]*>", " ", prompt or "").replace(",", " ").split())
    tail = " (seed %s)" % seed
    head = "Kiln %s: " % kind
    room = limit - len(head) - len(tail)
    if room < 4:
        return (head + tail.strip())[:limit]
    if len(words) > room:
        words = words[:room - 1].rstrip() + "\u2026"
    name = head + words + tail
    while len(name.encode("utf-8")) > limit:  # Blender counts bytes, not characters
        words = words[:-2].rstrip() + "\u2026"
        name = head + words + tail
    return name


def parse_training_overrides(text):
    """kohya 'key=value' overrides from one line, separated by commas, semicolons or new lines
    ('max_train_epochs=2, network_dim=8'); the list `train`'s `set` takes. Values with commas go on
    their own line."""
    items = []
    lines = (text or "").replace(";", "\n").split("\n")
    for line in lines:
        parts = [line] if line.count("=") <= 1 else line.split(",")
        for part in parts:
            part = part.strip()
            if not part:
                continue
            if "=" not in part or not part.split("=", 1)[0].strip():
                raise RequestError("Training settings are 'key=value' (kohya names), e.g. 'max_train_epochs=10'; "
                                   "'%s' is not." % part)
            key, value = part.split("=", 1)
            items.append("%s=%s" % (key.strip(), value.strip()))
    return items


def settings_with(base=None, **changes):
    """A copy of GenerateSettings `base` (or defaults) with changes."""
    s = copy.copy(base) if base is not None else GenerateSettings()
    for k, v in changes.items():
        if not hasattr(s, k):
            raise AttributeError("GenerateSettings has no '%s'" % k)
        setattr(s, k, v)
    return s

