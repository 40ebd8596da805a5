"""Shared-memory images from Python: numpy sees them in place, image.echo round trips, layouts."""

import os
import unittest

import numpy as np

import kiln
from daemon_process import DaemonProcess


def shm_exists(name):
    return os.path.exists("/dev/shm/" + name)


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = DaemonProcess("im")
        cls.client = cls.daemon.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.stop()

    def test_echo_round_trip_with_numpy_and_no_extra_copy(self):
        rng = np.random.default_rng(7)
        img = self.client.create_image(333, 211, 4)
        a = np.asarray(img)
        self.assertEqual(a.shape, (211, 333, 4))
        self.assertEqual(a.dtype, np.uint8)
        self.assertTrue(a.flags.writeable)
        self.assertFalse(a.flags.owndata, "numpy must view the shared memory, not a copy")
        pixels = rng.integers(0, 256, size=a.shape, dtype=np.uint8)
        a[...] = pixels  # the one copy: straight into shared memory
        self.assertTrue(np.shares_memory(a, np.asarray(img)))

        result = self.client.call("image.echo", {"image": img})  # the Image itself as a param
        ref = result["image"]
        self.assertEqual((ref["width"], ref["height"], ref["channels"], ref["dtype"]), (333, 211, 4, "u8"))
        out = self.client.read_image(ref, take=True)
        self.assertFalse(shm_exists(ref["shm"]), "take=True removes the daemon's name at once")
        b = np.asarray(out)
        self.assertFalse(b.flags.writeable)
        self.assertFalse(b.flags.owndata, "reading the result maps it: no copy")
        np.testing.assert_array_equal(b, pixels)

    def test_echo_into_a_block_of_ours(self):
        src = self.client.create_image(64, 32, 3)
        dst = self.client.create_image(64, 32, 3)
        np.asarray(src)[...] = np.arange(64 * 32 * 3, dtype=np.uint32).reshape(32, 64, 3).astype(np.uint8)
        np.asarray(dst)[...] = 0
        result = self.client.call("image.echo", {"image": src, "into": dst.ref()})
        self.assertEqual(result["image"]["shm"], dst.name)
        np.testing.assert_array_equal(np.asarray(dst), np.asarray(src))

    def test_sample_types_and_tiny_sizes(self):
        for w, h, c, dtype, npt in [(1, 1, 4, "u8", np.uint8), (7, 3, 3, "u8", np.uint8), (5, 4, 1, "u16", np.uint16),
                                    (3, 2, 4, "f32", np.float32)]:
            with self.subTest(size=(w, h, c, dtype)):
                img = self.client.create_image(w, h, c, dtype)
                a = np.asarray(img)
                self.assertEqual((a.shape, a.dtype), ((h, w, c), np.dtype(npt)))
                a[...] = (np.arange(a.size).reshape(a.shape) % 200).astype(npt) / (1 if npt != np.float32 else 7)
                out = self.client.read_image(self.client.call("image.echo", {"image": img})["image"], take=True)
                self.assertEqual(out.dtype, dtype)
                np.testing.assert_array_equal(np.asarray(out), a)

    def test_write_and_tobytes_convert_layouts_in_one_pass(self):
        w, h = 13, 5
        rgba = np.random.default_rng(1).integers(0, 256, size=(h, w, 4), dtype=np.uint8)
        bgra = rgba[..., [2, 1, 0, 3]].copy()
        img = self.client.create_image(w, h, 4)
        img.write(bgra.tobytes(), "BGRA")  # Krita's pixelData layout
        np.testing.assert_array_equal(np.asarray(img), rgba)
        self.assertEqual(img.tobytes("BGRA"), bgra.tobytes())
        self.assertEqual(img.tobytes(), rgba.tobytes())
        self.assertEqual(img.tobytes("RGB"), rgba[..., :3].tobytes())
        self.assertEqual(img.tobytes("RGBA", flip_y=True), rgba[::-1].tobytes())
        img.write(rgba[::-1].tobytes(), "RGBA", flip_y=True)  # Blender's bottom-up rows
        np.testing.assert_array_equal(np.asarray(img), rgba)
        img.write(memoryview(bgra[..., :3].copy()), "BGR")  # alpha becomes opaque
        self.assertTrue((np.asarray(img)[..., 3] == 255).all())
        np.testing.assert_array_equal(np.asarray(img)[..., :3], rgba[..., :3])

        rgb = self.client.create_image(w, h, 3)
        rgb.write(rgba.tobytes(), "RGBA")
        out = np.frombuffer(rgb.tobytes("BGRA", alpha=255), dtype=np.uint8).reshape(h, w, 4)
        np.testing.assert_array_equal(out[..., :3], rgba[..., [2, 1, 0]])
        self.assertTrue((out[..., 3] == 255).all())

        mask = self.client.create_image(w, h, 1)
        mask.write(bytes(range(w * h)), "L")
        self.assertEqual(mask.tobytes("L"), bytes(range(w * h)))

    def test_bad_inputs_are_clear_errors(self):
        img = self.client.create_image(4, 4, 4)
        with self.assertRaises(ValueError) as cm:
            img.write(b"\0" * 10, "BGRA")
        self.assertIn("64", str(cm.exception))
        with self.assertRaises(ValueError):
            img.write(b"\0" * 64, "XYZW")
        gray = self.client.create_image(4, 4, 1)
        with self.assertRaises(ValueError):
            gray.write(b"\0" * 64, "RGBA")  # no grey channel to take
        gray.write(bytes(range(16)), "L")
        self.assertEqual(gray.tobytes("RGBA")[4:8], bytes([1, 1, 1, 255]))
        with self.assertRaises(ValueError):
            self.client.create_image(4, 4, 2)
        with self.assertRaises(ValueError):
            self.client.create_image(4, 4, 4, "u32")
        out = self.client.read_image(self.client.call("image.echo", {"image": img})["image"], take=True)
        with self.assertRaises(ValueError):
            out.write(b"\0" * 64)
        with self.assertRaises(kiln.ImageError):
            self.client.read_image({"shm": "kiln.0.1.00000000000000000000000000000000", "width": 4, "height": 4,
                                    "channels": 4, "dtype": "u8", "stride": 16})
        with self.assertRaises(kiln.ImageError):
            self.client.read_image({"width": 4})

    def test_blocks_are_released_when_the_last_view_goes(self):
        img = self.client.create_image(16, 16, 4)
        name = img.name
        view = np.asarray(img)
        del img
        view[0, 0, 0] = 1  # still mapped: the numpy view keeps the Image alive
        self.assertTrue(shm_exists(name))
        del view
        # Recycled into the client's pool (or removed): the next image of the size reuses it.
        again = self.client.create_image(16, 16, 4)
        self.assertEqual(again.name, name)


if __name__ == "__main__":
    unittest.main()
