"""Shared by the Blender test cases (blender -b) and the GUI probe: installing the add-on zip as a
user does, a small scene rendered with Cycles on the CPU, pumping the add-on's timer callback, and
reading PNGs without Blender (so pixels are compared against an independent decoder)."""

import os
import struct
import time
import zlib

import bpy

ADDON = "kiln_blender"
MODEL = os.environ.get("KILN_TEST_MODEL", "tiny")


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def check_equal(a, b, message):
    if a != b:
        raise Failure("%s: %r != %r" % (message, a, b))


def install_addon(zip_path):
    """Edit > Preferences > Add-ons > Install... then the checkbox: Blender's own operators."""
    result = bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
    check_equal(result, {"FINISHED"}, "addon_install")
    result = bpy.ops.preferences.addon_enable(module=ADDON)
    check_equal(result, {"FINISHED"}, "addon_enable")
    import kiln_blender
    folder = os.path.dirname(kiln_blender.__file__)
    scripts = bpy.utils.user_resource("SCRIPTS", path="addons")
    check(os.path.abspath(folder).startswith(os.path.abspath(scripts)),
          "the add-on was installed into the user profile (%s), not found elsewhere (%s)" % (scripts, folder))
    check(any(n.startswith("_kiln") for n in os.listdir(os.path.join(folder, "kiln"))),
          "the compiled client module was installed with the add-on")
    from kiln_blender import backend
    check(backend.load_error is None, "the bundled client loads: %s" % backend.load_error)
    check(backend.kiln.__name__ == "kiln_blender.kiln", "the bundled copy of the client is used (%s)" % backend.kiln.__name__)
    return folder


def material(name, colour):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    bsdf = m.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = colour
    return m


def make_scene(width=64, height=48):
    """A few objects, a light and a camera; Cycles on the CPU, 4 samples, no denoising."""
    scene = bpy.context.scene
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj, do_unlink=True)
    bpy.ops.mesh.primitive_plane_add(size=8, location=(0, 0, 0))
    bpy.context.active_object.data.materials.append(material("ground", (0.8, 0.75, 0.6, 1)))
    bpy.ops.mesh.primitive_cube_add(size=1.5, location=(-1.2, 0, 0.75))
    cube = bpy.context.active_object
    cube.name = "Cube"
    cube.data.materials.append(material("cube", (0.8, 0.1, 0.1, 1)))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.8, location=(1.2, 0.3, 0.8))
    bpy.context.active_object.data.materials.append(material("sphere", (0.1, 0.2, 0.9, 1)))
    bpy.ops.object.light_add(type="SUN", location=(3, -3, 6))
    bpy.context.active_object.data.energy = 4.0
    bpy.ops.object.camera_add(location=(0, -7, 4.5), rotation=(1.0, 0, 0))
    scene.camera = bpy.context.active_object
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end, scene.frame_step = 1, 3, 1
    # Blender's default output path is /tmp/: the test's own folder instead.
    scene.render.filepath = os.path.join(os.environ.get("KILN_TEST_OUT", "/tmp"), "render", "")
    # Something moves, so the frames differ.
    cube.location.x = -1.6
    cube.keyframe_insert("location", frame=1)
    cube.location.x = -0.6
    cube.keyframe_insert("location", frame=3)
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    return scene


def addon():
    from kiln_blender import controller, handlers, image_io
    return controller, handlers, image_io


def pump_until(predicate, timeout=120.0, what="the condition", idle=None):
    """Calls the add-on's timer callback (handlers.tick, what bpy.app.timers runs in Blender's UI)
    until predicate() holds. `idle` runs between ticks (e.g. a pending render timer)."""
    _, handlers, _ = addon()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handlers.tick()
        if idle is not None:
            idle()
        if predicate():
            return
        time.sleep(0.02)
    raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))


# -- PNGs without Blender --------------------------------------------------------------------

def read_png(path):
    """(width, height, channels, bytes) of an 8-bit non-interlaced PNG (grey, RGB or RGBA), decoded
    here with zlib so it does not depend on Blender's loader."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "%s is a PNG" % path)
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, colour, _, _, interlace = header
    check(depth == 8 and interlace == 0 and colour in (0, 2, 6), "a plain 8-bit PNG (%s)" % (header,))
    ch = {0: 1, 2: 3, 6: 4}[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = w * ch
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b = prev[i]
            c = prev[i - ch] if i >= ch else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return w, h, ch, bytes(out)


def image_rgb(image):
    """RGB bytes, rows top-down, of an image datablock's pixels (foreach_get, rounded)."""
    import numpy as np
    w, h = image.size
    buf = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(buf)
    a = (np.clip(buf.reshape(h, w, 4)[::-1, :, :3], 0, 1) * 255.0 + 0.5).astype(np.uint8)
    return a.tobytes()


def max_difference(a, b):
    import numpy as np
    x = np.frombuffer(a, dtype=np.uint8).astype(np.int16)
    y = np.frombuffer(b, dtype=np.uint8).astype(np.int16)
    check_equal(x.size, y.size, "pixel counts")
    return int(np.abs(x - y).max()) if x.size else 0


def rgb_of(w, h, ch, data):
    if ch == 3:
        return data
    import numpy as np
    return np.frombuffer(data, dtype=np.uint8).reshape(h, w, ch)[..., :3].tobytes()
