"""The add-on's operators: what the panel's buttons run. Each one calls the Controller, which returns
at once (jobs are followed by the timer); problems come back as Blender reports in plain words."""

import bpy
from bpy.props import EnumProperty, StringProperty

from . import controller as controller_module
from . import image_io, props
from .backend import kiln, requests, restyle
from .connection import UserError


def ctl():
    return controller_module.controller()


def _run(op, context, fn):
    """Runs fn(controller) and turns UserError into an ERROR report (and a CANCELLED result)."""
    try:
        c = ctl()
        result = fn(c)
        props.sync_lists(context.window_manager, c)
        return result or {"FINISHED"}
    except UserError as e:
        op.report({"ERROR"}, str(e))
        return {"CANCELLED"}
    except kiln.Error as e:  # a lost connection or an expired image in the middle of a call
        op.report({"ERROR"}, "kilnd: %s" % e)
        return {"CANCELLED"}


def _editor_image(context):
    space = getattr(context, "space_data", None)
    return getattr(space, "image", None) if space is not None and space.type == "IMAGE_EDITOR" else None


class KILN_OT_connect(bpy.types.Operator):
    """Connect to kilnd (starting it when needed) and reload its models and LoRAs"""
    bl_idname = "kiln.connect"
    bl_label = "Connect"

    def execute(self, context):
        def go(c):
            models, loras = c.refresh()
            s = context.scene.kiln
            if models and s.model not in models:
                s.model = models[0]
            self.report({"INFO"}, "%s: %d models, %d LoRAs." % (c.conn.info_line, len(models), len(loras)))
        return _run(self, context, go)


class KILN_OT_add_model(bpy.types.Operator):
    """Register a Stable Diffusion checkpoint (.safetensors) or diffusers folder in kilnd (never copied)"""
    bl_idname = "kiln.add_model"
    bl_label = "Add Model"

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.safetensors", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        def go(c):
            name = c.add_model(self.filepath)
            context.scene.kiln.model = name
        return _run(self, context, go)


class KILN_OT_insert_lora(bpy.types.Operator):
    """Insert the chosen LoRA into the prompt as <lora:name:weight> (or update its weight)"""
    bl_idname = "kiln.insert_lora"
    bl_label = "Insert LoRA"

    def execute(self, context):
        s = context.scene.kiln
        try:
            s.prompt, _ = requests.insert_lora_tag(s.prompt, s.lora, s.lora_weight)
        except requests.RequestError as e:
            self.report({"ERROR"}, str(e) if s.lora else "Pick a LoRA first.")
            return {"CANCELLED"}
        return {"FINISHED"}


class KILN_OT_new_seed(bpy.types.Operator):
    """Pick a new random seed"""
    bl_idname = "kiln.new_seed"
    bl_label = "New Seed"

    def execute(self, context):
        context.scene.kiln.seed = restyle.pick_seed(-1) % 2147483647
        return {"FINISHED"}


class KILN_OT_restyle(bpy.types.Operator):
    """Restyle the render (as you see it) with the prompt, LoRA and strength: the result becomes a new image"""
    bl_idname = "kiln.restyle"
    bl_label = "Restyle Render"

    source: EnumProperty(items=[("RENDER", "Render Result", "the last render"),
                                ("EDITOR", "Image in the editor", "the image this Image Editor shows")],
                         default="RENDER")

    def execute(self, context):
        scene = context.scene
        s = scene.kiln
        image = _editor_image(context) if self.source == "EDITOR" else None
        if self.source == "EDITOR" and image is None:
            self.report({"ERROR"}, "Open an image in this Image Editor first.")
            return {"CANCELLED"}

        def go(c):
            c.restyle(scene, props.generate_settings(s), image, s.max_side)
            self.report({"INFO"}, c.status)
        return _run(self, context, go)


class KILN_OT_cancel(bpy.types.Operator):
    """Cancel Kiln's restyle, texture or animation"""
    bl_idname = "kiln.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        return _run(self, context, lambda c: None if c.cancel() else self.report({"INFO"}, "Nothing to cancel."))


class KILN_OT_restyle_animation(bpy.types.Operator):
    """Restyle the scene's frame range (or a folder of frames) with one seed; frames already done are kept,
    so running it again resumes. Esc cancels"""
    bl_idname = "kiln.restyle_animation"
    bl_label = "Restyle Animation"

    _timer = None

    def _start(self, context):
        scene = context.scene
        s = scene.kiln

        def go(c):
            run = c.restyle_animation(scene, props.generate_settings(s), s.anim_source, s.anim_folder, s.anim_output,
                                      s.anim_restart, s.max_side)
            self.report({"INFO"}, c.status)
            return run
        try:
            c = ctl()
            run = go(c)
            props.sync_lists(context.window_manager, c)
            return run
        except UserError as e:
            self.report({"ERROR"}, str(e))
            return None

    def execute(self, context):
        return {"FINISHED"} if self._start(context) is not None else {"CANCELLED"}

    def invoke(self, context, event):
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        if run.finished:
            return {"FINISHED"}
        self.run = run
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if self.run.finished:
            context.window_manager.event_timer_remove(self._timer)
            return {"FINISHED"}
        if event.type == "ESC" and event.value == "PRESS":
            self.run.cancel()
            self.report({"WARNING"}, "Cancelling the animation after the frame in flight...")
            context.window_manager.event_timer_remove(self._timer)
            return {"CANCELLED"}
        return {"PASS_THROUGH"}


