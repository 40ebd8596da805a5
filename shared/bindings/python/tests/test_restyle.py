"""The host-independent helpers for restyling renders and animations: frame names as Blender
writes them, folders of frames, resuming, progress, infotext, request building."""

import os
import struct
import tempfile
import unittest
import zlib

import numpy as np

from kiln import frames, infotext, pixels, requests, restyle
from kiln.requests import RequestError


class FrameNamesTest(unittest.TestCase):
    def test_blenders_rules(self):
        # The last run of '#' is the frame, padded to its length; no '#': four digits appended.
        self.assertEqual(frames.frame_name("", 12), "0012.png")
        self.assertEqual(frames.frame_name("shot_", 7), "shot_0007.png")
        self.assertEqual(frames.frame_name("shot_##_x", 3), "shot_03_x.png")
        self.assertEqual(frames.frame_name("a##_b###", 5), "a##_b005.png")
        self.assertEqual(frames.frame_name("take", 12345), "take12345.png")
        self.assertEqual(frames.frame_name("take", -12), "take-0012.png")
        self.assertEqual(frames.frame_name("frame_####.png", 9), "frame_0009.png")
        self.assertEqual(frames.frame_name("x", 1, ext=".jpg"), "x0001.jpg")

    def test_restyled_frames_go_beside_blenders(self):
        self.assertEqual(frames.split_output_path("/r/shot_##"), ("/r", "shot_##"))
        self.assertEqual(frames.split_output_path("/r/"), ("/r", ""))
        self.assertEqual(frames.restyled_frame_path("/r/shot_##", 7), "/r/kiln/shot_07.png")
        self.assertEqual(frames.restyled_frame_path("/tmp/", 1), "/tmp/kiln/0001.png")
        self.assertEqual(frames.restyled_frame_path("/tmp/", 1, subfolder=""), "/tmp/0001.png")
        with self.assertRaises(frames.FrameError) as cm:
            frames.restyled_frame_path("", 1)
        self.assertIn("output path", str(cm.exception))

    def test_frame_numbers_and_folders(self):
        self.assertEqual(frames.frame_number("/x/shot_0012.png"), 12)
        self.assertEqual(frames.frame_number("take2_0007.exr"), 7)
        self.assertIsNone(frames.frame_number("cover.png"))
        with tempfile.TemporaryDirectory() as d:
            for n in ("0003.png", "0001.png", "0002.jpg", "notes.txt"):
                open(os.path.join(d, n), "wb").close()
            os.mkdir(os.path.join(d, "0004.png"))  # a folder is not a frame
            self.assertEqual([(f, os.path.basename(p)) for f, p in frames.frames_in_folder(d)],
                             [(1, "0001.png"), (2, "0002.jpg"), (3, "0003.png")])
            open(os.path.join(d, "x0003.png"), "wb").close()
            with self.assertRaises(frames.FrameError) as cm:
                frames.frames_in_folder(d)
            self.assertIn("both frame 3", str(cm.exception))
        with tempfile.TemporaryDirectory() as d:
            for n in ("b.png", "a.png"):
                open(os.path.join(d, n), "wb").close()
            self.assertEqual([(f, os.path.basename(p)) for f, p in frames.frames_in_folder(d)], [(1, "a.png"), (2, "b.png")])
            with self.assertRaises(frames.FrameError):
                frames.frames_in_folder(os.path.join(d, "missing"))

    def test_ranges_resume_and_atomic_writes(self):
        self.assertEqual(frames.frame_range(1, 5, 2), [1, 3, 5])
        with self.assertRaises(frames.FrameError):
            frames.frame_range(5, 1)
        with tempfile.TemporaryDirectory() as d:
            out = lambda f: os.path.join(d, "kiln", frames.frame_name("", f))  # noqa: E731
            src = os.path.join(d, "src.png")
            with open(src, "wb") as f:
                f.write(b"frame")
            for f in (1, 2, 4):
                frames.write_atomic(src, out(f))
            # Resume: from the first missing frame, skipping outputs that exist.
            self.assertEqual(frames.frames_to_do([1, 2, 3, 4, 5], out), [3, 5])
            self.assertEqual(open(out(4), "rb").read(), b"frame")
            self.assertEqual([n for n in os.listdir(os.path.join(d, "kiln")) if n.startswith(".")], [])

    def test_progress_and_eta(self):
        p = frames.FrameProgress([1, 2, 3, 4])
        p.begin(1, now=0.0)
        self.assertEqual(p.eta_s(), -1.0)
        self.assertEqual(p.describe(), "frame 1 (1/4)")
        p.finish(1, now=10.0)
        p.begin(2, now=10.0)
        p.current_fraction = 0.5
        self.assertAlmostEqual(p.fraction, 1.5 / 4)
        self.assertAlmostEqual(p.eta_s(), 25.0)  # 10 s a frame, 2.5 frames left
        self.assertEqual(p.describe(), "frame 2 (2/4) · ETA 0:25")


