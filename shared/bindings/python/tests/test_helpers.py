"""The host-independent helpers: sizes, prompts, request building, progress text, pixels."""

import unittest

import numpy as np

from kiln import jobs, pixels, requests
from kiln.requests import RequestError


class SizesTest(unittest.TestCase):
    def test_round_to_multiple(self):
        self.assertEqual([requests.round_to_multiple(n) for n in (1, 4, 5, 11, 12, 13, 512, 515, 516)],
                         [8, 8, 8, 8, 16, 16, 512, 512, 520])

    def test_plan_region_rounds_notes_and_stays_inside_the_canvas(self):
        r = requests.plan_region(0, 0, 640, 480, 640, 480)
        self.assertEqual((r.rect, r.note), ((0, 0, 640, 480), ""))
        r = requests.plan_region(10, 20, 301, 203, 800, 600)
        self.assertEqual((r.width, r.height), (304, 200))
        self.assertIn("301x203 rounded to 304x200", r.note)
        self.assertEqual(r.requested, (10, 20, 301, 203))
        # At the right/bottom edge, a size rounded up is shifted back inside.
        r = requests.plan_region(795, 597, 5, 3, 800, 600)
        self.assertEqual(r.rect, (792, 592, 8, 8))
        # A canvas whose own size is not a multiple of 8.
        r = requests.plan_region(0, 0, 1005, 333, 1005, 333)
        self.assertEqual((r.width, r.height), (1008, 336))
        self.assertEqual((r.x, r.y), (-1, -1))  # centred: the overhang is split
        r = requests.plan_region(0, 0, 1100, 1100, 1100, 1100)
        self.assertIn("Large area", r.note)
        with self.assertRaises(RequestError):
            requests.plan_region(0, 0, 0, 10, 100, 100)

    def test_plan_region_with_context_for_inpainting(self):
        r = requests.plan_region(100, 100, 50, 50, 400, 400, context=32)
        self.assertEqual(r.rect, (69, 69, 112, 112))  # 114 -> 112, centred
        r = requests.plan_region(0, 0, 50, 50, 400, 400, context=32)
        self.assertEqual(r.rect, (1, 1, 80, 80))  # 82 -> 80, centred


class PromptTest(unittest.TestCase):
    def test_insert_lora_tag(self):
        self.assertEqual(requests.insert_lora_tag("", "prod"), ("<lora:prod:0.8>", 15))
        p, cur = requests.insert_lora_tag("a photo of sks", "prod")
        self.assertEqual(p, "a photo of sks, <lora:prod:0.8>")
        self.assertEqual(cur, len(p))
        p, cur = requests.insert_lora_tag("a photo, on a table", "prod", 0.5, cursor=8)
        self.assertEqual(p, "a photo, <lora:prod:0.5>, on a table")
        self.assertEqual(p[:cur], "a photo, <lora:prod:0.5>")
        # The same LoRA again: its weight is replaced, not duplicated.
        p, _ = requests.insert_lora_tag("x, <lora:prod:0.8>, y", "prod", 1.25)
        self.assertEqual(p, "x, <lora:prod:1.25>, y")
        self.assertEqual(requests.lora_tags(p + " <lora:other>"), [("prod", 1.25), ("other", 1.0)])
        with self.assertRaises(RequestError):
            requests.insert_lora_tag("x", "bad:name")


