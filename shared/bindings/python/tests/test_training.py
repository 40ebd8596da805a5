"""Host-free pieces of the training panels (kiln.training, the tag requests, finding tooltips):
the parameters read from a train.plan answer and sent back when changed, the plan's lines, the loss
and its smoothing and plot, a live run fed from train.history answers, the epochs to choose from,
the grid's strengths and the trainings to attach to."""

import unittest

from kiln import findings, requests, training
from kiln.jobs import Progress

# A train.plan answer as kilnd gives it for the product preset on a 4-image dataset (trimmed).
PLAN = {
    "base": "tiny", "data": "/d/datasets/bottles", "resolution": [64, 64],
    "config": {"num_repeats": None, "max_train_epochs": 3, "resolution": "64,64", "train_batch_size": 1,
               "network_dim": 16, "network_alpha": 8.0, "learning_rate": 1e-4, "unet_lr": None,
               "text_encoder_lr": 1e-5, "lr_scheduler": "cosine_with_restarts", "optimizer_type": "AdamW",
               "clip_skip": None, "sample_prompts": ["# a comment", "tinyprod, bottle --w 64 --h 64", ""],
               "sample_every_n_epochs": 1},
    "origins": {"max_train_epochs": "--set", "network_dim": "preset product"},
    "folders": [{"name": "2_tinyprod", "images": 4, "repeats": 2}],
    "images": 4, "images_with_repeats": 8, "epochs": 3, "steps": 24, "files": 3, "sample_images": 3,
    "warnings": ["The dataset has only 4 images; ...", "This training runs 24 steps, well below the usual 1,500-3,000"],
    "estimated_seconds": 9.6, "seconds_per_step": 0.4, "time_basis": "measured ...",
}


class ParametersTest(unittest.TestCase):
    def test_values_come_from_the_resolved_config_and_the_dataset(self):
        v = training.values_from_plan(PLAN)
        self.assertEqual(v["num_repeats"], 2, "the dataset folder's repeats when num_repeats is unset")
        self.assertEqual(v["resolution"], 64)
        self.assertEqual(v["unet_lr"], 1e-4, "unset: the learning rate")
        self.assertEqual(v["clip_skip"], 1)
        self.assertEqual(v["sample_prompts"], "tinyprod, bottle --w 64 --h 64")
        self.assertEqual(v["sample_every_n_epochs"], 1)
        self.assertEqual(set(v), set(training.PARAMETER_KEYS))
        non_square = dict(PLAN, config=dict(PLAN["config"], resolution="512,768", sample_every_n_epochs=None))
        v2 = training.values_from_plan(non_square)
        self.assertEqual(v2["resolution"], "512,768")
        self.assertEqual(v2["sample_every_n_epochs"], 0, "off")

    def test_only_changed_values_are_sent_in_kohya_form(self):
        base = training.values_from_plan(PLAN)
        edited = dict(base, network_dim=8, network_alpha=4, sample_prompts="a\n\n b ", sample_every_n_epochs=0)
        self.assertEqual(training.changed_values(edited, base),
                         {"network_dim": 8, "network_alpha": 4.0, "sample_prompts": ["a", "b"],
                          "sample_every_n_epochs": None})
        self.assertEqual(training.changed_values(base, base), {})
        self.assertEqual(training.changed_values(dict(base, learning_rate=1e-4 + 1e-20), base), {})
        for bad, words in (({"resolution": 100}, "multiple of 64"), ({"network_dim": 0}, "between 1 and 1024"),
                           ({"lr_scheduler": "warp"}, "one of"), ({"learning_rate": -1.0}, "between 0")):
            with self.assertRaises(requests.RequestError) as e:
                training.changed_values(dict(base, **bad), base)
            self.assertIn(words, str(e.exception))

    def test_other_options_are_key_value_lines(self):
        self.assertEqual(training.other_options(" min_bucket_reso=64\n\n# a note\nseed = 42 "),
                         ["min_bucket_reso=64", "seed = 42"])
        self.assertEqual(training.other_options(""), [])
        with self.assertRaises(requests.RequestError) as e:
            training.other_options("seed=1\nshuffle_caption\n=3")
        self.assertIn("shuffle_caption; =3", str(e.exception))

    def test_plan_lines_and_warnings(self):
        lines = training.plan_summary(PLAN)
        self.assertEqual(lines[0], "24 steps: 4 images x 2 repeats x 3 epochs / batch 1")
        self.assertEqual(lines[1], "writes 3 LoRA files and 3 samples")
        self.assertEqual(lines[2], "about 10 s of training")
        unknown = dict(PLAN, estimated_seconds=None)
        self.assertIn("first steps", training.plan_summary(unknown)[2])
        self.assertIn("No images", training.plan_summary(dict(PLAN, images=0))[0])
        self.assertEqual(len(training.plan_warnings(PLAN)), 2)
        self.assertEqual(training.format_duration(3725), "1:02:05")
        self.assertIn("first in every caption", training.TRIGGER_HELP)


