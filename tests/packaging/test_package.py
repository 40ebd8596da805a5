"""The Debian package: built with CPack from this build (the Krita and Blender bundles first), then
its file list and fields checked: every promised file present, the systemd unit naming /usr/bin/kilnd,
library dependencies computed (OpenBLAS, not the reference BLAS), nothing from the build tree."""

import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ["KILN_TEST_BUILD"]
VERSION = os.environ["KILN_TEST_VERSION"]


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r.stdout


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="kiln-deb-")
        run([os.path.join(ROOT, "installers/krita/build-zip.sh"), BUILD,
             os.path.join(BUILD, "krita", "kiln-krita-%s.zip" % VERSION)])
        run([os.path.join(ROOT, "installers/blender/build-zip.sh"), BUILD,
             os.path.join(BUILD, "blender", "kiln-blender-%s.zip" % VERSION)])
        run(["cpack", "-G", "DEB", "-B", cls.out, "--config", os.path.join(BUILD, "CPackConfig.cmake")], cwd=BUILD)
        debs = [f for f in os.listdir(cls.out) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(cls.out, debs[0])
        cls.files = [line.split()[-1].lstrip(".") for line in run(["dpkg-deb", "-c", cls.deb]).splitlines()]

    def test_name_and_fields(self):
        self.assertEqual(os.path.basename(self.deb), "kiln_%s_amd64.deb" % VERSION)
        self.assertEqual(run(["dpkg-deb", "-f", self.deb, "Version"]).strip(), VERSION)
        depends = run(["dpkg-deb", "-f", self.deb, "Depends"])
        for lib in ("libopenblas0-pthread", "libtorch", "libopencv", "libspdlog", "python3"):
            self.assertIn(lib, depends)

    def test_promised_files(self):
        promised = ["/usr/bin/kilnd", "/usr/bin/kiln",
                    "/usr/lib/python3/dist-packages/kiln/__init__.py", "/usr/lib/python3/dist-packages/kiln/requests.py",
                    "/usr/share/kiln/clip/bpe_simple_vocab_16e6.txt.gz", "/usr/share/kiln/clip/LICENSE",
                    "/usr/share/kiln/plugins/kiln-krita-%s.zip" % VERSION,
                    "/usr/share/kiln/plugins/kiln-blender-%s.zip" % VERSION,
                    "/usr/share/kiln/demo/main-job.sh", "/usr/share/kiln/demo/kiln-mini.safetensors",
                    "/usr/lib/systemd/user/kilnd.service", "/usr/lib/systemd/user/kilnd.socket",
                    "/usr/share/doc/kiln/copyright"]
        for path in promised:
            self.assertIn(path, self.files)
        self.assertTrue(any(f.startswith("/usr/lib/python3/dist-packages/kiln/_kiln") and f.endswith(".so")
                            for f in self.files))
        self.assertGreaterEqual(len([f for f in self.files if f.startswith("/usr/share/kiln/demo/product/")]), 5)

    def test_nothing_from_the_build_tree(self):
        for f in self.files:
            self.assertTrue(f.startswith("/usr/") or f in ("/", "/usr"), f)
            for bad in ("CMakeFiles", "/tests/", "_test", "__pycache__", ".o", "/build/"):
                self.assertNotIn(bad, f)

    def test_the_unit_names_the_installed_kilnd(self):
        tree = tempfile.mkdtemp(prefix="kiln-deb-x-")
        run(["dpkg-deb", "-x", self.deb, tree])
        with open(os.path.join(tree, "usr/lib/systemd/user/kilnd.service")) as f:
            self.assertIn("ExecStart=/usr/bin/kilnd\n", f.read())
        # No RUNPATH into the build tree in the installed programs.
        dynamic = run(["readelf", "-d", os.path.join(tree, "usr/bin/kilnd")])
        self.assertNotIn(BUILD, dynamic)


if __name__ == "__main__":
    unittest.main(verbosity=2)
