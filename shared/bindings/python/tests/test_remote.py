"""The Python binding against a remote kilnd (TLS on loopback): the same Client API as locally,
images both ways through numpy, generate / a dataset from uploaded files / a short training equal
to the same requests made locally, and a Session that reconnects after the daemon restarted."""

import os
import shutil
import struct
import tempfile
import time
import unittest
import zlib

import numpy as np

import kiln
from kiln.session import Session
from daemon_process import DaemonProcess, tiny_model_path


def write_png(path, rgb):
    """A plain 8-bit RGB PNG (no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def tensor_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    return data[8 + n:]


class RemoteTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.config = tempfile.mkdtemp(prefix="kp-cfg-")
        os.environ["KILN_CONFIG_DIR"] = cls.config  # pins and saved remotes of this test only
        cls.daemon = DaemonProcess("rm", extra_args=["--listen", "127.0.0.1:0"])
        cls.local = cls.daemon.client("py-local")
        cls.local.call("models.add", {"path": tiny_model_path(), "name": "tiny"})
        cls.address = cls.local.call("status")["remote"]["address"]
        cls.url = "kiln+tls://" + cls.address
        cls.token = cls.local.call("remote.tokens.create", {"name": "py-laptop"})["token"]
        cls.pictures = os.path.join(cls.daemon.root, "laptop")
        os.makedirs(cls.pictures)
        for i in range(3):
            img = np.full((64, 64, 3), 245, np.uint8)
            img[18:56, 22 + i:42 + i] = (200, 30, 30)
            write_png(os.path.join(cls.pictures, "bottle%d.png" % i), img)
            with open(os.path.join(cls.pictures, "bottle%d.txt" % i), "w") as f:
                f.write("tinyprod, bottle, studio light")

    @classmethod
    def tearDownClass(cls):
        cls.local.close()
        cls.daemon.stop()
        shutil.rmtree(cls.config, ignore_errors=True)
        os.environ.pop("KILN_CONFIG_DIR", None)

    def remote(self, **kw):
        c = kiln.Client(remote=self.url, token=self.token, name="py-remote", autostart=False, **kw)
        c.connect()
        return c

    def wait(self, client, job_id, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = client.call("jobs.get", {"id": job_id})
            if record["state"] in ("done", "failed", "cancelled"):
                self.assertEqual(record["state"], "done", record.get("error"))
                return record
            time.sleep(0.05)
        self.fail("job %s did not end" % job_id)

    def test_images_cross_both_ways_through_numpy(self):
        for compression in ("none", "zstd"):
            c = self.remote(compression=compression)
            self.assertTrue(c.is_remote)
            self.assertEqual(c.socket_path, self.url)
            self.assertTrue(c.server_fingerprint.startswith("SHA256:"))
            rng = np.random.default_rng(3)
            src = c.create_image(301, 77, 4)
            pixels = rng.integers(0, 256, size=(77, 301, 4), dtype=np.uint8)
            np.asarray(src)[...] = pixels
            dst = c.create_image(301, 77, 4)
            self.assertEqual(c.call("image.echo", {"image": src, "into": dst.ref()})["image"]["shm"], dst.name)
            np.testing.assert_array_equal(np.asarray(dst), pixels)
            out = c.read_image(c.call("image.echo", {"image": src})["image"], take=True)
            np.testing.assert_array_equal(np.asarray(out), pixels)
            c.close()

    def test_generate_is_the_same_image_as_a_local_one(self):
        params = {"model": "tiny", "prompt": "a red bottle", "steps": 4, "width": 64, "height": 64, "seed": 9}
        c = self.remote()
        mine = self.wait(c, c.call("generate", params)["id"])["result"]["images"][0]
        theirs = self.wait(self.local, self.local.call("generate", params)["id"])["result"]["images"][0]
        # The result image arrives with the answer that names it, as a block of this process.
        np.testing.assert_array_equal(np.asarray(c.read_image(mine["image"])),
                                      np.asarray(self.local.read_image(theirs["image"])))
        got = os.path.join(self.daemon.root, "remote-generate.png")
        c.download_file(mine["png"], got)
        with open(got, "rb") as a, open(theirs["png"], "rb") as b:
            self.assertEqual(a.read(), b.read())
        c.close()

    def test_a_dataset_from_uploaded_files_trains_the_same_lora(self):
        c = self.remote()
        folder, paths = "", []
        for name in sorted(os.listdir(self.pictures)):
            path = c.upload_file(os.path.join(self.pictures, name), folder)
            folder = os.path.basename(os.path.dirname(path))
            if name.endswith(".png"):
                paths.append(path)
        settings = {"preset": "product", "trigger": "tinyprod", "repeats": 1}
        for client, name, inputs in ((c, "py-remote", paths), (self.local, "py-local", [self.pictures])):
            client.call("datasets.create", dict(settings, name=name))
            self.wait(client, client.call("datasets.add_images", {"name": name, "paths": inputs})["id"])
        a = self.local.call("datasets.get", {"name": "py-local"})
        b = self.local.call("datasets.get", {"name": "py-remote"})
        self.assertEqual(len(a["images"]), 3)
        for x, y in zip(a["images"], b["images"]):
            self.assertEqual(x["caption"], y["caption"])
            with open(os.path.join(a["folder"], x["stored_file"]), "rb") as f1, \
                    open(os.path.join(b["folder"], y["stored_file"]), "rb") as f2:
                self.assertEqual(f1.read(), f2.read())
        # train_batch_size fixed: "auto" follows the free memory, which can change between the two trainings
        sets = ["train_batch_size=1", "max_train_epochs=1", "resolution=64", "seed=42", "sample_every_n_epochs=none", "sample_every_n_steps=none",
                "min_bucket_reso=64", "max_bucket_reso=128"]
        for client, dataset, lora in ((c, "py-remote", "py-lora-remote"), (self.local, "py-local", "py-lora-local")):
            self.wait(client, client.call("train", {"base": "tiny", "dataset": dataset, "name": lora, "preset": "product",
                                                    "set": sets})["id"])
        exported = os.path.join(self.daemon.root, "py-lora.safetensors")
        c.download_file(c.call("loras.get", {"name": "py-lora-remote"})["file"], exported)
        local_file = self.local.call("loras.get", {"name": "py-lora-local"})["file"]
        self.assertEqual(tensor_bytes(exported), tensor_bytes(local_file))
        c.close()

    def test_a_session_brings_the_daemons_files_to_this_machine(self):
        session = Session("py-files", remote=self.url, token=self.token, autostart=False)
        session.ensure_connected()
        params = {"model": "tiny", "prompt": "a blue bottle", "steps": 2, "width": 64, "height": 64, "seed": 3}
        png = self.wait(session.client, session.call("generate", params)["id"])["result"]["images"][0]["png"]
        local = session.local_file(png)
        self.assertNotEqual(local, png, "a remote daemon's file is downloaded")
        self.assertFalse(local.startswith(self.daemon.root))
        with open(local, "rb") as a, open(png, "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(session.local_file(png), local, "downloaded once")
        with self.assertRaises(kiln.RpcError):
            session.local_file(os.path.join(self.daemon.root, "laptop", "bottle0.txt"))  # not a result
        session.close()
        here = Session("py-files-local", client=self.daemon.client("py-files-local"))
        self.assertEqual(here.local_file(png), png, "a local daemon's path is used as it is")
        here.close()

    def test_a_session_saves_and_refreshes_the_daemons_files(self):
        # What Krita's grid (redrawn in place as grid.png) and Blender's saved outputs rely on.
        outputs = os.path.join(self.daemon.data_dir, "outputs")
        os.makedirs(outputs, exist_ok=True)
        daemon_file = os.path.join(outputs, "redrawn-grid.png")
        with open(daemon_file, "wb") as f:
            f.write(b"first drawing")
        session = Session("py-save", remote=self.url, token=self.token, autostart=False)
        session.ensure_connected()
        self.assertTrue(session.is_remote)
        local = session.local_file(daemon_file)
        with open(daemon_file, "wb") as f:
            f.write(b"second drawing, longer")
        with open(session.local_file(daemon_file), "rb") as f:
            self.assertEqual(f.read(), b"first drawing", "kept for the session")
        with open(session.local_file(daemon_file, fresh=True), "rb") as f:
            self.assertEqual(f.read(), b"second drawing, longer", "fresh=True downloads it again")
        self.assertFalse(local.startswith(self.daemon.root))

        laptop = tempfile.mkdtemp(prefix="kp-blend-")
        try:
            dst = os.path.join(laptop, "render", "kiln", "0001-seed3.png")
            self.assertEqual(session.save_file(daemon_file, dst), dst)
            with open(dst, "rb") as f:
                self.assertEqual(f.read(), b"second drawing, longer")
            with self.assertRaises(kiln.RpcError):  # outside outputs/, loras/, datasets/: refused
                session.save_file(os.path.join(self.pictures, "bottle0.txt"), os.path.join(laptop, "no.txt"))
            self.assertEqual(sorted(os.listdir(laptop)), ["render"], "nothing left behind by a refused download")
            self.assertEqual(os.listdir(os.path.dirname(dst)), ["0001-seed3.png"], "no temporary file left")
            session.close()
            here = Session("py-save-local", client=self.daemon.client("py-save-local"))
            self.assertFalse(here.is_remote)
            copy = os.path.join(laptop, "local-copy.png")
            here.save_file(daemon_file, copy)
            with open(copy, "rb") as f:
                self.assertEqual(f.read(), b"second drawing, longer")
            here.close()
        finally:
            shutil.rmtree(laptop, ignore_errors=True)

    def test_a_model_of_this_computer_is_not_registered_on_a_remote_daemon(self):
        # "Add model..." in Krita and Blender: a model is used where it lies, so a file here is refused.
        session = Session("py-model", remote=self.url, token=self.token, autostart=False)
        session.ensure_connected()
        with self.assertRaises(ValueError) as refused:
            session.model_path_for_daemon(tiny_model_path())
        self.assertIn("another machine", str(refused.exception))
        self.assertIn("kiln models add", str(refused.exception))
        there = "/srv/models/not-on-this-laptop.safetensors"
        self.assertEqual(session.model_path_for_daemon(there), there, "taken as the daemon machine's path")
        with self.assertRaises(ValueError):
            session.model_path_for_daemon("relative/model.safetensors")
        with self.assertRaises(ValueError):
            session.model_path_for_daemon("")
        session.close()
        here = Session("py-model-local", client=self.daemon.client("py-model-local"))
        self.assertEqual(here.model_path_for_daemon(tiny_model_path()), os.path.abspath(tiny_model_path()))
        here.close()

    def test_zz_a_session_reconnects_after_the_daemon_restarted(self):
        session = Session("py-session", remote=self.url, token=self.token, autostart=False)
        session.ensure_connected()
        fingerprint = session.client.server_fingerprint
        pid = session.call("status")["pid"]
        port = self.address.rsplit(":", 1)[1]
        self.local.close()
        self.daemon.terminate()
        deadline = time.monotonic() + 10
        while session.connected and time.monotonic() < deadline:
            session.queue.wait(0.05)
        self.assertFalse(session.connected)
        self.daemon.extra_args = ["--listen", "127.0.0.1:" + port]
        self.daemon.start()
        status = session.call("status")  # the next call reconnects
        self.assertNotEqual(status["pid"], pid)
        self.assertEqual(session.client.server_fingerprint, fingerprint, "the same certificate: the pin holds")
        session.close()
        type(self).local = self.daemon.client("py-local")


if __name__ == "__main__":
    unittest.main()