def png_with_text(path, key, text, width=2, height=1):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + b"\x10\x20\x30" * width for _ in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                chunk(b"tEXt", key.encode() + b"\0" + text.encode("latin-1")) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class InfotextTest(unittest.TestCase):
    TEXT = ("a watercolour of a house, <lora:ink:0.8>\nNegative prompt: blurry\n"
            'Steps: 4, Sampler: Euler, CFG scale: 7, Seed: 1234, Size: 64x48, Model: "tiny, v2", Denoising strength: 0.5')

    def test_parse(self):
        info = infotext.parse_infotext(self.TEXT)
        self.assertEqual(info["prompt"], "a watercolour of a house, <lora:ink:0.8>")
        self.assertEqual(info["negative"], "blurry")
        self.assertEqual(info["params"]["Seed"], "1234")
        self.assertEqual(info["params"]["Model"], "tiny, v2")
        self.assertEqual(info["params"]["Denoising strength"], "0.5")

    def test_png_chunks(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.png")
            png_with_text(path, "parameters", self.TEXT)
            self.assertEqual(infotext.png_seed(path), 1234)
            self.assertEqual(infotext.read_png_text(path)["parameters"], self.TEXT)
            bad = os.path.join(d, "bad.png")
            with open(bad, "wb") as f:
                f.write(b"GIF89a")
            with self.assertRaises(infotext.InfotextError):
                infotext.read_png_text(bad)


class RestyleRequestsTest(unittest.TestCase):
    def settings(self, **kw):
        return restyle.settings_with(requests.GenerateSettings(model="tiny", prompt="<lora:ink:0.8> an ink drawing",
                                                               seed=7, steps=4), **kw)

    def test_sizes(self):
        self.assertEqual(restyle.plan_size(64, 48)[:2], (64, 48))
        w, h, note = restyle.plan_size(1920, 1080)
        self.assertEqual((w, h), (768, 432))
        self.assertIn("1920x1080 render is restyled at 768x432", note)
        self.assertEqual(restyle.plan_size(1001, 563, max_side=2048)[:2], (1000, 560))
        with self.assertRaises(RequestError) as cm:
            restyle.plan_size(0, 0)
        self.assertIn("render the scene first", str(cm.exception))

    def test_restyle_is_img2img_from_the_render(self):
        p = restyle.restyle_params(self.settings(strength=0.4), 64, 48, {"shm": "r"}, seed=99)
        self.assertEqual((p["init_image"], p["strength"], p["seed"], p["width"], p["height"]),
                         ({"shm": "r"}, 0.4, 99, 64, 48))
        self.assertNotIn("tiling", p)
        with self.assertRaises(RequestError):
            restyle.restyle_params(self.settings(), 64, 48, None)
        with self.assertRaises(RequestError) as cm:
            restyle.restyle_params(self.settings(model=""), 64, 48, {"shm": "r"})
        self.assertIn("model", str(cm.exception))

    def test_texture_is_tiled_txt2img(self):
        p = restyle.texture_params(self.settings(mode="img2img"), 256, 256)
        self.assertEqual((p["tiling"], p["width"]), (True, 256))
        self.assertNotIn("init_image", p)
        self.assertNotIn("tiling", restyle.texture_params(self.settings(), 64, 64, tiling=False))

    def test_seeds_and_names(self):
        self.assertEqual(restyle.pick_seed(5), 5)
        self.assertTrue(0 <= restyle.pick_seed(-1) <= restyle.SEED_MAX)
        name = restyle.result_name("restyle", "<lora:ink:0.8>, an ink drawing of a house", 42)
        self.assertEqual(name, "Kiln restyle: an ink drawing of a house (seed 42)")
        long = restyle.result_name("restyle", "word " * 40, 4294967295)
        self.assertLessEqual(len(long.encode("utf-8")), 63)
        self.assertTrue(long.endswith("\u2026 (seed 4294967295)"), long)

    def test_training_overrides(self):
        self.assertEqual(restyle.parse_training_overrides("max_train_epochs=2, network_dim = 8"),
                         ["max_train_epochs=2", "network_dim=8"])
        self.assertEqual(restyle.parse_training_overrides("resolution=64\nsample_prompts=ink, a house --w 64"),
                         ["resolution=64", "sample_prompts=ink, a house --w 64"])
        self.assertEqual(restyle.parse_training_overrides(""), [])
        with self.assertRaises(RequestError) as cm:
            restyle.parse_training_overrides("epochs 3")
        self.assertIn("key=value", str(cm.exception))


class FloatPixelsTest(unittest.TestCase):
    def test_linear_to_srgb(self):
        lin = np.array([[0.0, 0.0031308, 0.2140, 1.0], [1.0, 0.5, 2.0, 0.5]], dtype=np.float32)  # 2 pixels, bottom row
        out = pixels.linear_float_rgba_to_srgb_u8(lin.ravel(), 2, 1)
        self.assertEqual(list(out), [0, 10, 127, 255, 255, 188, 255, 128])


if __name__ == "__main__":
    unittest.main()