def history(start, points, state="running", samples=(), files=(), next_=None, lora="view"):
    loss = [{"step": s, "epoch": e, "loss": l, "lr": 1e-4} for s, e, l in points]
    return {"id": "j1", "state": state, "lora": lora, "client": "kiln-cli 0.1", "loss": loss, "from": start,
            "next": start + len(loss) if next_ is None else next_, "samples": list(samples), "files": list(files),
            "epochs": 2, "progress": {"step": start + len(loss), "total": 4}, "result": None, "error": None}


class LossTest(unittest.TestCase):
    def test_feed_appends_in_order_and_ignores_points_already_held(self):
        h = training.LossHistory()
        self.assertEqual(h.feed(history(0, [(1, 1, 0.5), (2, 1, 0.3)])), 2)
        self.assertEqual(h.next, 2)
        self.assertEqual(h.feed(history(1, [(2, 1, 0.3), (3, 2, 0.2)])), 1, "a refetch from 1 adds only step 3")
        self.assertEqual([p.step for p in h.points], [1, 2, 3])
        self.assertEqual(h.next, 3)
        self.assertEqual(h.epoch_starts(), [2])
        self.assertAlmostEqual(h.epoch_means()[1], 0.4)

    def test_smoothing_is_a_debiased_moving_average(self):
        h = training.LossHistory()
        h.feed(history(0, [(1, 1, 1.0), (2, 1, 0.0), (3, 1, 0.0)]))
        s = h.smoothed(0.5)
        self.assertAlmostEqual(s[0], 1.0, msg="debiased: the first value is the first loss, not half of it")
        self.assertAlmostEqual(s[1], 0.5 * 0.5 / 0.75)
        self.assertEqual(h.smoothed(0), [1.0, 0.0, 0.0])

    def test_plot_maps_steps_and_losses_into_the_box(self):
        h = training.LossHistory()
        self.assertIsNone(training.plot_curves(h, 100, 50))
        h.feed(history(0, [(1, 1, 0.4), (2, 1, 0.2), (3, 2, 0.3), (4, 2, 0.1)]))
        c = training.plot_curves(h, 110, 60, total_steps=8, weight=0, margin=(10, 5, 0, 5))
        self.assertEqual(c.x_max, 8)
        self.assertEqual(c.raw[0], (10 + 100 * 1 / 8.0, 5.0), "the highest loss at the top")
        self.assertEqual(c.raw[3], (10 + 100 * 4 / 8.0, 55.0), "the lowest at the bottom")
        self.assertEqual(c.epoch_x, [10 + 100 * 2 / 8.0])
        self.assertEqual((c.y_min, c.y_max), (0.1, 0.4))
        flat = training.LossHistory()
        flat.feed(history(0, [(1, 1, 0.2)]))
        f = training.plot_curves(flat, 10, 10)
        self.assertTrue(f.y_min < 0.2 < f.y_max, "a single value still gets a range")


