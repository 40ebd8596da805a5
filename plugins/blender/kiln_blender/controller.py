"""What the panel's buttons do, without the panel: the Blender tests drive these same methods.

Everything heavy happens in kilnd. This module reads pixels through image_io, builds requests
(kiln.restyle, kiln.requests), queues jobs, follows them through the shared Session (pumped by a
bpy.app.timers callback on Blender's main thread) and puts the results into Blender: images,
the preview, a material's texture node. Frame ranges (animation.py) and training (training.py)
are driven from here too. Nothing here waits for a job: every method returns at once.
"""

import os

import bpy

from . import image_io, materials
from .backend import frames, jobs, kiln, pixels, requests, restyle, sizes
from .connection import Connection, UserError

IMAGE_KINDS = ("restyle", "texture")


class ImageTask:
    """One generate job whose result becomes an Image datablock (a restyle or a texture)."""

    def __init__(self, kind, job_id, settings, size, inputs=(), scene=None, material=None):
        self.kind = kind
        self.id = job_id
        self.settings = settings
        self.size = size                   # (w, h) sent
        self.inputs = inputs               # shm images, kept until the job ends
        self.scene = scene                 # scene name (its output path, frame)
        self.frame = None
        self.material = material           # texture: the material's name
        self.finished = False


class Controller:
    def __init__(self, conn):
        self.conn = conn
        self.image_task = None        # an ImageTask, or an animation.AnimationRun
        self.training = None          # a training.TrainingRun
        self.models = []
        self.model_sizes = {}  # name -> the side the model works at (kiln.sizes)
        self.loras = []
        self.status = ""              # the render side's line: "running · step 3/20 · ETA 0:04"
        self.progress = 0.0           # 0..1, the render side
        self.train_status = ""
        self.train_progress = 0.0
        self.messages = []            # (level, text), every report, newest last
        self.last_result = None       # {"image", "png", "seed", "saved", "job"} of the last image made
        self.on_report = None         # callable(level, text): Blender reports
        self.on_change = None         # callable(): redraw the panels
        self.suppress_render_handler = False  # an animation is rendering its frames

    # -- reporting -------------------------------------------------------------------------

    def report(self, level, text):
        self.messages.append((level, text))
        print("Kiln %s: %s" % (level.lower(), text), flush=True)
        if self.on_report is not None:
            try:
                self.on_report(level, text)
            except Exception as e:  # noqa: BLE001 - a report must never break the pump
                print("Kiln: could not show a report: %s" % e)
        self.changed()

    def changed(self):
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # noqa: BLE001
                pass

    @property
    def busy(self):
        return self.image_task is not None or self.training is not None

    # -- the pump (bpy.app.timers) -----------------------------------------------------------

    def pump(self):
        """Runs what kilnd sent and moves frame ranges and trainings on. Returns True while work
        is in flight (the timer then comes back sooner)."""
        self.conn.pump()
        if self.image_task is not None and hasattr(self.image_task, "step"):
            self.image_task.step()
        if self.training is not None:
            self.training.step()
        return self.busy

    # -- library -----------------------------------------------------------------------------

    def refresh(self):
        """Connects and reloads the model and LoRA lists. Returns (models, loras)."""
        entries = self.conn.call("models.list").get("models", [])
        self.models = [m.get("name", "") for m in entries]
        self.model_sizes = sizes.model_sizes(entries)
        self.loras = []
        if self.conn.has_method("loras.list"):
            self.loras = [l.get("name", "") if isinstance(l, dict) else str(l)
                          for l in self.conn.call("loras.list").get("loras", [])]
        self.changed()
        return self.models, self.loras

    def add_model(self, path):
        self.conn.ensure()
        try:
            # a file of this computer is refused over a remote daemon (models are never copied)
            path = self.conn.session.model_path_for_daemon(bpy.path.abspath(path) if path else path)
        except ValueError as e:
            raise UserError(str(e))
        entry = self.conn.call("models.add", {"path": path})
        self.refresh()
        self.report("INFO", "Added the model '%s'." % entry.get("name", path))
        return entry.get("name", "")

    def check_model(self, settings):
        """Refuses a missing or unknown model before anything is rendered or sent."""
        if not settings.model:
            if not self.models:
                self.refresh()
            if not self.models:
                raise UserError("kilnd has no models yet: add an SD 1.x or SDXL checkpoint with 'Add Model' "
                                "(Image Editor > Sidebar > Kiln).")
            raise UserError("Pick a base model first.")

    # -- restyle and texture -------------------------------------------------------------------

    def _require_idle(self):
        if self.image_task is not None:
            raise UserError("Kiln is already restyling or generating; cancel it or wait for it.")

    def native_size(self, model):
        """The side `model` works at: 512 for SD 1.x, 1024 for SDXL (from models.list)."""
        return self.model_sizes.get(model, sizes.SD1_SIZE)

    def restyle(self, scene, settings, image=None, max_side=0):
        """Restyles the Render Result (or `image`) as seen: an img2img job; the result arrives as a
        new image shown in the Image Editor. `max_side` 0: the model's (kiln.sizes.restyle_max_side).
        Returns the job id. Raises UserError."""
        self._require_idle()
        self.check_model(settings)
        max_side = max_side or sizes.restyle_max_side(self.native_size(settings.model))
        self.conn.ensure()
        notes = []

        def size_for(w, h):
            nw, nh, note = restyle.plan_size(w, h, max_side)
            if note:
                notes.append(note)
            return nw, nh

        if image is None or image.type == "RENDER_RESULT":
            rgba, w, h = image_io.read_render(scene, size_for)
        else:
            rgba, w, h = image_io.read_image(image, scene, size_for)
        init = self.send_rgb(rgba, w, h)
        try:
            params = restyle.restyle_params(settings, w, h, init)
        except requests.RequestError as e:
            raise UserError(str(e))
        task = ImageTask("restyle", None, settings, (w, h), (init,), scene.name)
        task.frame = scene.frame_current
        self._start(task, params, (notes[0] + " " if notes else "") + "Restyling %dx%d..." % (w, h))
        return task.id

    def send_rgb(self, rgba, w, h):
        """A shared-memory RGB image of RGBA u8 pixels, transparency flattened onto white (kilnd
        reads RGB; a transparent film would otherwise turn black)."""
        init = self.conn.session.create_image(w, h, 3)
        init.write(pixels.flatten_onto(rgba, w, h, layout="RGBA"), "RGBA")
        return init

    def texture(self, obj, settings, width, height, seamless=True):
        """A txt2img texture (tiled when `seamless`) into a new image, put into the active material's
        Image Texture node of `obj`. Returns the job id. Raises UserError."""
        self._require_idle()
        material = materials.target_material(obj)
        self.check_model(settings)
        if not width or not height:  # 0: the model's own size
            width = width or sizes.texture_size(self.native_size(settings.model))
            height = height or sizes.texture_size(self.native_size(settings.model))
        if seamless and not self.generate_tiles():
            raise UserError("This kilnd cannot make seamless textures yet (its 'generate' has no 'tiling'): update "
                            "Kiln, or untick Seamless.")
        try:
            params = restyle.texture_params(settings, width, height, tiling=seamless)
        except requests.RequestError as e:
            raise UserError(str(e))
        task = ImageTask("texture", None, settings, (width, height), (), material=material.name)
        self._start(task, params, "Generating a %dx%d %stexture for '%s'..." % (
            width, height, "seamless " if seamless else "", material.name))
        return task.id

    def generate_tiles(self):
        """Whether this kilnd's `generate` takes `tiling`. kilnd checks every request against its
        method table before anything is queued, so a request with a mistyped `tiling` is refused
        either as an unknown parameter (an older kilnd) or as a wrong type (one that tiles)."""
        if getattr(self.conn, "tiling", None) is None:
            self.conn.ensure()
            try:
                self.conn.session.call("generate", {"model": "", "prompt": "", "tiling": "probe"})
                self.conn.tiling = True
            except kiln.RpcError as e:
                self.conn.tiling = "unknown parameter 'tiling'" not in str(e)
        return self.conn.tiling

    def _start(self, task, params, status):
        record = self.conn.call("generate", params)
        task.id = record["id"]
        self.image_task = task
        self.status = status
        self.progress = 0.0
        self.conn.session.watch(task.id, self._on_image_job)
        self.changed()

    def cancel(self):
        """Cancels the restyle, texture or animation in flight."""
        task = self.image_task
        if task is None:
            return False
        if hasattr(task, "cancel"):
            task.cancel()
        elif task.id:
            self.conn.call("jobs.cancel", {"id": task.id})
        return True

    def _on_image_job(self, p):
        task = self.image_task
        if task is None or getattr(task, "id", None) != p.job_id:
            return
        if p.preview and not p.finished:
            self.show_preview(p.preview)
        self.progress = p.fraction
        if not p.finished:
            self.status = jobs.describe(p)
            self.changed()
            return
        self.image_task = None
        task.inputs = ()
        record = self.conn.session.tracker.get(p.job_id) or {}
        if p.state == "done":
            try:
                self._finish_image(task, record.get("result") or {})
            except UserError as e:
                self.report("ERROR", str(e))
        elif p.state == "failed":
            self.status = "Failed."
            self.report("ERROR", "The %s failed: %s" % (task.kind, p.error or "see kilnd's log"))
        else:
            self.status = "Cancelled: no image was made."
            self.report("INFO", "The %s was cancelled." % task.kind)
        self.changed()

    def show_preview(self, ref):
        """Shows a job's preview (an image reference) in the Kiln Preview image."""
        try:
            img = self.conn.session.read_image(ref)
        except kiln.Error:
            return None  # previews expire; the next one will do
        preview = image_io.set_image(image_io.PREVIEW_NAME, img.tobytes("RGB"), img.width, img.height, 3)
        image_io.show_in_editors(preview)
        return preview

    def read_result(self, result, size=None):
        """(RGB u8 bytes, w, h, first entry) of a generate job's first image. The block is shared
        with other clients: mapped and copied, never taken."""
        images = result.get("images") or []
        if not images or "image" not in images[0]:
            raise UserError("kilnd finished without an image.")
        img = self.conn.session.read_image(images[0]["image"])
        if size is not None and (img.width, img.height) != tuple(size):
            raise UserError("kilnd returned a %dx%d image for a %dx%d request." % (img.width, img.height, size[0], size[1]))
        return img.tobytes("RGB"), img.width, img.height, images[0]

    def _finish_image(self, task, result):
        rgb, w, h, first = self.read_result(result, task.size)
        seed = first.get("seed", result.get("seed", "?"))
        name = restyle.result_name(task.kind, task.settings.prompt, seed)
        image = image_io.new_image(name, rgb, w, h, 3)
        image_io.show_in_editors(image)
        saved = None
        line = "Made '%s'." % image.name
        if task.kind == "texture":
            material = bpy.data.materials.get(task.material)
            if material is None:
                raise UserError("The material '%s' is gone; the texture is the image '%s'." % (task.material, image.name))
            node = materials.assign_texture(material, image)
            line = "The texture '%s' is in '%s' (node '%s')." % (image.name, material.name, node.name)
        else:
            scene = bpy.data.scenes.get(task.scene)
            if scene is not None and first.get("png"):
                saved = self.save_beside_output(scene, first["png"], seed, task.frame)
                if saved:
                    line += " Saved %s." % saved
        self.last_result = {"image": image.name, "png": first.get("png"), "seed": seed, "saved": saved,
                            "job": task.id, "kind": task.kind}
        self.status = line
        self.progress = 1.0
        self.report("INFO", line)

    def save_beside_output(self, scene, png, seed, frame=None):
        """Copies kilnd's PNG (with its infotext) to <output folder>/kiln/<frame name>-seed<seed>.png
        when the scene has an output path. Returns the path, or None."""
        path = bpy.path.abspath(scene.render.filepath or "")
        if not scene.render.filepath:
            return None
        folder, pattern = frames.split_output_path(path)
        if not folder:
            return None
        stem = frames.frame_name(pattern, scene.frame_current if frame is None else frame, ext="")
        dst = os.path.join(folder, "kiln", "%s-seed%s.png" % (stem, seed))
        try:
            self.conn.session.save_file(png, dst)  # downloaded from a remote kilnd
        except (OSError, kiln.Error) as e:
            self.report("WARNING", "The image could not be saved beside the output path (%s): %s" % (dst, e))
            return None
        return dst

    # -- animation and training (animation.py, training.py) ----------------------------------

    def restyle_animation(self, scene, settings, source="RENDER", folder="", output_dir="", restart=False,
                          max_side=0):
        """Starts restyling a frame range (see animation.AnimationRun). Returns the run."""
        from .animation import AnimationRun
        self._require_idle()
        self.check_model(settings)
        self.conn.ensure()
        max_side = max_side or sizes.restyle_max_side(self.native_size(settings.model))
        run = AnimationRun(self, scene, settings, source, folder, output_dir, restart, max_side)
        self.image_task = run
        run.start()
        self.changed()
        return run

    def train(self, scene, dataset, train_settings, images=(), folder=""):
        """Makes a style dataset from images / a folder and trains a LoRA on it (see
        training.TrainingRun). Returns the run."""
        from .training import TrainingRun
        if self.training is not None:
            raise UserError("A training is already running; cancel it or wait for it.")
        if not train_settings.base_model:
            self.check_model(requests.GenerateSettings())
        run = TrainingRun(self, scene, dataset, train_settings, images, folder)
        run.start()
        if not run.finished:
            self.training = run
        self.changed()
        return run

    def cancel_training(self):
        if self.training is None:
            return False
        self.training.cancel()
        return True


_controller = None
# Set by handlers.register(): Blender reports and panel redraws for every new Controller.
hooks = {"on_report": None, "on_change": None}


def controller(create=True):
    """The shared Controller, made on first use from the add-on's preferences."""
    global _controller
    if _controller is None and create:
        from .prefs import connection_settings
        socket, data_dir, daemon = connection_settings()
        _controller = Controller(Connection(socket, data_dir, daemon))
        _controller.on_report = hooks["on_report"]
        _controller.on_change = hooks["on_change"]
    return _controller


def reset():
    """Forgets the connection (preferences changed); running jobs go on in kilnd."""
    global _controller
    if _controller is not None:
        try:
            _controller.conn.close()
        except Exception:  # noqa: BLE001
            pass
    _controller = None
