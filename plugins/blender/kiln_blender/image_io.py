"""Blender images <-> pixels: the only module that reads or writes Blender's pixels.

Image.pixels (foreach_get / foreach_set) are float RGBA, 0..1, rows bottom-up. A byte image (a PNG,
or one made by bpy.data.images.new) stores 8-bit sRGB and reads back exactly byte / 255; writing
rounds to the nearest byte, so u8 pixels round-trip exactly. Float images (EXR, HDR) hold
scene-linear values. kilnd takes and returns u8 rows top-down (RGB from generate; RGB or RGBA for
datasets).

The Render Result has no pixels Python can read: it is saved once with the scene's colour
management (view transform, look, exposure: what the artist sees) as an 8-bit sRGB PNG, and that
PNG's bytes are what kilnd gets.
"""

import os
import shutil
import tempfile

import bpy
import numpy as np

from .backend import pixels
from .connection import UserError

KILN_TAG = "kiln"            # custom property marking images the add-on made
PREVIEW_NAME = "Kiln Preview"
SAMPLE_NAME = "Kiln Training Sample"


def render_result():
    """The Render Result image, or None."""
    return next((im for im in bpy.data.images if im.type == "RENDER_RESULT"), None)


def _save_as_seen(image, scene, path):
    """image.save_render as an 8-bit RGBA PNG with the scene's colour management, whatever the
    scene's own output format is (restored after)."""
    s = scene.render.image_settings
    saved = (s.file_format, s.color_depth, s.color_mode, s.compression)
    try:
        s.file_format = "PNG"
        s.color_depth = "8"
        s.color_mode = "RGBA"
        s.compression = 0
        image.save_render(path, scene=scene)
    finally:
        fmt, depth, mode, compression = saved
        s.file_format = fmt
        try:
            s.color_depth = depth
            s.color_mode = mode
        except TypeError:  # not offered by the restored format; Blender picked its default
            pass
        s.compression = compression


def _read_png(path, size=None):
    """(RGBA u8 top-down, w, h) of a PNG through Blender's own loader; `size` (w, h) scales it."""
    img = bpy.data.images.load(path, check_existing=False)
    try:
        if size and tuple(img.size) != tuple(size):
            img.scale(int(size[0]), int(size[1]))
        return _byte_pixels(img), img.size[0], img.size[1]
    finally:
        bpy.data.images.remove(img)


def _byte_pixels(image):
    w, h = image.size
    n = len(image.pixels)
    if w == 0 or h == 0 or n == 0:
        raise UserError("The image '%s' has no pixels (is its file missing?)." % image.name)
    buf = np.empty(n, dtype=np.float32)
    image.pixels.foreach_get(buf)
    channels = n // (w * h)
    if channels != 4:
        rgba = np.ones((w * h, 4), dtype=np.float32)
        rgba[:, :channels] = buf.reshape(w * h, channels)[:, :4]
        buf = rgba.ravel()
    return pixels.float_rgba_to_u8(buf, w, h)


def read_render(scene, size_for=None):
    """(RGBA u8 top-down, w, h) of the Render Result as the artist sees it. `size_for(w, h)` ->
    (w2, h2) picks the size to send (e.g. rounded to multiples of 8): the PNG is scaled to it."""
    rr = render_result()
    if rr is None:
        raise UserError("Nothing rendered yet: render the scene first (F12).")
    folder = tempfile.mkdtemp(prefix="kiln-render-")
    try:
        path = os.path.join(folder, "render.png")
        try:
            _save_as_seen(rr, scene, path)
        except RuntimeError:
            raise UserError("Nothing rendered yet: render the scene first (F12).")
        if not os.path.exists(path):
            raise UserError("Nothing rendered yet: render the scene first (F12).")
        if size_for is None:
            return _read_png(path)
        probe = bpy.data.images.load(path, check_existing=False)
        w, h = probe.size[0], probe.size[1]
        bpy.data.images.remove(probe)
        return _read_png(path, size_for(w, h))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_image(image, scene=None, size_for=None):
    """(RGBA u8 top-down, w, h) of any image datablock as it is shown: the Render Result through
    the scene's colour management, byte images as stored, float images (scene-linear) through the
    scene's view transform when a scene is given, else the standard sRGB curve."""
    if image.type == "RENDER_RESULT":
        if scene is None:
            raise UserError("Reading the Render Result needs its scene.")
        return read_render(scene, size_for)
    if image.is_float and scene is not None:
        folder = tempfile.mkdtemp(prefix="kiln-image-")
        try:
            path = os.path.join(folder, "image.png")
            _save_as_seen(image, scene, path)
            w, h = image.size
            return _read_png(path, size_for(w, h) if size_for else None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    w, h = image.size
    if w == 0 or h == 0:
        raise UserError("The image '%s' has no pixels (is its file missing?)." % image.name)
    if size_for is not None and tuple(size_for(w, h)) != (w, h):
        copy = image.copy()
        try:
            copy.scale(*size_for(w, h))
            return read_image(copy, scene)
        finally:
            bpy.data.images.remove(copy)
    if image.is_float:
        buf = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(buf)
        return pixels.linear_float_rgba_to_srgb_u8(buf, w, h), w, h
    return _byte_pixels(image), w, h


def read_file(path, scene=None, size_for=None):
    """(RGBA u8 top-down, w, h) of an image file (a rendered frame), as read_image shows it."""
    try:
        img = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as e:
        raise UserError("Blender cannot read '%s': %s" % (path, e))
    try:
        return read_image(img, scene, size_for)
    finally:
        bpy.data.images.remove(img)


def _float_rows(data, width, height, channels):
    return pixels.u8_to_float_rgba(data, width, height, channels)


def new_image(name, data, width, height, channels=3, pack=True):
    """A new byte image datablock holding u8 rows top-down (RGB or RGBA), packed into the .blend
    (so it is saved with the file). Returns it."""
    img = bpy.data.images.new(name, width, height, alpha=(channels == 4))
    img.pixels.foreach_set(_float_rows(data, width, height, channels))
    img[KILN_TAG] = True
    if pack:
        img.pack()
    img.update()
    return img


def set_image(name, data, width, height, channels=3):
    """Writes u8 rows into the image called `name` (created, or resized, as needed): the preview
    that follows a render. Returns it."""
    img = bpy.data.images.get(name)
    if img is None or not img.get(KILN_TAG) or img.source != "GENERATED":
        img = bpy.data.images.new(name, width, height)
        img[KILN_TAG] = True
    elif tuple(img.size) != (width, height):
        img.scale(width, height)
    img.pixels.foreach_set(_float_rows(data, width, height, channels))
    img.update()
    _refresh_icon(img)
    return img


def _refresh_icon(img):
    try:
        img.preview_ensure()
        img.preview.reload()
    except (AttributeError, RuntimeError):  # no previews in background mode
        pass


def icon_id(img):
    """The icon of an image for a panel (0 when Blender has none yet)."""
    try:
        img.preview_ensure()
        return img.preview.icon_id
    except (AttributeError, RuntimeError):
        return 0


def show_in_editors(image):
    """Shows `image` in the Image Editors that show nothing, the Render Result or an earlier Kiln
    image (the user's other images stay). Returns how many editors show it."""
    shown = 0
    wm = bpy.context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type != "IMAGE_EDITOR":
                continue
            space = area.spaces.active
            current = space.image
            if current is None or current.type == "RENDER_RESULT" or current.get(KILN_TAG) or current == image:
                space.image = image
                area.tag_redraw()
                shown += 1
    return shown
