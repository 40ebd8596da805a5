"""The settings the panels show: per scene (saved in the .blend) and per session (lists of kilnd's
models and LoRAs, on the window manager), and their conversion to kiln.requests settings."""

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from .backend import requests

_SAMPLERS = (requests.SAMPLERS if requests is not None else ["Euler a"])
SAMPLER_ITEMS = [(s, s, "") for s in _SAMPLERS]


class KilnName(bpy.types.PropertyGroup):
    """One entry of a list of names (models, LoRAs) for the pickers."""


class KilnTrainImage(bpy.types.PropertyGroup):
    image: PointerProperty(type=bpy.types.Image, name="Image")


class KilnTrainSettings(bpy.types.PropertyGroup):
    dataset: StringProperty(name="Dataset", default="blender-style",
                            description="Kiln dataset the renders go into (made when new, preset 'style')")
    trigger: StringProperty(name="Trigger", default="",
                            description="the word the LoRA learns, first in every caption (default: the dataset's name)")
    lora: StringProperty(name="LoRA name", default="",
                         description="the LoRA's name in <lora:NAME:w> (default: the dataset's name)")
    images: CollectionProperty(type=KilnTrainImage)
    index: IntProperty(default=0)
    folder: StringProperty(name="Folder", subtype="DIR_PATH",
                           description="a folder of rendered images to add as well (kilnd reads its image files)")
    resolution: IntProperty(name="Dataset size", default=512, min=256, max=2048, step=64,
                            description="the dataset's training side in pixels (a multiple of 64)")
    epochs: IntProperty(name="Epochs", default=0, min=0, max=1000,
                        description="0 = the style preset's")
    extra: StringProperty(name="Settings", default="",
                          description="more kohya settings, 'key=value' separated by commas, e.g. "
                                      "'network_dim=8, learning_rate=1e-4'")


class KilnSettings(bpy.types.PropertyGroup):
    model: StringProperty(name="Model", description="base model registered in kilnd")
    prompt: StringProperty(name="Prompt", default="", description="what the render should become, A1111 syntax")
    negative: StringProperty(name="Negative", default="", description="what it must not look like")
    lora: StringProperty(name="LoRA", description="a LoRA of kilnd's library to insert into the prompt")
    lora_weight: FloatProperty(name="Weight", default=requests.DEFAULT_LORA_WEIGHT if requests else 0.8,
                               min=-2.0, max=2.0, soft_min=0.0, soft_max=1.0)
    strength: FloatProperty(name="Strength", default=0.5, min=0.0, max=1.0,
                            description="how far the result may move from the render (img2img denoising strength)")
    seed: IntProperty(name="Seed", default=-1, min=-1, description="-1 picks one (an animation draws one for all frames)")
    steps: IntProperty(name="Steps", default=20, min=1, max=500)
    sampler: EnumProperty(name="Sampler", items=SAMPLER_ITEMS, default=SAMPLER_ITEMS[0][0])
    cfg: FloatProperty(name="CFG", default=7.0, min=0.0, max=30.0)
    max_side: IntProperty(name="Max size", default=0, min=0, max=2048,
                          description="the render is scaled so its long side is at most this; 0: the model's "
                                      "(768 for SD 1.x, 1536 for SDXL)")
    restyle_every_render: BoolProperty(name="Restyle every render", default=False,
                                       description="send each finished render to Kiln with the Kiln panel's settings")
    # Animation
    anim_source: EnumProperty(name="Frames", items=[
        ("RENDER", "Render each frame", "render the scene's frame range, each frame restyled as it is rendered"),
        ("FOLDER", "Folder of frames", "frames rendered earlier, numbered as Blender numbers them")], default="RENDER")
    anim_folder: StringProperty(name="Rendered frames", subtype="DIR_PATH")
    anim_output: StringProperty(name="Output", subtype="DIR_PATH",
                                description="folder of the restyled frames (empty: 'kiln' beside the frames)")
    anim_restart: BoolProperty(name="Restart", default=False,
                               description="redo every frame (otherwise frames already restyled are kept: a resume)")
    # Texture
    tex_prompt: StringProperty(name="Texture", default="", description="the texture, e.g. 'weathered oak planks'")
    tex_size: IntProperty(name="Size", default=0, min=0, max=2048, step=64,
                          description="the texture's side; 0: the model's (512 for SD 1.x, 1024 for SDXL)")
    tex_seamless: BoolProperty(name="Seamless", default=True,
                               description="opposite edges continue into each other, so the texture tiles")
    train: PointerProperty(type=KilnTrainSettings)


def generate_settings(s, prompt=None):
    """kiln.requests.GenerateSettings from the scene's KilnSettings. Blender's float properties are
    32-bit: 0.6 reads back as 0.6000000238, so they are rounded to what the panel shows."""
    return requests.GenerateSettings(model=s.model, prompt=s.prompt if prompt is None else prompt, negative=s.negative,
                                     seed=s.seed, steps=s.steps, sampler=s.sampler, cfg=round(s.cfg, 3),
                                     strength=round(s.strength, 3), preview_every=max(1, s.steps // 5))


def dataset_settings(t):
    return requests.DatasetSettings(name=t.dataset.strip(), trigger=t.trigger.strip(), preset="style",
                                    resolution=t.resolution)


def train_settings(s, t, extra):
    overrides = {"max_train_epochs": t.epochs} if t.epochs else {}
    return requests.TrainSettings(base_model=s.model, dataset=t.dataset.strip(), name=(t.lora or t.dataset).strip(),
                                  preset="style", overrides=overrides, set=extra)


classes = (KilnName, KilnTrainImage, KilnTrainSettings, KilnSettings)


def register_properties():
    bpy.types.Scene.kiln = PointerProperty(type=KilnSettings)
    bpy.types.WindowManager.kiln_models = CollectionProperty(type=KilnName)
    bpy.types.WindowManager.kiln_loras = CollectionProperty(type=KilnName)
    bpy.types.WindowManager.kiln_progress = FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    bpy.types.WindowManager.kiln_train_progress = FloatProperty(name="Training", min=0.0, max=1.0, subtype="FACTOR")


def unregister_properties():
    for owner, name in ((bpy.types.Scene, "kiln"), (bpy.types.WindowManager, "kiln_models"),
                        (bpy.types.WindowManager, "kiln_loras"), (bpy.types.WindowManager, "kiln_progress"),
                        (bpy.types.WindowManager, "kiln_train_progress")):
        if hasattr(owner, name):
            delattr(owner, name)


def sync_lists(wm, ctl):
    """Copies the controller's model and LoRA names into the pickers' lists."""
    for coll, names in ((wm.kiln_models, ctl.models), (wm.kiln_loras, ctl.loras)):
        if [e.name for e in coll] != list(names):
            coll.clear()
            for n in names:
                coll.add().name = n
