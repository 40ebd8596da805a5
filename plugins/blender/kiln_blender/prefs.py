"""The add-on's preferences (Edit > Preferences > Add-ons > Kiln): which kilnd to use.

Empty fields follow the environment like every Kiln client: the socket $KILN_SOCKET (else the
per-user default), the data dir $KILN_DATA_DIR (for a kilnd this Blender starts), the program
$KILN_DAEMON, then a kilnd beside the bundled client module or on PATH. A kilnd that already runs
(started by Krita, the CLI or 'kiln daemon start') is used as it is.
"""

import os

import bpy
from bpy.props import StringProperty

ADDON = __package__


def _changed(self, context):
    from . import controller
    controller.reset()


class KilnPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    daemon: StringProperty(name="kilnd program", subtype="FILE_PATH", update=_changed,
                           description="kilnd to start when none is running (empty: $KILN_DAEMON, beside the add-on, PATH)")
    socket: StringProperty(name="Socket", update=_changed,
                           description="kilnd's socket (empty: $KILN_SOCKET, else the per-user default)")
    data_dir: StringProperty(name="Data folder", subtype="DIR_PATH", update=_changed,
                             description="data folder of a kilnd this Blender starts (empty: $KILN_DATA_DIR, else "
                                         "~/.local/share/kiln)")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.label(text="Kiln's daemon, kilnd, does all the work; Blender, Krita and the CLI share one.")
        col.prop(self, "daemon")
        col.prop(self, "socket")
        col.prop(self, "data_dir")
        socket, data_dir, daemon = connection_settings()
        col.label(text="Socket in use: %s" % (socket or os.environ.get("KILN_SOCKET") or "the per-user default"))
        from . import controller
        ctl = controller.controller(create=False)
        row = col.row()
        row.operator("kiln.connect", icon="LINKED")
        if ctl is not None:
            row.label(text=ctl.conn.info_line)


def preferences():
    addon = bpy.context.preferences.addons.get(ADDON)
    return addon.preferences if addon is not None else None


def connection_settings():
    """(socket, data_dir, daemon), None where the environment decides."""
    p = preferences()
    if p is None:
        return None, None, None
    return (bpy.path.abspath(p.socket) if p.socket else None,
            bpy.path.abspath(p.data_dir) if p.data_dir else None,
            bpy.path.abspath(p.daemon) if p.daemon else None)


classes = (KilnPreferences,)