class KILN_OT_texture(bpy.types.Operator):
    """Generate a texture (seamless when ticked) into a new image in the active material's Image Texture node"""
    bl_idname = "kiln.texture"
    bl_label = "Generate Texture"

    def execute(self, context):
        s = context.scene.kiln

        def go(c):
            settings = props.generate_settings(s, prompt=s.tex_prompt or s.prompt)
            c.texture(context.active_object, settings, s.tex_size, s.tex_size, s.tex_seamless)
            self.report({"INFO"}, c.status)
        return _run(self, context, go)


class KILN_OT_train_add_image(bpy.types.Operator):
    """Add the image shown in this Image Editor (or the named one) to the renders to learn from"""
    bl_idname = "kiln.train_add_image"
    bl_label = "Add Image"

    image: StringProperty(name="Image", description="image datablock name (default: the editor's image)")

    def execute(self, context):
        t = context.scene.kiln.train
        image = bpy.data.images.get(self.image) if self.image else _editor_image(context)
        if image is None:
            self.report({"ERROR"}, "Open the image to add in the Image Editor (or render one and use 'Add Render').")
            return {"CANCELLED"}
        if image.type == "RENDER_RESULT":
            return bpy.ops.kiln.train_add_render()
        if any(item.image == image for item in t.images):
            self.report({"INFO"}, "'%s' is already in the list." % image.name)
            return {"CANCELLED"}
        t.images.add().image = image
        t.index = len(t.images) - 1
        return {"FINISHED"}


class KILN_OT_train_add_render(bpy.types.Operator):
    """Keep a copy of the Render Result as it looks (it changes with the next render) and add it to the list"""
    bl_idname = "kiln.train_add_render"
    bl_label = "Add Render"

    def execute(self, context):
        scene = context.scene
        try:
            rgba, w, h = image_io.read_render(scene)
        except UserError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        t = scene.kiln.train
        image = image_io.new_image("Kiln render %d" % (len(t.images) + 1), rgba, w, h, 4)
        t.images.add().image = image
        t.index = len(t.images) - 1
        self.report({"INFO"}, "Added '%s' (%dx%d)." % (image.name, w, h))
        return {"FINISHED"}


class KILN_OT_train_remove_image(bpy.types.Operator):
    """Remove the selected image from the list (the image itself stays)"""
    bl_idname = "kiln.train_remove_image"
    bl_label = "Remove Image"

    def execute(self, context):
        t = context.scene.kiln.train
        if 0 <= t.index < len(t.images):
            t.images.remove(t.index)
            t.index = max(0, t.index - 1)
        return {"FINISHED"}


class KILN_OT_train(bpy.types.Operator):
    """Make a style dataset from the listed renders (and the folder) and train a LoRA on it"""
    bl_idname = "kiln.train"
    bl_label = "Train Style LoRA"

    def execute(self, context):
        scene = context.scene
        s, t = scene.kiln, scene.kiln.train

        def go(c):
            try:
                extra = restyle.parse_training_overrides(t.extra)
            except requests.RequestError as e:
                raise UserError(str(e))
            images = [item.image for item in t.images if item.image is not None]
            c.train(scene, props.dataset_settings(t), props.train_settings(s, t, extra), images, t.folder)
            self.report({"INFO"}, c.train_status)
        return _run(self, context, go)


class KILN_OT_cancel_training(bpy.types.Operator):
    """Cancel the training (its saved epochs stay in kilnd's library)"""
    bl_idname = "kiln.cancel_training"
    bl_label = "Cancel Training"

    def execute(self, context):
        return _run(self, context, lambda c: None if c.cancel_training() else self.report({"INFO"}, "No training runs."))


class KILN_OT_report(bpy.types.Operator):
    """Shows a message of Kiln's as a Blender report (used when a job ends)"""
    bl_idname = "kiln.report"
    bl_label = "Kiln Report"
    bl_options = {"INTERNAL"}

    level: StringProperty(default="INFO")
    message: StringProperty()

    def execute(self, context):
        self.report({self.level if self.level in ("INFO", "WARNING", "ERROR") else "INFO"}, self.message)
        return {"FINISHED"}


classes = (KILN_OT_connect, KILN_OT_add_model, KILN_OT_insert_lora, KILN_OT_new_seed, KILN_OT_restyle, KILN_OT_cancel,
           KILN_OT_restyle_animation, KILN_OT_texture, KILN_OT_train_add_image, KILN_OT_train_add_render,
           KILN_OT_train_remove_image, KILN_OT_train, KILN_OT_cancel_training, KILN_OT_report)
