"""`kiln plugins install|remove|list` against fake host folders in a temporary HOME: files written
and removed, kritarc edited and restored, Blender's folders per version, a missing host reported,
dry runs writing nothing, and bundles with unsafe names refused."""

import os
import shutil
import subprocess
import tempfile
import unittest
import zipfile

KILN = os.path.join(os.path.dirname(os.environ["KILN_TEST_KILND"]), "kiln")
VERSION = os.environ["KILN_TEST_VERSION"]


def make_zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)


class PluginsCli(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="kiln-plugins-")
        self.home = os.path.join(self.root, "home")
        self.bundles = os.path.join(self.root, "bundles")
        os.makedirs(self.bundles)
        make_zip(os.path.join(self.bundles, "kiln-krita-%s.zip" % VERSION),
                 {"kiln.desktop": "[Desktop Entry]\n", "kiln_krita/__init__.py": "# plugin\n",
                  "kiln_krita/kiln/__init__.py": "VERSION = '%s'\n" % VERSION})
        make_zip(os.path.join(self.bundles, "kiln-blender-%s.zip" % VERSION),
                 {"kiln_blender/__init__.py": "bl_info = {}\n", "kiln_blender/blender_manifest.toml": "id = 'x'\n"})
        # No `krita` or `blender` on PATH (kiln needs nothing else from it): the hosts are what the
        # fake profile folders say.
        self.env = {"HOME": self.home, "PATH": os.path.join(self.root, "no-programs"), "KILN_PLUGIN_DIR": self.bundles,
                    "KILN_DATA_DIR": os.path.join(self.home, ".local/share/kiln")}

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def kiln(self, *args):
        return subprocess.run([KILN] + list(args), env=self.env, capture_output=True, text=True)

    def test_krita_install_edits_kritarc_and_remove_restores_it(self):
        r = self.kiln("plugins", "install", "krita")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("Krita was not found", r.stderr)
        os.makedirs(os.path.join(self.home, ".local/share/krita"))
        kritarc = os.path.join(self.home, ".config/kritarc")
        os.makedirs(os.path.dirname(kritarc))
        original = "[General]\nfoo=bar\n\n[python]\nenable_other=true\nenable_kiln_krita=false\n\n[MainWindow]\nState=x\n"
        with open(kritarc, "w") as f:
            f.write(original)

        dry = self.kiln("plugins", "install", "krita", "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn("would write ~/.local/share/krita/pykrita/kiln_krita/__init__.py", dry.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.home, ".local/share/krita/pykrita")))
        with open(kritarc) as f:
            self.assertEqual(f.read(), original, "a dry run changes nothing")

        r = self.kiln("plugins", "install", "krita")
        self.assertEqual(r.returncode, 0, r.stderr)
        pykrita = os.path.join(self.home, ".local/share/krita/pykrita")
        for name in ("kiln.desktop", "kiln_krita/__init__.py", "kiln_krita/kiln/__init__.py"):
            self.assertTrue(os.path.isfile(os.path.join(pykrita, name)), name)
            self.assertIn(name, r.stdout)
        with open(kritarc) as f:
            text = f.read()
        self.assertIn("enable_kiln_krita=true", text)
        self.assertNotIn("enable_kiln_krita=false", text)
        self.assertIn("enable_other=true", text)
        self.assertIn("[MainWindow]\nState=x", text)
        self.assertIn("installed " + VERSION, self.kiln("plugins", "list").stdout)

        r = self.kiln("plugins", "remove", "krita")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(pykrita, "kiln_krita")))
        self.assertFalse(os.path.exists(os.path.join(pykrita, "kiln.desktop")))
        with open(kritarc) as f:
            self.assertEqual(f.read(), original, "kritarc as it was")
        again = self.kiln("plugins", "remove", "krita")
        self.assertEqual(again.returncode, 1)
        self.assertIn("did not install", again.stderr)

    def test_kritarc_without_a_python_group(self):
        os.makedirs(os.path.join(self.home, ".local/share/krita"))
        self.assertEqual(self.kiln("plugins", "install", "krita").returncode, 0)
        with open(os.path.join(self.home, ".config/kritarc")) as f:
            self.assertIn("[python]\nenable_kiln_krita=true", f.read())
        self.assertEqual(self.kiln("plugins", "remove", "krita").returncode, 0)
        with open(os.path.join(self.home, ".config/kritarc")) as f:
            self.assertNotIn("enable_kiln_krita", f.read())

    def test_blender_every_version_and_the_extension_folder(self):
        r = self.kiln("plugins", "install", "blender")
        self.assertEqual(r.returncode, 1)
        self.assertIn("Blender was not found", r.stderr)
        for v in ("3.4", "4.2"):
            os.makedirs(os.path.join(self.home, ".config/blender", v))
        r = self.kiln("plugins", "install", "blender")
        self.assertEqual(r.returncode, 0, r.stderr)
        old = os.path.join(self.home, ".config/blender/3.4/scripts/addons/kiln_blender/__init__.py")
        new = os.path.join(self.home, ".config/blender/4.2/extensions/user_default/kiln_blender/blender_manifest.toml")
        self.assertTrue(os.path.isfile(old))
        self.assertTrue(os.path.isfile(new))
        self.assertEqual(self.kiln("plugins", "remove", "blender").returncode, 0)
        self.assertFalse(os.path.exists(os.path.dirname(old)))
        self.assertFalse(os.path.exists(os.path.dirname(new)))
        self.assertTrue(os.path.isdir(os.path.join(self.home, ".config/blender/3.4")), "the user's own folders stay")

    def test_photoshop_says_where_the_package_is(self):
        r = self.kiln("plugins", "install", "photoshop")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no photoshop bundle", r.stderr)
        open(os.path.join(self.bundles, "kiln-photoshop-%s.ccx" % VERSION), "wb").close()
        r = self.kiln("plugins", "install", "photoshop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Windows and macOS", r.stdout)
        self.assertIn("kiln-photoshop-%s.ccx" % VERSION, r.stdout)

    def test_unsafe_bundles_and_unknown_hosts_are_refused(self):
        os.makedirs(os.path.join(self.home, ".local/share/krita"))
        make_zip(os.path.join(self.bundles, "kiln-krita-%s.zip" % VERSION), {"../../escape.py": "x"})
        r = self.kiln("plugins", "install", "krita")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("outside the plugin folder", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, ".local/share/escape.py")))
        self.assertEqual(self.kiln("plugins", "install", "gimp").returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
