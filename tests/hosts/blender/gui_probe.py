"""Kiln's Blender GUI probe, run by run_blender_test.py gui inside the full Blender under Xvfb:

  xvfb-run blender --factory-startup --enable-event-simulate --python gui_probe.py

Once the window is up (a bpy.app.timers callback), it installs the add-on zip with Blender's own
operators, builds the small scene, turns the 3D View into an Image Editor with its sidebar open,
ticks 'Restyle every render' and starts an F12-style render job (INVOKE, the UI stays live): the
add-on restyles the Render Result when the job ends. Then it presses the panel's buttons (its
operators, run in the Image Editor's context as a click runs them): Connect, Restyle Render, and
Restyle Animation over two frames, each frame rendered as a render job; all of it moved on by the
add-on's own timer. Finally it switches the sidebar to the Kiln tab (simulated clicks on its tab
strip), saves screenshots of the Image Editor and the window to $KILN_TEST_OUT, writes
result.json there and quits.

The model is kilnd's "tiny" test model (noise, quickly). With KILN_TEST_MODEL=kiln-mini
(run_blender_test.py sets it when README screenshots are asked for) it is Kiln Mini instead, with
what it knows: a 64x64 render, Euler at CFG 5, a prompt from its vocabulary. The checks are the same.
"""

import json
import os
import sys
import time
import traceback

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blender_support import MODEL, install_addon, make_scene  # noqa: E402

OUT = os.environ.get("KILN_TEST_OUT", "/tmp")
SHOTS = os.environ.get("KILN_TEST_SCREENSHOT_DIR")
DEADLINE_S = float(os.environ.get("KILN_TEST_GUI_DEADLINE", "200"))
MINI = MODEL == "kiln-mini"
# (render width, height, Cycles samples), prompt, negative, steps, CFG, and the steps of the run that
# Esc cancels (long enough that a frame is still in flight when Esc arrives): the tiny model's as the
# test always ran; Kiln Mini's at its 64x64, with words it was trained on (a 64x64 frame is quick).
if MINI:
    RENDER, PROMPT, NEGATIVE, STEPS, CFG = (64, 64, 16), "a red wooden box on a wooden table, warm light", "", 20, 5.0
    ESC_STEPS = 300
else:
    RENDER, PROMPT, NEGATIVE, STEPS, CFG = (128, 96, None), "an ink drawing of a house", "blurry", 6, None
    ESC_STEPS = 40


