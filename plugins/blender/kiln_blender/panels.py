"""The add-on's UI: the Kiln tab of the Image Editor's sidebar (restyle, animation, texture, style
LoRA training), a checkbox in Render Properties, and Kiln's progress in the status bar. Drawing only
reads the Controller's state; the buttons are operators (operators.py)."""

import time

import bpy

from . import controller as controller_module
from . import image_io
from .backend import load_error


def _ctl():
    return controller_module.controller(create=False)


def _wrapped(layout, text, width=None):
    """Long messages as several labels (Blender labels do not wrap), as wide as the sidebar."""
    if width is None:
        region = getattr(bpy.context, "region", None)
        scale = bpy.context.preferences.system.ui_scale if bpy.context.preferences else 1.0
        width = max(20, int((region.width if region is not None else 300) / (7.0 * scale)) - 2)
    words, line = text.split(), ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            layout.label(text=line)
            line = w
        else:
            line = (line + " " + w).strip()
    if line:
        layout.label(text=line)


class KilnPanel:
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Kiln"


class KILN_PT_main(KilnPanel, bpy.types.Panel):
    bl_label = "Kiln"
    drawn_at = 0.0  # when the panel last drew (its tab is showing): the GUI test looks

    def draw(self, context):
        KILN_PT_main.drawn_at = time.monotonic()
        layout = self.layout
        if load_error:
            _wrapped(layout.box(), load_error)
            return
        s = context.scene.kiln
        wm = context.window_manager
        ctl = _ctl()
        connected = ctl is not None and ctl.conn.connected
        row = layout.row(align=True)
        row.operator("kiln.connect", icon="FILE_REFRESH", text="Refresh" if connected else "Connect")
        row.operator("kiln.add_model", text="Add Model", icon="ADD")
        layout.label(text=ctl.conn.info_line if ctl is not None else "not connected",
                     icon="LINKED" if connected else "UNLINKED")
        layout.prop_search(s, "model", wm, "kiln_models", text="Model")
        if ctl is not None and ctl.messages and ctl.messages[-1][0] == "ERROR":
            box = layout.box()
            box.alert = True
            _wrapped(box, ctl.messages[-1][1])


class KILN_PT_restyle(KilnPanel, bpy.types.Panel):
    bl_label = "Restyle"
    bl_parent_id = "KILN_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.kiln
        wm = context.window_manager
        col = layout.column(align=True)
        col.label(text="Prompt")
        col.prop(s, "prompt", text="")
        col.label(text="Negative prompt")
        col.prop(s, "negative", text="")
        row = layout.row(align=True)
        row.prop_search(s, "lora", wm, "kiln_loras", text="LoRA")
        row.prop(s, "lora_weight", text="")
        row.operator("kiln.insert_lora", text="", icon="ADD")
        layout.prop(s, "strength", slider=True)
        row = layout.row(align=True)
        row.prop(s, "seed")
        row.operator("kiln.new_seed", text="", icon="FILE_REFRESH")
        row = layout.row(align=True)
        row.prop(s, "steps")
        row.prop(s, "cfg")
        row = layout.row(align=True)
        row.prop(s, "sampler", text="")
        row.prop(s, "max_side", text="Max")
        ctl = _ctl()
        busy = ctl is not None and ctl.image_task is not None
        col = layout.column(align=True)
        col.scale_y = 1.3
        col.enabled = not busy
        col.operator("kiln.restyle", icon="SHADERFX").source = "RENDER"
        col.operator("kiln.restyle", text="Restyle Image", icon="IMAGE_DATA").source = "EDITOR"
        if busy:
            layout.operator("kiln.cancel", icon="CANCEL")
        if ctl is not None and (busy or ctl.status):
            col = layout.column()
            if busy:
                col.prop(wm, "kiln_progress", text="", slider=True)
            _wrapped(col, ctl.status)


class KILN_PT_animation(KilnPanel, bpy.types.Panel):
    bl_label = "Animation"
    bl_parent_id = "KILN_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        s = scene.kiln
        layout.prop(s, "anim_source", text="")
        if s.anim_source == "FOLDER":
            layout.prop(s, "anim_folder")
        else:
            row = layout.row(align=True)
            row.prop(scene, "frame_start", text="Start")
            row.prop(scene, "frame_end", text="End")
            row.prop(scene, "frame_step", text="Step")
        layout.prop(s, "anim_output")
        layout.prop(s, "anim_restart")
        ctl = _ctl()
        busy = ctl is not None and ctl.image_task is not None
        row = layout.row(align=True)
        row.enabled = not busy
        row.operator("kiln.restyle_animation", icon="RENDER_ANIMATION")
        layout.label(text="One seed for every frame; Esc cancels.")


