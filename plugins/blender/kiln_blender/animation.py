"""Restyling a frame range: one seed for every frame, outputs named like Blender's, resumable.

Each frame is rendered by Blender (or read from a folder of frames rendered earlier), sent to
kilnd as an img2img request with the run's one seed, and kilnd's PNG (with its infotext) is copied
atomically to the output named like Blender's own frame ('/renders/shot_####' ->
'/renders/kiln/shot_0007.png'). Outputs that exist are skipped, so running it again resumes from
the first missing frame. The run is a small state machine moved on by Controller.pump() from the
add-on's timer: nothing here waits. In Blender's UI frames are rendered as Blender's own F12 render
job (the UI stays live; Esc cancels it); in background mode (blender -b) rendering blocks, as it
always does there.
"""

import os

import bpy

from . import image_io
from .backend import frames, kiln, requests, restyle
from .connection import UserError

# The render Blender is doing for a run (set by the render_complete / render_cancel handlers).
_render = {"state": None}


def on_render_complete():
    if _render["state"] == "running":
        _render["state"] = "done"


def on_render_cancel():
    if _render["state"] == "running":
        _render["state"] = "cancelled"


class AnimationRun:
    def __init__(self, ctl, scene, settings, source="RENDER", folder="", output_dir="", restart=False, max_side=768):
        self.ctl = ctl
        self.scene_name = scene.name
        self.settings = settings
        self.source = source
        self.max_side = max_side
        self.id = None                    # the generate job in flight
        self.inputs = ()
        self.state = "next"               # next -> rendering -> send -> waiting -> next ... -> finished
        self.cancelled = False
        self.finished = False
        self.outputs = []                 # outputs written by this run, in order
        self.seeds = {}                   # frame -> seed kilnd reported
        self.note = ""
        self.frame_before = scene.frame_current
        try:
            if source == "FOLDER":
                found = frames.frames_in_folder(bpy.path.abspath(folder))
                self.sources = dict(found)
                all_frames = [f for f, _ in found]
                out_dir = bpy.path.abspath(output_dir) if output_dir else os.path.join(bpy.path.abspath(folder), "kiln")
                self.output_for = lambda f: os.path.join(out_dir, os.path.splitext(os.path.basename(self.sources[f]))[0] + ".png")
            else:
                self.sources = {}
                all_frames = frames.frame_range(scene.frame_start, scene.frame_end, scene.frame_step)
                blender_path = bpy.path.abspath(scene.render.filepath or "")
                if output_dir:
                    pattern = frames.split_output_path(blender_path)[1]
                    out_dir = bpy.path.abspath(output_dir)
                    self.output_for = lambda f: os.path.join(out_dir, frames.frame_name(pattern, f))
                else:
                    self.output_for = lambda f: frames.restyled_frame_path(blender_path, f)
                self.output_for(all_frames[0])  # refuses a scene without an output path, before anything runs
        except frames.FrameError as e:
            raise UserError(str(e))
        self.all_frames = all_frames
        self.todo = list(all_frames) if restart else frames.frames_to_do(all_frames, self.output_for)
        self.seed = restyle.pick_seed(settings.seed)
        self.progress = frames.FrameProgress(self.todo, skipped=len(all_frames) - len(self.todo))
        self.index = 0

    @property
    def scene(self):
        return bpy.data.scenes.get(self.scene_name)

    def start(self):
        skipped = self.progress.skipped
        if not self.todo:
            self._end("All %d frames are already restyled in %s; nothing to do (tick 'Restart' to redo them)."
                      % (len(self.all_frames), os.path.dirname(self.output_for(self.all_frames[0]))))
            return
        self.ctl.status = "Restyling %d frames with seed %d%s..." % (
            len(self.todo), self.seed, " (resuming: %d already done)" % skipped if skipped else "")
        self.ctl.progress = 0.0
        self.step()

    # -- the state machine ------------------------------------------------------------------

    def step(self):
        if self.finished:
            return
        try:
            if self.state == "next":
                self._next()
            elif self.state == "rendering":
                self._rendering()
            elif self.state == "send":
                self._send()
        except UserError as e:
            self._fail(str(e))
        except requests.RequestError as e:
            self._fail(str(e))

    def _next(self):
        if self.cancelled:
            missing = self._first_missing()
            self._end("Cancelled after %d of %d frames%s." % (
                len(self.progress.done), len(self.todo),
                "; run it again to resume from frame %d" % missing if missing is not None else ""), cancelled=True)
            return
        if self.index >= len(self.todo):
            self._end("Restyled %d frames with seed %d into %s." % (
                len(self.progress.done), self.seed, os.path.dirname(self.output_for(self.todo[-1]))))
            return
        frame = self.todo[self.index]
        self.progress.begin(frame)
        self._show()
        if self.source == "FOLDER":
            self.state = "send"
            self._send()
            return
        self.state = "rendering"
        self._start_render(frame)
        self._rendering()

    def _start_render(self, frame):
        scene = self.scene
        if scene is None:
            raise UserError("The scene '%s' is gone." % self.scene_name)
        scene.frame_set(frame)
        self.ctl.suppress_render_handler = True
        _render["state"] = "running"
        if not bpy.app.background and bpy.context.window_manager.windows:
            window = bpy.context.window_manager.windows[0]
            try:
                with bpy.context.temp_override(window=window):
                    result = bpy.ops.render.render("INVOKE_DEFAULT", scene=scene.name)
                if "RUNNING_MODAL" in result:
                    return  # the render job runs; the handlers say when it ends
            except RuntimeError as e:
                print("Kiln: the render could not start as a job (%s); rendering in place" % e)
        _render["state"] = "running"
        bpy.ops.render.render(scene=scene.name)
        if _render["state"] == "running":
            _render["state"] = "done"

    def _rendering(self):
        state = _render["state"]
        if state == "running" or (state == "done" and bpy.app.is_job_running("RENDER")):
            return
        self.ctl.suppress_render_handler = False
        if state == "cancelled" or self.cancelled:
            self.cancelled = True
            self.state = "next"
            self._next()
            return
        self.state = "send"
        self._send()

    def _size_for(self, w, h):
        nw, nh, note = restyle.plan_size(w, h, self.max_side)
        self.note = note
        return nw, nh

    def _send(self):
        frame = self.todo[self.index]
        scene = self.scene
        if self.source == "FOLDER":
            rgba, w, h = image_io.read_file(self.sources[frame], scene, self._size_for)
        else:
            rgba, w, h = image_io.read_render(scene, self._size_for)
        init = self.ctl.send_rgb(rgba, w, h)
        params = restyle.restyle_params(self.settings, w, h, init, seed=self.seed)
        record = self.ctl.conn.call("generate", params)
        self.id = record["id"]
        self.inputs = (init,)
        self.size = (w, h)
        self.state = "waiting"
        self.ctl.conn.session.watch(self.id, self._on_job)

    def _on_job(self, p):
        if p.job_id != self.id or self.finished:
            return
        if p.preview and not p.finished:
            self.ctl.show_preview(p.preview)
        self.progress.current_fraction = p.fraction if not p.finished else 0.0
        self._show()
        if not p.finished:
            return
        self.inputs = ()
        frame = self.todo[self.index]
        if p.state == "done":
            try:
                self._save(frame)
            except UserError as e:
                self._fail(str(e))
                return
            self.progress.finish(frame)
            self.index += 1
            self.state = "next"
        elif p.state == "failed":
            self._fail("Frame %d failed: %s" % (frame, p.error or "see kilnd's log"))
        else:
            self.cancelled = True
            self.state = "next"
        self._show()

    def _save(self, frame):
        record = self.ctl.conn.session.tracker.get(self.id) or {}
        result = record.get("result") or {}
        rgb, w, h, first = self.ctl.read_result(result, self.size)
        png = first.get("png")
        if not png:
            raise UserError("kilnd did not save frame %d as a PNG (is its outputs folder writable?)." % frame)
        dst = self.output_for(frame)
        try:
            self.ctl.conn.session.save_file(png, dst)  # copied, or downloaded from a remote kilnd
        except (OSError, kiln.Error) as e:
            raise UserError("Frame %d could not be written to %s: %s" % (frame, dst, e))
        self.outputs.append(dst)
        self.seeds[frame] = first.get("seed")
        # The latest frame is shown in the preview image as it lands.
        preview = image_io.set_image(image_io.PREVIEW_NAME, rgb, w, h, 3)
        image_io.show_in_editors(preview)

    # -- ending -----------------------------------------------------------------------------

    def cancel(self):
        """Stops after cancelling the frame in flight (its output is not written)."""
        self.cancelled = True
        if self.state == "waiting" and self.id:
            try:
                self.ctl.conn.call("jobs.cancel", {"id": self.id})
            except UserError:
                pass
        elif self.state == "rendering" and not bpy.app.background:
            pass  # Blender's own render job: Esc in the render view, or its status bar button, stops it
        if self.state in ("next", "send"):
            self.step()

    def _first_missing(self):
        for f in self.all_frames:
            if not os.path.exists(self.output_for(f)):
                return f
        return None

    def _show(self):
        self.ctl.progress = self.progress.fraction
        self.ctl.status = "Animation: " + self.progress.describe()
        self.ctl.changed()

    def _restore_frame(self):
        scene = self.scene
        if scene is not None and self.source == "RENDER" and scene.frame_current != self.frame_before:
            scene.frame_set(self.frame_before)

    def _end(self, line, cancelled=False):
        self.finished = True
        self.ctl.suppress_render_handler = False
        self._restore_frame()
        if self.ctl.image_task is self:
            self.ctl.image_task = None
        self.ctl.status = line
        self.ctl.progress = self.progress.fraction
        self.ctl.report("INFO" if not cancelled else "WARNING", line)

    def _fail(self, message):
        self.finished = True
        self.ctl.suppress_render_handler = False
        self._restore_frame()
        if self.ctl.image_task is self:
            self.ctl.image_task = None
        self.ctl.status = "Stopped: " + message
        self.ctl.report("ERROR", "%s (frames done: %d of %d; run it again to resume)." % (
            message, len(self.progress.done), len(self.todo)))

    def describe(self):
        return self.progress.describe()


def status_line(ctl):
    """The status bar's text while Kiln works, else ''."""
    task = ctl.image_task
    if isinstance(task, AnimationRun):
        return "Kiln: " + task.describe()
    if task is not None:
        return "Kiln: " + ctl.status
    if ctl.training is not None:
        return "Kiln training: " + ctl.train_status
    return ""

