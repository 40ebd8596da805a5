"""The image size a model works at, by family, for host plugins' defaults and notes.

kilnd's `models.list` gives each model its family and "default_size" (the daemon's table of model
families): SD 1.x models were trained at 512x512, SDXL ones at 1024x1024. Hosts size a generation
from their canvas or render; these helpers choose the defaults where a host has none (a texture's
size, a restyle's longest side) and word the notes about sizes far from the model's own.
"""

SD1_SIZE = 512
SDXL_SIZE = 1024


def native_size(model=None):
    """The side in pixels a model works best at. `model` is a models.list entry (a dict: its
    "default_size", else its "family"), a family name ("SD1.x", "SDXL") or None (SD 1.x)."""
    if isinstance(model, dict):
        size = model.get("default_size")
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            return size
        model = model.get("family")
    if isinstance(model, str) and model.strip().upper().startswith("SDXL"):
        return SDXL_SIZE
    return SD1_SIZE


def model_sizes(models):
    """{name: native size} of a models.list result (the dict, or its "models" list)."""
    if isinstance(models, dict):
        models = models.get("models", [])
    return {m.get("name", ""): native_size(m) for m in models or [] if isinstance(m, dict)}


def family_label(native):
    """How a note names the family of a model of this native size."""
    return "SDXL" if native >= SDXL_SIZE else "SD 1.x"


def area_note(width, height, native=SD1_SIZE):
    """A note when width x height is far from the model's own size: above four times its area
    (slow), and for SDXL below a quarter of it (SDXL loses detail there); "" otherwise."""
    area, own = int(width) * int(height), int(native) * int(native)
    label = family_label(native)
    if area > 4 * own:
        return "Large area: %s works best near %dx%d; this will be slow." % (label, native, native)
    if native >= SDXL_SIZE and area < own // 4:
        return "Small area: %s works best near %dx%d; below that it loses detail." % (label, native, native)
    return ""


def restyle_max_side(native=SD1_SIZE):
    """A restyle's longest side when the user chose none: one and a half times the model's size
    (768 for SD 1.x, 1536 for SDXL)."""
    return int(native) * 3 // 2


def texture_size(native=SD1_SIZE):
    """A texture's side when the user chose none: the model's own (512 SD 1.x, 1024 SDXL)."""
    return int(native)
