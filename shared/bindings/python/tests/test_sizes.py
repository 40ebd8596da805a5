"""kiln.sizes: a model's own size by family (512 SD 1.x, 1024 SDXL) and the notes and defaults
the host plugins take from it."""

import unittest

from kiln import requests, restyle, sizes


class SizesTest(unittest.TestCase):
    def test_native_size_from_entries_and_families(self):
        self.assertEqual(sizes.native_size({"name": "xl", "family": "SDXL", "default_size": 1024}), 1024)
        self.assertEqual(sizes.native_size({"name": "xl", "family": "SDXL"}), 1024)  # an older kilnd
        self.assertEqual(sizes.native_size({"name": "v15", "family": "SD1.x", "default_size": 512}), 512)
        self.assertEqual(sizes.native_size("SDXL"), 1024)
        self.assertEqual(sizes.native_size(None), 512)
        self.assertEqual(sizes.model_sizes({"models": [{"name": "a", "default_size": 1024}, {"name": "b"}]}),
                         {"a": 1024, "b": 512})

    def test_notes_keep_sd1s_and_scale_for_sdxl(self):
        # SD 1.x: the note as before, above 1024x1024 only.
        self.assertEqual(requests.plan_region(0, 0, 1024, 1024, 1024, 1024).note, "")
        self.assertIn("SD 1.x works best near 512x512", requests.plan_region(0, 0, 1032, 1024, 1032, 1024).note)
        self.assertEqual(requests.plan_region(0, 0, 256, 256, 256, 256).note, "")
        # SDXL: large above 2048x2048, small below 512x512.
        self.assertEqual(requests.plan_region(0, 0, 2048, 2048, 2048, 2048, native=1024).note, "")
        self.assertIn("Large area: SDXL works best near 1024x1024",
                      requests.plan_region(0, 0, 2056, 2048, 2056, 2048, native=1024).note)
        self.assertIn("Small area: SDXL works best near 1024x1024",
                      requests.plan_region(0, 0, 256, 256, 256, 256, native=1024).note)

    def test_defaults_for_restyles_and_textures(self):
        self.assertEqual(sizes.restyle_max_side(512), 768)
        self.assertEqual(sizes.restyle_max_side(1024), 1536)
        self.assertEqual(sizes.texture_size(1024), 1024)
        w, h, note = restyle.plan_size(1920, 1080, sizes.restyle_max_side(1024))
        self.assertEqual((w, h), (1536, 864))
        self.assertIn("long side at most 1536", note)


if __name__ == "__main__":
    unittest.main()
