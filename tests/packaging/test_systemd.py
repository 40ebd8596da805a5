"""The systemd user units and kilnd under them: `systemd-analyze verify` on both units, and socket
activation end to end (systemd-socket-activate hands kilnd a listening socket the way kilnd.socket
does; clients reach it; kilnd logs that the socket came from systemd and leaves the file in place)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KILND = os.environ["KILN_TEST_KILND"]
KILN = os.path.join(os.path.dirname(KILND), "kiln")
UNITS = os.path.join(ROOT, "installers", "linux", "systemd")


class Units(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="kiln-sd-", dir="/tmp")

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    def test_units_verify(self):
        with open(os.path.join(UNITS, "kilnd.service")) as f:
            service = f.read()
        self.assertIn("ExecStart=@KILND_PATH@", service)
        # As installed, with ExecStart naming the kilnd under test.
        for name, text in (("kilnd.service", service.replace("@KILND_PATH@", KILND)),
                           ("kilnd.socket", open(os.path.join(UNITS, "kilnd.socket")).read())):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(text)
        # --man=no: the man page the units name is installed by the package, not on a build machine.
        r = subprocess.run(["systemd-analyze", "--user", "verify", "--man=no", os.path.join(self.root, "kilnd.service"),
                            os.path.join(self.root, "kilnd.socket")], capture_output=True, text=True,
                           env=dict(os.environ, XDG_RUNTIME_DIR=self.root))
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if "kilnd" in l and "Failed to" not in l and "bus" not in l.lower()]
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(problems, [], r.stdout + r.stderr)

    @unittest.skipUnless(shutil.which("systemd-socket-activate"), "systemd-socket-activate is not installed")
    def test_socket_activation(self):
        sock = os.path.join(self.root, "run", "kilnd.sock")
        os.makedirs(os.path.dirname(sock), mode=0o700)
        data = os.path.join(self.root, "data")
        proc = subprocess.Popen(["systemd-socket-activate", "-l", sock, KILND, "--socket", sock, "--data-dir", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        log_path = os.path.join(data, "logs", "kilnd.log")

        def log():
            try:
                with open(log_path) as f:
                    return f.read()
            except OSError:
                return ""

        err = ""
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.02)
            # The first connection is what makes systemd-socket-activate start kilnd (as a socket unit
            # does); wait for it to say it is ready so a loaded CI machine cannot time out the hello.
            waker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            waker.connect(sock)
            deadline = time.monotonic() + 120
            while " ready on " not in log() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            waker.close()
            self.assertIn(" ready on ", log(), "kilnd did not start under systemd-socket-activate")
            env = dict(os.environ, KILN_SOCKET=sock)
            r = subprocess.run([KILN, "--no-autostart", "status", "--json"], env=env, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + "\nkilnd.log:\n" + log())
            self.assertIn('"version"', r.stdout)
            stop = subprocess.run([KILN, "--no-autostart", "daemon", "stop"], env=env, capture_output=True, text=True,
                                  timeout=60)
            self.assertEqual(stop.returncode, 0, stop.stdout + stop.stderr)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err = proc.stderr.read()
            proc.stderr.close()
        self.assertIn("(socket from systemd)", log(), err)
        self.assertTrue(os.path.exists(sock), "the socket file is systemd's: kilnd leaves it for the next start")
        self.assertEqual(proc.returncode, 0, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