class LiveTest(unittest.TestCase):
    def test_fetches_on_a_timer_and_at_once_for_new_samples_files_or_the_end(self):
        now = [100.0]
        live = training.LiveTraining("j1", interval=0.5, clock=lambda: now[0])
        self.assertTrue(live.should_fetch())
        self.assertEqual(live.fetch_params(), {"id": "j1", "from": 0})
        self.assertFalse(live.should_fetch(), "one fetch at a time")
        added, new_samples, new_files = live.feed(history(0, [(1, 1, 0.5)]))
        self.assertEqual((added, new_samples, new_files), (1, False, False))
        p = Progress("j1", "train", "running", step=2, total=4, extra={"samples": 0, "files": 0})
        self.assertFalse(live.should_fetch(p), "too soon")
        now[0] += 0.6
        self.assertTrue(live.should_fetch(p))
        self.assertFalse(live.should_fetch(Progress("j1", "train", "running", step=1, total=4)), "no new step")
        self.assertTrue(live.should_fetch(Progress("j1", "train", "paused", step=1, total=4)), "paused: at once")
        p.extra = {"samples": 1, "files": 0}
        now[0] -= 0.5
        self.assertTrue(live.should_fetch(p), "a new sample: at once")
        self.assertTrue(live.should_fetch(Progress("j1", "train", "done", step=4, total=4)), "the end: at once")
        self.assertEqual(live.fetch_params()["from"], 1)
        sample = {"epoch": 1, "step": 2, "index": 0, "prompt": "p", "path": "/s/view_e000001_s000002_00.png"}
        files = [{"epoch": 1, "step": 2, "path": "/l/view-000001.safetensors"},
                 {"epoch": 2, "step": 4, "path": "/l/view.safetensors"}]
        self.assertEqual(live.feed(history(1, [(2, 1, 0.3), (3, 2, 0.2), (4, 2, 0.1)], "done", [sample], files)),
                         (3, True, True))
        self.assertTrue(live.finished)
        self.assertFalse(live.should_fetch())
        self.assertEqual(live.samples_by_epoch(), [(1, [sample])])
        line = live.status_line()
        self.assertIn("done", line)
        self.assertIn("epoch 2/2", line)
        self.assertIn("loss 0.1000", line)
        running = Progress("j1", "train", "running", step=3, total=4, eta_s=65,
                           extra={"epoch": 2, "epochs": 2, "loss": 0.2})
        self.assertIn("ETA 1:05", live.status_line(running))

    def test_epoch_rows_follow_what_the_library_holds(self):
        live = training.LiveTraining("j1")
        s1 = {"epoch": 1, "step": 2, "index": 0, "path": "/s/e1.png"}
        s2 = {"epoch": 2, "step": 4, "index": 0, "path": "/s/e2.png"}
        files = [{"epoch": 1, "path": "/l/view-000001.safetensors"}, {"epoch": 2, "path": "/l/view.safetensors"}]
        live.feed(history(0, [(1, 1, 0.4), (2, 1, 0.2), (3, 2, 0.1), (4, 2, 0.1)], "done", [s1, s2], files))
        rows = training.epoch_rows(live)
        self.assertEqual([(r.epoch, r.final, r.in_use, r.samples) for r in rows],
                         [(1, False, False, ["/s/e1.png"]), (2, True, True, ["/s/e2.png"])])
        self.assertAlmostEqual(rows[0].loss, 0.3)
        self.assertEqual(rows[1].label, "epoch 2 · loss 0.1000 · final file · in use")
        # After loras.use_epoch 1: every epoch has its own file; the final one holds epoch 1.
        lora = {"name": "view", "file": "/l/view.safetensors", "chosen_epoch": 1,
                "epochs": [{"epoch": 1, "path": "/l/view-000001.safetensors"},
                           {"epoch": 2, "path": "/l/view-000002.safetensors"}]}
        rows = training.epoch_rows(live, lora)
        self.assertEqual([(r.epoch, r.path, r.in_use, r.final) for r in rows],
                         [(1, "/l/view-000001.safetensors", True, False), (2, "/l/view-000002.safetensors", False, False)])
        # Before any choice the library lists the final file apart.
        fresh = dict(lora, chosen_epoch=None, epochs=lora["epochs"][:1])
        self.assertEqual([(r.epoch, r.final, r.in_use) for r in training.epoch_rows(live, fresh)],
                         [(1, False, False), (2, True, True)])

    def test_grid_params_and_strengths(self):
        self.assertEqual(training.parse_strengths("0.25, 0.5;1"), [0.25, 0.5, 1.0])
        for bad in ("", "a, b", "9", ",".join(["0.1"] * 21)):
            with self.assertRaises(requests.RequestError):
                training.parse_strengths(bad)
        self.assertEqual(training.grid_params("view", " tinyprod, red ", "0.5 1", steps=3, seed=None),
                         {"lora": "view", "prompt": "tinyprod, red", "strengths": [0.5, 1.0], "steps": 3})
        self.assertEqual(training.grid_params("view"), {"lora": "view"})

    def test_trainings_to_attach_to_running_first(self):
        jobs = [
            {"id": "a", "type": "train", "state": "done", "client": "krita-plugin 0.1", "params": {"name": "old"},
             "result": {"lora": "old"}, "progress": {"step": 4, "total": 4}},
            {"id": "b", "type": "generate", "state": "running"},
            {"id": "c", "type": "train", "state": "running", "client": "kiln-cli 0.1", "params": {"name": "cli-lora"},
             "progress": {"step": 3, "total": 12}},
        ]
        entries = training.trainings_from_jobs(jobs)
        self.assertEqual([e.id for e in entries], ["c", "a"])
        self.assertEqual(entries[0].label, "cli-lora — running 3/12 (kiln-cli)")
        self.assertEqual(entries[1].label, "old — done (krita-plugin)")
        self.assertEqual(training.trainings_from_jobs(jobs, recent=0)[-1].id, "c")