class GenerateParamsTest(unittest.TestCase):
    def settings(self, **kw):
        s = requests.GenerateSettings(model="tiny", prompt="a cabin", seed=5, steps=4)
        for k, v in kw.items():
            setattr(s, k, v)
        return s

    def test_txt2img(self):
        p = requests.generate_params(self.settings(negative="blurry", clip_skip=2), 64, 48)
        self.assertEqual(p["width"], 64)
        self.assertEqual(p["height"], 48)
        self.assertEqual(p["negative"], "blurry")
        self.assertEqual(p["clip_skip"], 2)
        self.assertNotIn("init_image", p)
        self.assertNotIn("negative", requests.generate_params(self.settings(), 64, 64))

    def test_img2img_and_inpaint_need_their_images(self):
        with self.assertRaises(RequestError):
            requests.generate_params(self.settings(mode="img2img"), 64, 64)
        p = requests.generate_params(self.settings(mode="img2img", strength=0.4), 64, 64, init_image={"shm": "x"})
        self.assertEqual((p["strength"], p["init_image"]), (0.4, {"shm": "x"}))
        with self.assertRaises(RequestError) as cm:
            requests.generate_params(self.settings(mode="inpaint"), 64, 64, init_image={"shm": "x"})
        self.assertIn("select", str(cm.exception))
        p = requests.generate_params(self.settings(mode="inpaint"), 64, 64, init_image={"shm": "x"}, mask={"shm": "m"})
        self.assertEqual(p["mask"], {"shm": "m"})

    def test_plain_errors(self):
        for kw, words in [({"model": ""}, "base model"), ({"prompt": "  "}, "prompt"), ({"sampler": "Heun"}, "sampler"),
                          ({"steps": 0}, "Steps"), ({"mode": "img2img", "strength": 1.5}, "strength")]:
            with self.subTest(kw=kw):
                with self.assertRaises(RequestError) as cm:
                    requests.generate_params(self.settings(**kw), 64, 64, init_image={"shm": "x"})
                self.assertIn(words, str(cm.exception))
        with self.assertRaises(RequestError):
            requests.generate_params(self.settings(), 60, 64)


class ShotParamsTest(unittest.TestCase):
    def settings(self, **kw):
        s = requests.GenerateSettings(model="tiny", prompt="a bottle on marble", seed=5, steps=4, mode=requests.SHOT)
        for k, v in kw.items():
            setattr(s, k, v)
        return s

    def test_explicit_placement_keeps_the_layer_where_it_is(self):
        p = requests.shot_params(self.settings(count=3, edge=6), 96, 80, {"shm": "p"}, 12, -4)
        self.assertEqual((p["x"], p["y"], p["scale"], p["count"], p["edge"]), (12, -4, 1.0, 3, 6))
        self.assertEqual(p["product"], {"shm": "p"})
        self.assertNotIn("harmonize", p)
        self.assertEqual(requests.shot_params(self.settings(harmonize=0.2), 64, 64, {"shm": "p"}, 0, 0)["harmonize"], 0.2)

    def test_plain_errors(self):
        for kw, words in [({"count": 0}, "Variations"), ({"edge": 99}, "edge"), ({"harmonize": 0.7}, "Harmonize"),
                          ({"prompt": ""}, "prompt")]:
            with self.subTest(kw=kw):
                with self.assertRaises(RequestError) as cm:
                    requests.shot_params(self.settings(**kw), 64, 64, {"shm": "p"}, 0, 0)
                self.assertIn(words, str(cm.exception))
        with self.assertRaises(RequestError) as cm:
            requests.shot_params(self.settings(), 64, 64, None, 0, 0)
        self.assertIn("layer", str(cm.exception))
        with self.assertRaises(RequestError):
            requests.generate_params(self.settings(), 64, 64)


class DatasetParamsTest(unittest.TestCase):
    def test_names_and_triggers(self):
        p = requests.dataset_create_params(requests.DatasetSettings("speaker", "sks_speaker", "product", "grey"))
        self.assertEqual(p, {"name": "speaker", "preset": "product", "trigger": "sks_speaker", "background": "grey"})
        for bad in ("", "../x", "a/b", "x" * 65):
            with self.assertRaises(RequestError):
                requests.dataset_create_params(requests.DatasetSettings(bad))
        with self.assertRaises(RequestError):
            requests.dataset_create_params(requests.DatasetSettings("ok", "two words"))
        t = requests.train_params(requests.TrainSettings("tiny", "speaker", "", "product", {"max_train_epochs": 1}))
        self.assertEqual(t["name"], "speaker")
        self.assertEqual(t["config"], {"max_train_epochs": 1})
        t = requests.train_params(requests.TrainSettings("tiny", "speaker", "spk", set=["resolution=64"]))
        self.assertEqual(t["set"], ["resolution=64"])
        with self.assertRaises(RequestError):
            requests.train_params(requests.TrainSettings("tiny", "speaker", set=["resolution"]))

    def test_entries_and_sizes_use_the_daemons_names(self):
        # datasets.add_images entries are {image, name?, caption?} (shared/protocol/methods.cpp).
        ref = {"shm": "x"}
        self.assertEqual(requests.dataset_image_entry(ref, "layer 1", "red"), {"image": ref, "name": "layer 1", "caption": "red"})
        self.assertEqual(requests.dataset_image_entry(ref, ""), {"image": ref})
        p = requests.dataset_create_params(requests.DatasetSettings("s", preset="style", resolution=256, repeats=2))
        self.assertEqual(p, {"name": "s", "preset": "style", "resolution": 256, "repeats": 2})
        with self.assertRaises(RequestError):
            requests.dataset_create_params(requests.DatasetSettings("s", resolution=100))


