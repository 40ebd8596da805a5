"""Dataset findings grouped for display (kiln.findings): dataset first, then images, with actions."""

import unittest

from kiln import findings

DATASET = {
    "name": "acme",
    "findings": [{"code": "few_images", "message": "dataset 'acme' has only 3 images.", "action": "Add photos."}],
    "images": [
        {"id": "0001", "source_name": "front.png", "findings": []},
        {"id": "0002", "source_name": "IMG_3.jpg", "findings": [
            {"code": "blurry", "message": "'IMG_3.jpg' looks blurry: its subject's edges are 6.2 px wide.",
             "action": "Replace it with a sharper photo, or remove it."}]},
        {"id": "0003", "source_name": "front copy.jpg", "findings": [
            {"code": "near_duplicate", "message": "'front copy.jpg' is the same picture as 'front.png' (0001).",
             "action": "Keep 'front.png' (it is larger) and remove this one.", "other": "0001"},
            {"code": "too_small", "message": "'front copy.jpg' is too small.", "action": "Use a larger original."}]},
    ],
}


class FindingsTest(unittest.TestCase):
    def test_groups_dataset_first_then_images_with_findings(self):
        groups = findings.group_findings(DATASET)
        self.assertEqual([g.title for g in groups], ["Dataset 'acme'", "0002  IMG_3.jpg", "0003  front copy.jpg"])
        self.assertIsNone(groups[0].image_id)
        self.assertEqual(groups[2].image_id, "0003")
        dup = groups[2].findings[0]
        self.assertEqual((dup.code, dup.other, dup.label), ("near_duplicate", "0001", "same picture as another"))
        self.assertIn("Keep 'front.png'", dup.action)
        self.assertEqual(findings.count_clean(DATASET), 1)

    def test_summary_and_text(self):
        self.assertEqual(findings.summary(DATASET), "3 findings on 2 of 3 images, 1 for the whole dataset.")
        self.assertEqual(findings.summary({"images": [{"id": "1", "findings": []}]}), "No findings on 1 image.")
        text = findings.as_text(DATASET)
        self.assertTrue(text.startswith("Dataset 'acme'\n  ! few_images:"))
        self.assertIn("    -> Replace it with a sharper photo, or remove it.", text)
        self.assertTrue(text.endswith("1 image without findings"))

    def test_copies_to_remove_and_odd_input(self):
        self.assertEqual(findings.duplicates_to_remove(DATASET), ["0003"])
        self.assertEqual(findings.group_findings({"images": [None, {"id": "x", "findings": ["bad"]}]}), [])
        self.assertEqual(findings.summary({}), "No findings on 0 images.")


if __name__ == "__main__":
    unittest.main()