class TagsAndFindingsTest(unittest.TestCase):
    def test_tag_batch_actions(self):
        self.assertEqual(requests.tag_edit_params("ds", "replace", ["red"], " blue "),
                         {"name": "ds", "replace": {"old": "red", "new": "blue"}})
        self.assertEqual(requests.tag_edit_params("ds", "remove", ["a", " b "], ids=["0001"]),
                         {"name": "ds", "remove": ["a", "b"], "ids": ["0001"]})
        self.assertEqual(requests.tag_edit_params("ds", "move_to_end", ["white background"]),
                         {"name": "ds", "move_to_end": ["white background"]})
        self.assertEqual(requests.tag_edit_params("ds", "add", [], "studio light, wood"),
                         {"name": "ds", "add": ["studio light", "wood"]})
        for action, tags, value, words in (("replace", ["a", "b"], "c", "one tag"), ("replace", ["a"], "", "Type"),
                                           ("remove", [], "", "Select"), ("add", [], "", "Type"),
                                           ("shout", ["a"], "", "Unknown")):
            with self.assertRaises(requests.RequestError) as e:
                requests.tag_edit_params("ds", action, tags, value)
            self.assertIn(words, str(e.exception))
        self.assertEqual(requests.auto_tag_params("ds", 0.5), {"name": "ds", "threshold": 0.5, "replace": False})
        with self.assertRaises(requests.RequestError):
            requests.auto_tag_params("ds", 1.5)
        self.assertEqual(requests.split_tags(" a, ,b,"), ["a", "b"])

    def test_gallery_tooltips_say_each_finding_and_what_to_do(self):
        image = {"id": "0002", "source_name": "IMG_3.jpg", "caption": "sks, bottle",
                 "findings": [{"code": "blurry", "message": "'IMG_3.jpg' looks blurry.", "action": "Replace it."}]}
        dataset = {"images": [image, {"id": "0003", "findings": []}]}
        self.assertEqual([f.code for f in findings.by_image(dataset)["0002"]], ["blurry"])
        self.assertEqual(findings.by_image(dataset)["0003"], [])
        self.assertEqual(findings.tooltip(image), "0002  IMG_3.jpg\nCaption: sks, bottle\n! 'IMG_3.jpg' looks blurry.\n"
                                                  "  -> Replace it.")
        self.assertTrue(findings.tooltip({"id": "0003"}).endswith("No findings."))


if __name__ == "__main__":
    unittest.main()