class JobsTest(unittest.TestCase):
    def record(self, state, step=0, total=0, **extra):
        return {"id": "j1", "type": "train", "state": state,
                "progress": {"step": step, "total": total, "fraction": step / total if total else 0, "eta_s": 75.4,
                             "steps_per_s": 2.0, "message": "training", "extra": extra},
                "error": {"code": -32041, "message": "out of memory"} if state == "failed" else None}

    def test_describe(self):
        p = jobs.progress_from_record(self.record("running", 12, 40, loss=0.12345, epoch=2, epochs=10))
        self.assertEqual(jobs.describe(p), "running · step 12/40 · epoch 2/10 · loss 0.1235 · ETA 1:15 · training")
        self.assertIn("out of memory", jobs.describe(jobs.progress_from_record(self.record("failed"))))
        self.assertEqual(jobs.format_eta(3725), "1:02:05")
        self.assertEqual(jobs.format_eta(-1), "")

    def test_tracker_keeps_a_finished_state(self):
        t = jobs.JobTracker()
        self.assertIsNone(t.feed("something.else", {}))
        t.feed("job.state", {"job": self.record("done", 40, 40)})
        late = t.feed("job.progress", {"job": self.record("running", 39, 40)})
        self.assertEqual(late.state, "done")
        p = t.feed("job.progress", {"job": self.record("running", 1, 2), "preview": {"shm": "p"}})
        self.assertEqual(p.preview, {"shm": "p"})


class PixelsTest(unittest.TestCase):
    def both(self, fn, *args):
        """Runs fn with numpy and with the pure-Python fallback; they must agree."""
        with_np = fn(*args)
        saved = pixels._np
        pixels._np = None
        try:
            without = fn(*args)
        finally:
            pixels._np = saved
        self.assertEqual(with_np, without)
        return with_np

    def test_flatten_onto_white(self):
        bgra = bytes([10, 20, 30, 255,  10, 20, 30, 0,  200, 100, 0, 128])
        out = self.both(pixels.flatten_onto, bgra, 3, 1)
        self.assertEqual(out[:4], bytes([10, 20, 30, 255]))
        self.assertEqual(out[4:8], bytes([255, 255, 255, 255]))
        self.assertEqual(out[8:12], bytes([(200 * 128 + 255 * 127 + 127) // 255, (100 * 128 + 255 * 127 + 127) // 255,
                                           (0 + 255 * 127 + 127) // 255, 255]))
        grey = self.both(pixels.flatten_onto, bytes([0, 0, 0, 0]), 1, 1, (200, 200, 200))
        self.assertEqual(grey, bytes([200, 200, 200, 255]))

    def test_multiply_alpha_and_bounds(self):
        px = bytes([1, 2, 3, 255] * 6)
        out = self.both(pixels.multiply_alpha, px, bytes([255, 0, 128, 255, 255, 0]), 3, 2)
        self.assertEqual(out[3::4], bytes([255, 0, 128, 255, 255, 0]))
        img = np.zeros((5, 7, 4), np.uint8)
        img[1:3, 2:6, 3] = 9
        self.assertEqual(self.both(pixels.alpha_bounds, img.tobytes(), 7, 5), (2, 1, 4, 2))
        self.assertIsNone(self.both(pixels.alpha_bounds, bytes(7 * 5 * 4), 7, 5))
        self.assertEqual(pixels.crop(img.tobytes(), 7, 5, (2, 1, 4, 2)), img[1:3, 2:6].tobytes())

    def test_blender_float_rows(self):
        rgba = np.random.default_rng(3).integers(0, 256, size=(3, 4, 4), dtype=np.uint8)
        floats = pixels.u8_to_float_rgba(rgba.tobytes(), 4, 3)
        self.assertEqual(floats.shape, (48,))
        self.assertEqual(pixels.float_rgba_to_u8(floats, 4, 3), rgba.tobytes())


if __name__ == "__main__":
    unittest.main()
