"""The one connection to kilnd shared by everything in this Blender.

A kiln.session.Session: the client's background thread only fills an EventQueue; pump() runs the
queued job updates and replies on Blender's main thread, from a bpy.app.timers callback (see
__init__.py), where touching bpy is safe. Calls that return at once (listing models, queuing a
job) are made directly; long work is a job followed through notifications.
"""

import os

from .backend import kiln, load_error, session

ADDON_VERSION = "0.1"
CLIENT_NAME = "blender-addon " + ADDON_VERSION


class UserError(Exception):
    """Something the user can fix; the message says how (shown as a Blender report)."""


def explain_connection_error(e, daemon=None):
    text = str(e)
    if daemon and not os.path.exists(daemon):
        return ("Kiln's daemon (kilnd) is not running, and the program chosen in the add-on's preferences, '%s', does "
                "not exist. Choose kilnd in Edit > Preferences > Add-ons > Kiln, or start it with 'kiln daemon start'."
                % daemon)
    if "not found" in text or "looked at" in text:
        return ("Kiln's daemon (kilnd) is not running and its program was not found. Install Kiln so that kilnd is on "
                "PATH, set KILN_DAEMON, or choose kilnd in Edit > Preferences > Add-ons > Kiln. (%s)" % text)
    return "Cannot reach Kiln's daemon (kilnd): %s" % text


class Connection:
    def __init__(self, socket=None, data_dir=None, daemon=None, remote=None, token=None):
        if kiln is None:
            raise UserError(load_error)
        self.daemon = daemon or None
        # remote/token: a daemon on another machine (default: $KILN_REMOTE / $KILN_TOKEN, as every client)
        self.session = session.Session(name=CLIENT_NAME, socket=socket or None, data_dir=data_dir or None,
                                       daemon=self.daemon, remote=remote, token=token)
        self.session.on_callback_error = self._on_callback_error
        self.callback_errors = []
        self.info_line = "not connected"
        self.tiling = None          # whether generate takes `tiling` (asked once per daemon)
        self._pumping = False

    def _on_callback_error(self, e):
        import traceback
        traceback.print_exception(type(e), e, e.__traceback__)
        self.callback_errors.append(e)

    @property
    def connected(self):
        return self.session.connected

    def ensure(self):
        """Connects when needed (starting kilnd when it is not running). Raises UserError."""
        was = self.session.connected
        try:
            self.session.ensure_connected()
        except kiln.ConnectionError as e:
            self.info_line = "not connected"
            raise UserError(explain_connection_error(e, self.daemon))
        except kiln.RpcError as e:
            raise UserError("kilnd refused the connection: %s" % e)
        if not was:
            self.tiling = None      # perhaps another kilnd than before
        info = self.session.client.server_info
        device = str(info.get("device", "?")).split(" (")[0]
        self.info_line = "kilnd %s on %s" % (info.get("version", "?"), device)
        return self.session

    def call(self, method, params=None):
        self.ensure()
        try:
            return self.session.call(method, params or {})
        except kiln.ConnectionError as e:
            raise UserError(explain_connection_error(e, self.daemon))
        except kiln.RpcError as e:
            raise UserError(str(e))

    def has_method(self, method):
        self.ensure()
        return self.session.has_method(method)

    def pump(self):
        """Runs queued events; never re-entrant (a callback may run a nested event loop)."""
        if self._pumping:
            return 0
        self._pumping = True
        try:
            return self.session.pump()
        finally:
            self._pumping = False

    def close(self):
        self.session.close()
