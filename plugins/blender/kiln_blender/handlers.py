"""Blender's callbacks: the timer that pumps kilnd's events on the main thread, and the render
handlers ('restyle every render'; an animation run waiting for its frame's render).

Render handlers may run on the render job's thread, so they only take note (a Python list); the
timer, on the main thread, does the work once Blender's render job has ended.
"""

import bpy
from bpy.app.handlers import persistent

from . import animation
from . import controller as controller_module
from . import props
from .connection import UserError

BUSY_INTERVAL = 0.05   # seconds between pumps while a job runs (previews, progress)
IDLE_INTERVAL = 0.5

_pending_scenes = []   # scenes whose render finished with 'restyle every render' on


def tick():
    """The bpy.app.timers callback: runs what kilnd sent, moves runs on, refreshes the UI."""
    if _pending_scenes and not bpy.app.is_job_running("RENDER"):
        restyle_pending()
    ctl = controller_module.controller(create=False)
    if ctl is None:
        return IDLE_INTERVAL
    try:
        busy = ctl.pump()
    except Exception as e:  # noqa: BLE001 - the timer must survive anything
        print("Kiln: %s" % e)
        busy = False
    return BUSY_INTERVAL if busy else IDLE_INTERVAL


def redraw():
    """Copies progress into the window manager's properties and redraws Kiln's places."""
    ctl = controller_module.controller(create=False)
    wm = bpy.context.window_manager
    if ctl is None or wm is None:
        return
    wm.kiln_progress = max(0.0, min(1.0, ctl.progress))
    wm.kiln_train_progress = max(0.0, min(1.0, ctl.train_progress))
    props.sync_lists(wm, ctl)
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("IMAGE_EDITOR", "PROPERTIES", "STATUSBAR"):
                area.tag_redraw()


def report(level, text):
    """A job's end as a Blender report (status bar, Info editor)."""
    try:
        bpy.ops.kiln.report(level=level, message=text)
    except RuntimeError:
        pass  # an ERROR report raises when called from Python; it is reported all the same


@persistent
def on_render_complete(scene, *args):
    animation.on_render_complete()
    ctl = controller_module.controller(create=False)
    if ctl is not None and ctl.suppress_render_handler:
        return
    kiln_settings = getattr(scene, "kiln", None)
    if kiln_settings is None or not kiln_settings.restyle_every_render:
        return
    if scene.name not in _pending_scenes:
        _pending_scenes.append(scene.name)


@persistent
def on_render_cancel(scene, *args):
    animation.on_render_cancel()


def restyle_pending():
    """Restyles the renders that finished with 'restyle every render' on; tick() calls it once
    Blender's render job has ended (the Render Result is complete then)."""
    while _pending_scenes:
        scene = bpy.data.scenes.get(_pending_scenes.pop(0))
        if scene is None:
            continue
        try:
            ctl = controller_module.controller()
            if ctl.image_task is not None:
                ctl.report("WARNING", "Kiln is still busy: this render was not restyled.")
                continue
            s = scene.kiln
            ctl.restyle(scene, props.generate_settings(s), None, s.max_side)
            redraw()
        except UserError as e:
            ctl = controller_module.controller(create=False)
            if ctl is not None:
                ctl.report("ERROR", str(e))
            else:
                report("ERROR", str(e))


def has_pending():
    return bool(_pending_scenes)


def register():
    controller_module.hooks.update(on_report=report, on_change=redraw)
    bpy.app.timers.register(tick, first_interval=IDLE_INTERVAL, persistent=True)
    bpy.app.handlers.render_complete.append(on_render_complete)
    bpy.app.handlers.render_cancel.append(on_render_cancel)


def unregister():
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    _pending_scenes.clear()
    for lst, fn in ((bpy.app.handlers.render_complete, on_render_complete),
                    (bpy.app.handlers.render_cancel, on_render_cancel)):
        if fn in lst:
            lst.remove(fn)
