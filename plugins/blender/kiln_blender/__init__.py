"""Kiln for Blender: restyle renders and animations with style LoRAs, make seamless textures, and
train style LoRAs from renders, with the local Kiln daemon (kilnd) doing all the work.

Blender 3.4+ (Edit > Preferences > Add-ons > Install... with the zip) and 4.2+ as an extension
(blender_manifest.toml). The UI is in the Image Editor's sidebar, tab Kiln.
"""

bl_info = {
    "name": "Kiln LoRA Studio",
    "author": "Kiln",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Image Editor > Sidebar > Kiln; Render Properties > Kiln",
    "description": "Restyle renders and animations with style LoRAs, seamless textures, style LoRAs trained from renders",
    "category": "Render",
}

import bpy  # noqa: E402

from . import handlers, operators, panels, prefs, props  # noqa: E402

_classes = prefs.classes + props.classes + operators.classes + panels.classes


def register():
    for cls in _classes:
        bpy.utils.register_class(cls)
    props.register_properties()
    panels.register_status()
    handlers.register()


def unregister():
    from . import controller
    handlers.unregister()
    panels.unregister_status()
    controller.reset()
    props.unregister_properties()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
