"""A connection to kilnd driven from a host's UI thread.

The client's background thread only fills a kiln.EventQueue; the host calls Session.pump() from
its UI timer (a QTimer in Krita, bpy.app.timers in Blender), and every callback registered here
runs inside pump(), on that thread, where touching the host's API is safe.
"""

import os
import sys
import tempfile
import time
import traceback

from ._kiln import Client, ConnectionError, EventQueue
from .jobs import JobTracker, is_finished, progress_from_record


class Session:
    def __init__(self, name="kiln-python", socket=None, data_dir=None, daemon=None, autostart=True, client=None,
                 remote=None, token=None):
        # remote: a saved remote's name or "kiln+tls://HOST:PORT" (default $KILN_REMOTE); the
        # client API is the same for a remote daemon, images included.
        self.client = client or Client(socket=socket, data_dir=data_dir, name=name, autostart=autostart, daemon=daemon,
                                       remote=remote, token=token)
        self.queue = EventQueue()
        self.tracker = JobTracker()
        self._watchers = {}         # job id -> [callback(progress)]
        self._listeners = []        # callback(progress) for every job
        self._disconnect_listeners = []
        self._deferred = []         # (callback, args) to run at the next pump
        self._subscribed = False
        self.last_disconnect = None
        self._downloads = {}        # daemon path -> local copy (remote daemons, local_file)
        self._download_dir = None
        # Called with the exception when a callback run by pump() raises; the pump goes on with
        # the other events (one broken panel must not starve the rest). Default: print it.
        self.on_callback_error = None
        self.client.add_notification_handler(self.queue)
        self.client.on_disconnect(self.queue)

    # -- connection --------------------------------------------------------------------------

    @property
    def connected(self):
        return self.client.connected

    def ensure_connected(self):
        """Connects (starting kilnd when allowed) and subscribes to every job's notifications.
        After a lost connection the next call reconnects: a restarted daemon is picked up."""
        if not self.client.connected:
            self.client.connect()
            self._subscribed = False
        if not self._subscribed:
            self.client.call("jobs.subscribe", {})
            self._subscribed = True
        return self.client

    def close(self):
        self.client.close()
        self._subscribed = False
        self.queue.clear()

    def server_methods(self):
        """The methods this daemon offers (from hello), to enable what exists."""
        info = self.client.server_info if self.client.connected else {}
        return set(info.get("methods", []) if isinstance(info, dict) else [])

    def has_method(self, name):
        return name in self.server_methods()

    @property
    def is_remote(self):
        """True when the daemon runs on another machine (kiln+tls://): its paths are not this machine's."""
        return bool(getattr(self.client, "is_remote", False))

    def local_file(self, daemon_path, fresh=False):
        """A file the daemon named (an output PNG, a training sample, a grid) as a path on this
        machine: the path itself for a local daemon; for a remote one, downloaded once into a
        private folder and kept for the session. fresh=True downloads it again, for a file the
        daemon rewrites in place (a LoRA's grid.png after the grid was drawn again)."""
        if not daemon_path or not self.is_remote:
            return daemon_path
        local = self._downloads.get(daemon_path)
        if local and os.path.exists(local) and not fresh:
            return local
        if self._download_dir is None:
            self._download_dir = tempfile.mkdtemp(prefix="kiln-remote-")  # 0700
        local = os.path.join(self._download_dir, "%d-%s" % (len(self._downloads), os.path.basename(daemon_path)))
        self.client.download_file(daemon_path, local)
        self._downloads[daemon_path] = local
        return local

    def save_file(self, daemon_path, dst):
        """Writes a file the daemon named to `dst` on this machine, whole or not at all (a
        temporary file in dst's folder, then a rename): copied from a local daemon, downloaded
        from a remote one (without keeping a second copy). Returns dst."""
        folder = os.path.dirname(os.path.abspath(dst))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kiln-", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            self.client.download_file(daemon_path, tmp)  # a copy from a local daemon
            os.replace(tmp, dst)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return dst

    def model_path_for_daemon(self, path):
        """The path models.add is given for a checkpoint file or diffusers folder chosen here.
        A model is registered where it lies and never copied, so with a remote daemon it must be
        on the daemon's machine: a path that exists on this machine is refused there (an upload
        would be removed with the other uploads after a day, and checkpoints outgrow the upload
        limit); any other absolute path is taken as the daemon machine's. Raises ValueError."""
        if not path:
            raise ValueError("Choose a .safetensors checkpoint or a diffusers folder.")
        if not self.is_remote:
            return os.path.abspath(path)
        where = self.client.socket_path
        if os.path.exists(path):
            raise ValueError(
                "Kiln's daemon runs on another machine (%s), and a model is used where it lies, never copied: "
                "%s is a file of this computer. Copy it to the daemon's machine and register it there "
                "(kiln models add PATH on that machine), then pick it from the model list." % (where, path))
        if not os.path.isabs(path):
            raise ValueError("Give the model's absolute path on the daemon's machine (%s), not '%s'." % (where, path))
        return path

    # -- requests ----------------------------------------------------------------------------

    def call(self, method, params=None, timeout=None):
        self.ensure_connected()
        return self.client.call(method, params or {}, timeout)

    def call_async(self, method, params=None, callback=None):
        """callback(result, error) runs inside pump(), on the UI thread."""
        self.ensure_connected()
        self.client.call_async(method, params or {}, self.queue, callback)

    def read_image(self, ref, take=False):
        self.ensure_connected()
        return self.client.read_image(ref, take)

    def create_image(self, width, height, channels=4, dtype="u8"):
        return self.client.create_image(width, height, channels, dtype)

    # -- jobs --------------------------------------------------------------------------------

    def add_listener(self, callback):
        """callback(progress) for every job update (kiln.jobs.Progress)."""
        self._listeners.append(callback)

    def remove_listener(self, callback):
        if callback in self._listeners:
            self._listeners.remove(callback)

    def add_disconnect_listener(self, callback):
        self._disconnect_listeners.append(callback)

    def watch(self, job_id, callback):
        """callback(progress) on every update of one job, the last one when it finishes. The
        job's current record is fetched now (it may have finished before the watch began) and
        delivered at the next pump."""
        self._watchers.setdefault(job_id, []).append(callback)
        record = self.call("jobs.get", {"id": job_id})
        progress = self.tracker.update(record)
        self._deferred.append((self._deliver, (progress,)))

    def unwatch(self, job_id, callback=None):
        if callback is None:
            self._watchers.pop(job_id, None)
        elif callback in self._watchers.get(job_id, []):
            self._watchers[job_id].remove(callback)

    def cancel(self, job_id):
        return self.call("jobs.cancel", {"id": job_id})

    def _run(self, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported, see on_callback_error
            if self.on_callback_error is not None:
                self.on_callback_error(e)
            else:
                traceback.print_exc(file=sys.stderr)

    def _deliver(self, progress):
        for cb in list(self._listeners):
            self._run(cb, progress)
        callbacks = self._watchers.get(progress.job_id)
        if not callbacks:
            return
        if is_finished(progress.state):
            # Finished: every watcher hears it once, then forgets the job.
            self._watchers.pop(progress.job_id, None)
        for cb in list(callbacks):
            self._run(cb, progress)

    # -- the pump ----------------------------------------------------------------------------

    def pump(self, max_events=None):
        """Runs what the client queued: job updates, async replies, disconnects. Call it from the
        UI thread (a timer every 30-100 ms). Returns how many events it handled."""
        handled = 0
        deferred, self._deferred = self._deferred, []
        for fn, args in deferred:
            self._run(fn, *args)
            handled += 1
        for ev in self.queue.drain(max_events):
            handled += 1
            if ev.kind == "notification":
                progress = self.tracker.feed(ev.method, ev.params)
                if progress is not None:
                    self._deliver(progress)
            elif ev.kind == "reply":
                if callable(ev.tag):
                    self._run(ev.tag, ev.result, ev.error)
            elif ev.kind == "disconnect":
                self._subscribed = False
                self.last_disconnect = (ev.params or {}).get("reason", "")
                for cb in list(self._disconnect_listeners):
                    self._run(cb, self.last_disconnect)
        return handled

    def wait(self, job_id, timeout=None, pump=None):
        """Blocks until the job finishes, pumping events (for scripts and tests; a UI uses
        watch()). `pump` replaces self.pump, e.g. to also run a host's event loop. Returns the
        final record; raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        record = self.call("jobs.get", {"id": job_id})
        self.tracker.update(record)
        while True:
            (pump or self.pump)()
            record = self.tracker.get(job_id) or record
            if is_finished(record.get("state")):
                return record
            if not self.client.connected:
                raise ConnectionError(-32090, "the connection to kilnd was lost while waiting for job " + job_id)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("job %s did not finish within %s s (state %s)" % (job_id, timeout, record.get("state")))
            self.queue.wait(0.05 if left is None else min(0.05, left))
