"""A real kilnd for Python tests, in its own temporary socket and data folders (the Python twin
of tests/integration/daemon_process.h). Used by the binding's tests and the Krita host tests."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def kilnd_path():
    path = os.environ.get("KILN_TEST_KILND") or os.environ.get("KILN_DAEMON")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("set KILN_TEST_KILND to the kilnd to test (ctest does)")
    return path


def fixtures_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "..", "..", "tests", "fixtures")
    return os.path.abspath(os.environ.get("KILN_TEST_FIXTURES", default))


def tiny_model_path():
    return os.path.join(fixtures_dir(), "sd15-tiny", "model.safetensors")


MINI_NAME = "kiln-mini"  # the name the host tests register Kiln Mini under


def mini_model_path():
    """Kiln Mini (mini/kiln-mini.safetensors beside tests/fixtures), or KILN_TEST_MINI_MODEL: the small
    base model the README's screenshots are taken with."""
    default = os.path.join(fixtures_dir(), "..", "..", "mini", "kiln-mini.safetensors")
    return os.path.abspath(os.environ.get("KILN_TEST_MINI_MODEL") or default)


class DaemonProcess:
    """Starts kilnd and waits until its socket answers. Use as a context manager, or call
    stop(). `root` reuses the folders of an earlier daemon (restarts)."""

    def __init__(self, name="py", extra_args=(), root=None, keep=False):
        # Short: a socket path must fit in ~107 bytes.
        self.root = root or tempfile.mkdtemp(prefix="kp-%s-" % name, dir="/tmp")
        self.socket = os.path.join(self.root, "run", "kilnd.sock")
        self.data_dir = os.path.join(self.root, "data")
        self.extra_args = list(extra_args)
        self.keep = keep or root is not None
        self.proc = None
        self.start()

    def start(self, timeout=30):
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        args = [kilnd_path(), "--socket", self.socket, "--data-dir", self.data_dir, "--quiet"] + self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")
                raise RuntimeError("kilnd exited during start-up (%s): %s" % (self.proc.returncode, err))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.01)
            finally:
                s.close()
        raise RuntimeError("kilnd did not answer on %s within %d s" % (self.socket, timeout))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=30):
        if not self.running():
            return None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        try:
            if self.running():
                try:
                    self.terminate(20)
                except subprocess.TimeoutExpired:
                    self.kill9()
        finally:
            if self.proc and self.proc.stderr:
                self.proc.stderr.close()
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def client(self, name="py-test"):
        import kiln
        c = kiln.Client(socket=self.socket, name=name, autostart=False)
        c.connect()
        return c

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
