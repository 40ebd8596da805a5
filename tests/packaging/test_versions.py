"""One version everywhere: the CMake project version in kilnd, kiln, the Python binding, the daemon's
hello, and every plugin's own metadata (Krita, Blender's bl_info and manifest, Photoshop's manifest
and package.json). Run by CTest with the build's programs and the project version."""

import ast
import json
import os
import re
import subprocess
import sys
import unittest

VERSION = os.environ["KILN_TEST_VERSION"]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.dirname(os.environ["KILN_TEST_KILND"])


def program_version(name):
    out = subprocess.run([os.path.join(BIN, name), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[-1]


class Versions(unittest.TestCase):
    def test_programs(self):
        self.assertEqual(program_version("kilnd"), VERSION)
        self.assertEqual(program_version("kiln"), VERSION)

    def test_binding_and_hello(self):
        import kiln
        from daemon_process import DaemonProcess
        self.assertEqual(kiln.VERSION, VERSION)
        with DaemonProcess("ver") as d:
            client = kiln.Client(name="versions-test", socket=d.socket)
            client.connect()
            self.assertEqual(client.server_info["version"], VERSION)
            client.close()

    def test_plugins(self):
        with open(os.path.join(ROOT, "plugins/blender/kiln_blender/__init__.py")) as f:
            tree = ast.parse(f.read())
        bl_info = next(ast.literal_eval(n.value) for n in tree.body
                       if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "bl_info" for t in n.targets))
        self.assertEqual(".".join(str(p) for p in bl_info["version"]), VERSION, "Blender bl_info")
        with open(os.path.join(ROOT, "plugins/blender/kiln_blender/blender_manifest.toml")) as f:
            manifest = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M).group(1)
        self.assertEqual(manifest, VERSION, "blender_manifest.toml")
        for name in ("manifest.json", "package.json"):
            with open(os.path.join(ROOT, "plugins/photoshop/panel", name)) as f:
                self.assertEqual(json.load(f)["version"], VERSION, "Photoshop " + name)
        # The Krita plugin takes its version from the kiln package it carries.
        with open(os.path.join(ROOT, "plugins/krita/kiln_krita/controller.py")) as f:
            self.assertRegex(f.read(), r'PLUGIN_VERSION = getattr\(kiln, "VERSION"')


if __name__ == "__main__":
    unittest.main(verbosity=2)