class Probe:
    def __init__(self):
        self.result = {"errors": [], "steps": []}
        self.t0 = time.monotonic()
        self.next = self.start
        self.tab_tries = 0
        self.tab_clicked = 0.0
        self.tab_offset = 0

    def log(self, text):
        self.result["steps"].append("%.1f s: %s" % (time.monotonic() - self.t0, text))
        print("kiln-gui-probe: " + text, flush=True)

    def fail(self, text):
        self.result["errors"].append(text)
        print("kiln-gui-probe: ERROR " + text, flush=True)
        self.next = self.finish

    def tick(self):
        """The probe's own timer: runs the current step; a step returns seconds until the next one."""
        if time.monotonic() - self.t0 > DEADLINE_S and self.next not in (self.finish, self.quit):
            self.fail("out of time in step %s; Kiln's status: %s" % (self.next.__name__, self.status()))
        try:
            delay = self.next()
        except Exception as e:  # noqa: BLE001 - reported as a test failure
            self.fail("%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
            delay = 0.1
        return 0.1 if delay is None else delay

    def status(self):
        try:
            from kiln_blender import controller
            c = controller.controller(create=False)
            return "%s | %s" % (c.status, c.messages[-2:]) if c else "no controller"
        except Exception as e:  # noqa: BLE001
            return str(e)

    # -- helpers ------------------------------------------------------------------------------

    def window(self):
        return bpy.context.window_manager.windows[0]

    def editor(self):
        for area in self.window().screen.areas:
            if area.type == "IMAGE_EDITOR":
                return area
        return None

    def press(self, operator, **kw):
        """A button's click: the operator invoked in the Image Editor's sidebar."""
        area = self.editor()
        region = next(r for r in area.regions if r.type == "UI")
        with bpy.context.temp_override(window=self.window(), area=area, region=region):
            return operator("INVOKE_DEFAULT", **kw)

    def ctl(self):
        from kiln_blender import controller
        return controller.controller()

    # -- steps ----------------------------------------------------------------------------------

    def start(self):
        # A fresh profile opens Blender's Quick Setup splash: Esc closes it, as a user would.
        win = self.window()
        win.event_simulate("ESC", "PRESS", x=win.width // 2, y=win.height // 2)
        win.event_simulate("ESC", "RELEASE", x=win.width // 2, y=win.height // 2)
        install_addon(os.environ["KILN_TEST_ZIP"])
        bpy.context.preferences.view.render_display_type = "NONE"  # keep the layout; the editor shows results
        scene = make_scene(RENDER[0], RENDER[1])
        if RENDER[2]:
            scene.cycles.samples = RENDER[2]
        s = scene.kiln
        s.model, s.prompt, s.negative = MODEL, PROMPT, NEGATIVE
        s.seed, s.steps, s.sampler, s.strength = 1234, STEPS, "Euler", 0.6
        if CFG is not None:
            s.cfg = CFG
        scene.render.filepath = os.path.join(OUT, "render", "shot_###")
        screen = self.window().screen
        view3d = max((a for a in screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
        view3d.type = "IMAGE_EDITOR"
        view3d.spaces.active.show_region_ui = True
        self.log("add-on installed, scene built, Image Editor %dx%d" % (view3d.width, view3d.height))
        result = self.press(bpy.ops.kiln.connect)
        wm = bpy.context.window_manager
        self.result["models"] = [m.name for m in wm.kiln_models]
        if result != {"FINISHED"} or MODEL not in self.result["models"]:
            self.fail("Connect: %s, models %s" % (result, self.result["models"]))
            return
        self.log("connected: %s" % self.ctl().conn.info_line)
        s.restyle_every_render = True
        with bpy.context.temp_override(window=self.window(), area=self.editor()):
            result = bpy.ops.render.render("INVOKE_DEFAULT")
        self.log("render job started: %s" % result)
        self.render_started = time.monotonic()
        self.next = self.wait_auto_restyle
        return 0.5

    def wait_auto_restyle(self):
        c = self.ctl()
        last = c.last_result
        if last is None or "(seed 1234)" not in last["image"]:
            return 0.2
        self.result["auto_restyle"] = last
        self.log("restyled after the render job: %s in %.1f s" % (last["image"], time.monotonic() - self.render_started))
        bpy.context.scene.kiln.restyle_every_render = False
        bpy.context.scene.kiln.seed = 99
        result = self.press(bpy.ops.kiln.restyle, source="RENDER")
        if result != {"FINISHED"} or c.image_task is None:
            self.fail("Restyle Render did not start: %s %s" % (result, self.status()))
            return
        self.log("Restyle Render pressed: %s" % c.status)
        self.next = self.wait_restyle
        return 0.2

    def wait_restyle(self):
        c = self.ctl()
        if c.image_task is not None:
            return 0.2
        last = c.last_result
        if last is None or "(seed 99)" not in last["image"]:
            self.fail("the restyle ended without its image: %s" % self.status())
            return
        shown = self.editor().spaces.active.image
        self.result["restyle"] = last
        self.result["editor_shows"] = shown.name if shown else None
        if shown is None or shown.name != last["image"]:
            self.fail("the Image Editor shows %r, not the result %r" % (shown and shown.name, last["image"]))
            return
        self.log("the editor shows %s" % shown.name)
        scene = bpy.context.scene
        scene.frame_end = 2
        scene.render.filepath = os.path.join(OUT, "anim", "frame_##")
        result = self.press(bpy.ops.kiln.restyle_animation)
        if result != {"RUNNING_MODAL"}:
            self.fail("Restyle Animation: %s %s" % (result, self.status()))
            return
        self.anim = c.image_task
        self.anim_started = time.monotonic()
        self.log("Restyle Animation pressed (modal, Esc cancels): %s" % c.status)
        self.next = self.wait_animation
        return 0.3

    def wait_animation(self):
        c = self.ctl()
        if c.image_task is not None:
            if self.anim.progress.done and "status_bar" not in self.result:
                from kiln_blender import panels
                from kiln_blender.animation import status_line
                self.result["status_bar"] = status_line(c)
                with bpy.context.temp_override(window=self.window()):
                    bpy.ops.screen.screenshot(filepath=os.path.join(OUT, "progress.png"))
                self.result["status_bar_drawn"] = panels.status_drawn_at > self.anim_started
            return 0.1
        run = self.anim
        names = [os.path.basename(p) for p in run.outputs]
        self.result["animation"] = {"outputs": names, "seeds": run.seeds, "status": c.status}
        if names != ["frame_01.png", "frame_02.png"] or set(run.seeds.values()) != {run.seed}:
            self.fail("the animation: %s (%s)" % (self.result["animation"], self.status()))
            return
        if not self.result.get("status_bar_drawn") or "ETA" not in self.result.get("status_bar", ""):
            self.fail("the status bar did not show the animation's progress with an ETA: %s" % self.result.get("status_bar"))
            return
        self.log("animation: %s with seed %d; status bar: %s" % (names, run.seed, self.result["status_bar"]))
        # Again from the start with more steps, and Esc while a frame is restyled.
        scene = bpy.context.scene
        scene.kiln.anim_restart, scene.kiln.steps = True, ESC_STEPS
        result = self.press(bpy.ops.kiln.restyle_animation)
        if result != {"RUNNING_MODAL"}:
            self.fail("Restyle Animation (for Esc): %s %s" % (result, self.status()))
            return
        self.anim = c.image_task
        self.next = self.press_esc
        return 0.2

    def press_esc(self):
        run = self.anim
        if run.state != "waiting":
            return 0.1
        win = self.window()
        area = self.editor()
        x, y = area.x + area.width // 3, area.y + area.height // 2
        win.event_simulate("MOUSEMOVE", "NOTHING", x=x, y=y)
        win.event_simulate("ESC", "PRESS", x=x, y=y)
        win.event_simulate("ESC", "RELEASE", x=x, y=y)
        self.log("Esc pressed while frame %s was restyled" % run.progress.current)
        self.next = self.wait_esc
        return 0.2

    def wait_esc(self):
        c = self.ctl()
        if c.image_task is not None:
            return 0.2
        run = self.anim
        self.result["esc"] = {"cancelled": run.cancelled, "outputs": len(run.outputs), "status": c.status}
        if not run.cancelled or len(run.outputs) >= 2 or not c.status.startswith("Cancelled"):
            self.fail("Esc did not cancel the animation: %s" % self.result["esc"])
            return
        bpy.context.scene.kiln.anim_restart, bpy.context.scene.kiln.steps = False, STEPS
        self.log("Esc cancelled the animation: %s" % c.status)
        self.next = self.show_kiln_tab
        return 0.2

    def show_kiln_tab(self):
        """Clicks down the sidebar's tab strip (simulated clicks, as a user's) until Kiln's panel draws."""
        from kiln_blender import panels
        area = self.editor()
        region = next(r for r in area.regions if r.type == "UI")
        if self.tab_tries and panels.KILN_PT_main.drawn_at > self.tab_clicked + 0.05:
            self.log("the Kiln tab is showing (clicked at %d px from the top)" % self.tab_offset)
            self.next = self.arrange
            return 0.3
        self.tab_offset = 20 + 12 * self.tab_tries
        if self.tab_offset > 400:
            self.fail("the Kiln tab never showed in the sidebar")
            return
        win = self.window()
        x, y = region.x + region.width - 12, region.y + region.height - self.tab_offset
        win.event_simulate("MOUSEMOVE", "NOTHING", x=x, y=y)
        win.event_simulate("LEFTMOUSE", "PRESS", x=x, y=y)
        win.event_simulate("LEFTMOUSE", "RELEASE", x=x, y=y)
        self.tab_clicked = time.monotonic()
        self.tab_tries += 1
        area.tag_redraw()
        return 0.3

    def arrange(self):
        """For the picture: the restyled render in the editor, zoomed to fit (View > Frame All Fit)."""
        area = self.editor()
        win = self.window()
        area.spaces.active.image = bpy.data.images[self.result["restyle"]["image"]]
        main = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=win, area=area, region=main):
            bpy.ops.image.view_all(fit_view=True)
        self.next = self.screenshots
        return 1.0

    def screenshots(self):
        area = self.editor()
        panel = os.path.join(OUT, "panel.png")
        window = os.path.join(OUT, "window.png")
        with bpy.context.temp_override(window=self.window(), area=area):
            bpy.ops.screen.screenshot_area(filepath=panel)
            bpy.ops.screen.screenshot(filepath=window)
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            import shutil
            shutil.copy(panel, os.path.join(SHOTS, "blender-panel.png"))
        self.log("screenshots saved")
        self.next = self.finish
        return 0.1

    def finish(self):
        self.result["seconds"] = round(time.monotonic() - self.t0, 1)
        with open(os.path.join(OUT, "result.json"), "w") as f:
            json.dump(self.result, f, indent=1, default=str)
        self.next = self.quit
        return 0.2

    def quit(self):
        bpy.ops.wm.quit_blender()
        return None


probe = Probe()
bpy.app.timers.register(probe.tick, first_interval=1.0)