class KILN_PT_texture(KilnPanel, bpy.types.Panel):
    bl_label = "Texture"
    bl_parent_id = "KILN_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        s = context.scene.kiln
        layout.prop(s, "tex_prompt")
        row = layout.row(align=True)
        row.prop(s, "tex_size")
        row.prop(s, "tex_seamless")
        obj = context.active_object
        target = obj.active_material.name if obj is not None and obj.active_material is not None else None
        layout.label(text="Into: %s" % (target or "select an object with a material"),
                     icon="MATERIAL" if target else "ERROR")
        ctl = _ctl()
        row = layout.row()
        row.enabled = not (ctl is not None and ctl.image_task is not None)
        row.operator("kiln.texture", icon="TEXTURE")


class KILN_UL_train_images(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        if item.image is None:
            layout.label(text="(removed)", icon="ERROR")
        else:
            layout.label(text=item.image.name, icon_value=image_io.icon_id(item.image) or 0)


class KILN_PT_train(KilnPanel, bpy.types.Panel):
    bl_label = "Train a Style LoRA"
    bl_parent_id = "KILN_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        t = context.scene.kiln.train
        layout.prop(t, "dataset")
        row = layout.row(align=True)
        row.prop(t, "trigger")
        row.prop(t, "lora")
        row = layout.row()
        row.template_list("KILN_UL_train_images", "", t, "images", t, "index", rows=3)
        col = row.column(align=True)
        col.operator("kiln.train_add_render", text="", icon="RENDER_RESULT")
        col.operator("kiln.train_add_image", text="", icon="IMAGE_DATA")
        col.operator("kiln.train_remove_image", text="", icon="REMOVE")
        layout.prop(t, "folder")
        row = layout.row(align=True)
        row.prop(t, "resolution")
        row.prop(t, "epochs")
        layout.prop(t, "extra")
        ctl = _ctl()
        training = ctl is not None and ctl.training is not None
        row = layout.row(align=True)
        row.scale_y = 1.3
        sub = row.row(align=True)
        sub.enabled = not training
        sub.operator("kiln.train", icon="PLAY")
        if training:
            row.operator("kiln.cancel_training", text="", icon="CANCEL")
        if ctl is not None and ctl.train_status:
            col = layout.column()
            if training:
                col.prop(context.window_manager, "kiln_train_progress", text="", slider=True)
            _wrapped(col, ctl.train_status)
        sample = bpy.data.images.get(image_io.SAMPLE_NAME)
        if sample is not None:
            layout.label(text="Latest sample:")
            layout.template_icon(icon_value=image_io.icon_id(sample), scale=6.0)


class RENDER_PT_kiln(bpy.types.Panel):
    bl_label = "Kiln"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.prop(context.scene.kiln, "restyle_every_render")
        layout.label(text="Prompt, LoRA and strength: Image Editor > Sidebar > Kiln.")


status_drawn_at = 0.0  # when the status bar last drew Kiln's progress: the GUI test looks


def draw_status(self, context):
    """Kiln's progress in the status bar while it works: a bar with frame, ETA and a cancel button.
    (Setting the window manager's progress property redraws the status bar.)"""
    global status_drawn_at
    ctl = _ctl()
    if ctl is None or not ctl.busy:
        return
    status_drawn_at = time.monotonic()
    from .animation import status_line
    row = self.layout.row(align=True)
    busy_render = ctl.image_task is not None
    row.prop(context.window_manager, "kiln_progress" if busy_render else "kiln_train_progress",
             text=status_line(ctl)[:90], slider=True)
    row.operator("kiln.cancel" if busy_render else "kiln.cancel_training", text="", icon="CANCEL")


classes = (KILN_PT_main, KILN_PT_restyle, KILN_PT_animation, KILN_PT_texture, KILN_UL_train_images, KILN_PT_train,
           RENDER_PT_kiln)


def register_status():
    bpy.types.STATUSBAR_HT_header.append(draw_status)


def unregister_status():
    bpy.types.STATUSBAR_HT_header.remove(draw_status)
