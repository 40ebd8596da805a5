"""Kiln's GUI test probe: a second Python plugin installed only into the test's Krita profile
(see tests/hosts/krita/run_krita_test.py gui).

Once Krita's main window is up it opens a document, shows the Kiln docker, clicks its Connect and
Generate buttons (the same slots a user's clicks run), waits for the layer, saves screenshots of
the docker and the window to $KILN_TEST_OUT; then draws a product cut-out on a layer of its own,
switches to the "product shot" mode, clicks again, waits for the scene layer below the product and
saves a screenshot of that. Then the training panels: a dataset from a group of layers (the
gallery with its thumbnails and findings), a short training with changed Advanced values (the live
loss and samples), the epoch choice ("Use this epoch", the grid), each with a screenshot. Writes
result.json there, then quits Krita.
"""

import json
import os
import time
import traceback

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication, QDockWidget

OUT = os.environ.get("KILN_TEST_OUT", "/tmp")
SHOTS = os.environ.get("KILN_TEST_SCREENSHOT_DIR")
DEADLINE_S = float(os.environ.get("KILN_TEST_GUI_DEADLINE", "500"))  # under CTest's 600 s


class Probe:
    def __init__(self):
        self.result = {"errors": [], "steps": []}
        self.t0 = time.monotonic()
        self.docker = None
        self.doc = None
        self.window_t0 = self.t0
        self.layers_before = 0

    def step(self, text):
        self.result["steps"].append("%.1f s: %s" % (time.monotonic() - self.t0, text))
        print(ascii("kiln-gui-probe: " + text)[1:-1], flush=True)  # Krita's stdout may be ASCII

    def fail(self, text):
        self.result["errors"].append(text)
        print(ascii("kiln-gui-probe: ERROR " + text)[1:-1], flush=True)
        self.finish()

    def later(self, ms, fn):
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - reported as a test failure
                self.fail("%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
        QTimer.singleShot(ms, run)

    def start(self):
        app = Krita.instance()
        window = app.activeWindow()
        if window is None:
            self.later(200, self.start)
            return
        self.doc = app.createDocument(512, 384, "kiln-gui", "RGBA", "U8", "", 72.0)
        layer = self.doc.createNode("sketch", "paintlayer")
        self.doc.rootNode().addChildNode(layer, None)
        layer.setPixelData(bytes((235, 225, 215, 255)) * (512 * 384), 0, 0, 512, 384)
        window.addView(self.doc)
        self.doc.setActiveNode(layer)
        self.layers_before = len(self.doc.rootNode().childNodes())
        self.window_t0 = time.monotonic()
        self.step("document open")
        docks = [d for d in window.qwindow().findChildren(QDockWidget) if d.objectName() == "kiln_docker"]
        if not docks:
            self.fail("no Kiln docker in the window: %s" % sorted(d.objectName() for d in window.qwindow().findChildren(QDockWidget)))
            return
        dock = docks[0]
        dock.show()
        dock.raise_()
        self.docker = next((d for d in app.dockers() if d.objectName() == "kiln_docker"), dock)
        self.result["docker_title"] = dock.windowTitle()
        self.later(300, self.connect)

    def connect(self):
        d = self.docker
        d.connect_button.click()
        models = [d.generate_tab.gen_model.itemText(i) for i in range(d.generate_tab.gen_model.count())]
        self.result["models"] = models
        self.result["daemon_label"] = d.daemon_label.text()
        self.step("connected: %s; models %s" % (d.daemon_label.text(), models))
        if "tiny" not in models:
            self.fail("the model picker does not list kilnd's model 'tiny': %s" % models)
            return
        d.generate_tab.gen_model.setCurrentText("tiny")
        d.generate_tab.gen_prompt.setPlainText("a red speaker on a wooden table, studio light")
        d.generate_tab.gen_negative.setPlainText("blurry, low quality")
        d.generate_tab.gen_seed.setValue(1234)
        d.generate_tab.gen_steps.setValue(4)
        d.generate_tab.gen_sampler.setCurrentText("Euler")
        d.tabs.setCurrentIndex(2)
        sel = Selection()
        sel.select(200, 150, 93, 61, 255)  # rounded to 96x64: seconds on a CPU
        self.doc.setSelection(sel)
        d.generate_tab.update_size_note()
        self.result["size_note"] = d.generate_tab.gen_size.text()
        if "96x64 from the selection (93x61, rounded to multiples of 8)" not in d.generate_tab.gen_size.text():
            self.fail("the size note: %r" % d.generate_tab.gen_size.text())
            return
        self.finished = []
        d.controller.generationFinished.connect(lambda node, record: self.finished.append((node, record)))
        d.generate_tab.gen_start.click()   # the Generate button's own slot
        if d.controller.generation is None:
            self.fail("Generate did not start a job; status: %s" % d.status.text())
            return
        self.step("generating: %s" % d.status.text())
        self.wait_for_layer()

    def wait_for_layer(self):
        d = self.docker
        if time.monotonic() - self.window_t0 > DEADLINE_S:
            self.fail("the generation did not finish in time; status: %s" % d.status.text())
            return
        if not self.finished:
            self.later(100, self.wait_for_layer)
            return
        node, record = self.finished[-1]
        self.result["job_state"] = record.get("state")
        if node is None:
            self.fail("the job ended %s without a layer (status: %s)" % (record.get("state"), d.status.text()))
            return
        names = [n.name() for n in self.doc.rootNode().childNodes()]
        self.result["layers"] = names
        self.result["status"] = d.status.text()
        # Placed just above the active layer ('sketch'); Krita's GUI keeps the global selection
        # as a 'Selection Mask' node at the top of the stack.
        if node.name() not in names or names.index(node.name()) != names.index("sketch") + 1:
            self.fail("the new layer %r is not just above 'sketch': %s" % (node.name(), names))
            return
        b = node.bounds()
        self.result["layer_bounds"] = [b.x(), b.y(), b.width(), b.height()]
        if self.result["layer_bounds"] != [199, 149, 96, 64]:
            self.fail("the layer covers %s, not the rounded selection [199, 149, 96, 64]" % self.result["layer_bounds"])
            return
        self.step("layer %s at %s" % (node.name(), self.result["layer_bounds"]))
        self.later(500, self.screenshots)

    def screenshots(self):
        d = self.docker
        if d.preview.pixmap() is None or d.preview.pixmap().isNull():
            self.fail("the docker shows no preview of the result")
            return
        QApplication.processEvents()
        shot = d.grab()
        shot.save(os.path.join(OUT, "docker.png"))
        self.result["docker_size"] = [shot.width(), shot.height()]
        window = Krita.instance().activeWindow().qwindow()
        window.grab().save(os.path.join(OUT, "window.png"))
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            shot.save(os.path.join(SHOTS, "krita-docker.png"))
        self.step("screenshots saved (%dx%d docker)" % (shot.width(), shot.height()))
        self.later(200, self.product_shot)

    def product_shot(self):
        d = self.docker
        self.doc.setSelection(None)
        bottle = self.doc.createNode("bottle", "paintlayer")
        self.doc.rootNode().addChildNode(bottle, self.doc.rootNode().childNodes()[-1])
        data = bytearray(512 * 384 * 4)
        for y in range(110, 330):
            for x in range(206, 306):
                # An ellipse with a soft (anti-aliased) outline and a label band.
                r = (((x + 0.5 - 256) / 50.0) ** 2 + ((y + 0.5 - 220) / 110.0) ** 2) ** 0.5
                a = max(0.0, min(1.0, (1.0 - r) * 50 + 0.5))
                if a > 0:
                    label = 190 <= y < 240
                    colour = (245, 245, 240) if label else (40, 40, 190)
                    i = (y * 512 + x) * 4
                    data[i:i + 4] = bytes(colour + (int(round(a * 255)),))
        bottle.setPixelData(bytes(data), 0, 0, 512, 384)
        self.bottle_pixels = bytes(data)
        self.bottle = bottle
        self.doc.setActiveNode(bottle)
        self.doc.refreshProjection()
        # The window's layer box takes the new active layer on its next events.
        self.later(500, self.start_product_shot)

    def start_product_shot(self):
        d = self.docker
        if self.doc.activeNode() is None or self.doc.activeNode().name() != "bottle":
            self.doc.setActiveNode(self.bottle)
            if time.monotonic() - self.window_t0 > DEADLINE_S:
                self.fail("the 'bottle' layer never became the active layer")
                return
            self.later(200, self.start_product_shot)
            return
        d.generate_tab.gen_mode.setCurrentText("product shot")
        d.generate_tab.gen_prompt.setPlainText("a red bottle on a marble counter, morning light")
        d.generate_tab.gen_count.setValue(1)
        d.generate_tab.update_size_note()
        self.result["shot_size_note"] = d.generate_tab.gen_size.text()
        if "512x384 scene around the layer 'bottle'" not in d.generate_tab.gen_size.text():
            self.fail("the product shot size note: %r" % d.generate_tab.gen_size.text())
            return
        self.shots_before = len(self.finished)
        d.generate_tab.gen_start.click()   # now labelled "Make product shot"
        if d.controller.generation is None:
            self.fail("Make product shot did not start a job; status: %s" % d.status.text())
            return
        self.step("product shot: %s" % d.status.text())
        self.wait_for_shot()

    def wait_for_shot(self):
        d = self.docker
        if time.monotonic() - self.window_t0 > DEADLINE_S:
            self.fail("the product shot did not finish in time; status: %s" % d.status.text())
            return
        if len(self.finished) == self.shots_before:
            self.later(100, self.wait_for_shot)
            return
        node, record = self.finished[-1]
        if node is None:
            self.fail("the product shot ended %s without a layer (status: %s)" % (record.get("state"), d.status.text()))
            return
        names = [n.name() for n in self.doc.rootNode().childNodes()]
        self.result["shot_layers"] = names
        if names.index(node.name()) != names.index("bottle") - 1:
            self.fail("the scene layer %r is not just below 'bottle': %s" % (node.name(), names))
            return
        if bytes(self.bottle.pixelData(0, 0, 512, 384)) != self.bottle_pixels:
            self.fail("the product layer was modified")
            return
        self.result["shot_placement"] = record["result"]["placement"]
        self.step("scene layer %s below the product" % node.name())
        self.later(500, self.shot_screenshot)

    def shot_screenshot(self):
        QApplication.processEvents()
        window = Krita.instance().activeWindow().qwindow()
        shot = window.grab()
        shot.save(os.path.join(OUT, "product_shot.png"))
        if SHOTS:
            shot.save(os.path.join(SHOTS, "krita-product-shot.png"))
        self.step("product shot screenshot saved")
        self.later(200, self.make_dataset)

    # -- the training panels ---------------------------------------------------------------------

    def docker_shot(self, name, widget=None):
        """The docker, scrolled so `widget` shows, saved as OUT/name (and the README's copy)."""
        d = self.docker
        if widget is not None:
            area = widget.parent()
            while area is not None and not hasattr(area, "ensureWidgetVisible"):
                area = area.parent()
            if area is not None:
                area.ensureWidgetVisible(widget, 0, 0)
        QApplication.processEvents()
        shot = d.grab()
        shot.save(os.path.join(OUT, name))
        if SHOTS:
            shot.save(os.path.join(SHOTS, "krita-" + name))
        self.result.setdefault("screenshots", []).append(name)
        self.step("screenshot %s (%dx%d)" % (name, shot.width(), shot.height()))

    def make_dataset(self):
        """Three product layers in a group, the group selected, the docker's 'Add selected layers'."""
        doc = self.doc
        group = doc.createGroupLayer("products")
        doc.rootNode().addChildNode(group, doc.rootNode().childNodes()[-1])
        colours = [(30, 30, 220, 255), (40, 200, 40, 255), (210, 60, 20, 255)]
        for i, colour in enumerate(colours):
            layer = doc.createNode("product %d" % (i + 1), "paintlayer")
            group.addChildNode(layer, group.childNodes()[-1] if group.childNodes() else None)
            size, r = 96, 30 + 6 * i
            data = bytearray(size * size * 4)
            for y in range(size):
                for x in range(size):
                    if (x - 48) ** 2 + (y - 48) ** 2 <= r * r:
                        data[(y * size + x) * 4:(y * size + x) * 4 + 4] = bytes(colour)
            layer.setPixelData(bytes(data), 40 + 140 * i, 60, size, size)
        doc.setActiveNode(group)
        doc.refreshProjection()
        self.group = group
        self.later(500, self.add_layers)

    def add_layers(self):
        from kiln_krita import canvas
        d = self.docker
        ds = d.dataset_tab
        names = [n.name() for n in canvas.selected_nodes()]
        if names != ["products"]:
            self.doc.setActiveNode(self.group)
            if time.monotonic() - self.window_t0 > DEADLINE_S:
                self.fail("the 'products' group never became the selected layer: %s" % names)
                return
            self.later(200, self.add_layers)
            return
        d.tabs.setCurrentIndex(0)
        ds.ds_name.setEditText("gui-products")
        ds.ds_trigger.setText("sks_disc")
        ds.ds_preset.setCurrentText("product")
        ds.ds_add.click()
        if d.controller.dataset_import is None:
            self.fail("Add selected layers did not start an import; status: %s" % d.status.text())
            return
        self.step("adding layers: %s" % d.status.text())
        self.wait_for_gallery()

    def wait_for_gallery(self):
        d = self.docker
        ds = d.dataset_tab
        if time.monotonic() - self.window_t0 > DEADLINE_S:
            self.fail("the gallery never showed 3 thumbnails; status: %s" % d.status.text())
            return
        shown = ds.dataset is not None and ds.dataset.get("name") == "gui-products"
        thumbs = [k for k in ds.thumbs if k[0] == "gui-products"]
        if not shown or ds.ds_gallery.count() != 3 or len(thumbs) != 3:
            self.later(100, self.wait_for_gallery)
            return
        tips = [ds.ds_gallery.item(i).toolTip() for i in range(3)]
        self.result["gallery_tooltips"] = tips
        flagged = [image for image in ds.dataset["images"] if image.get("findings")]
        for image in flagged:
            tip = next(t for t in tips if t.startswith(image["id"]))
            if image["findings"][0]["action"] not in tip:
                self.fail("the tooltip of %s does not say what to do: %s" % (image["id"], tip))
                return
        self.result["gallery_findings"] = len(flagged)
        ds.ds_gallery.item(0).setSelected(True)
        if not ds.ds_caption.toPlainText().startswith("sks_disc"):
            self.fail("the selected image's caption is not shown: %r" % ds.ds_caption.toPlainText())
            return
        d.controller.tag_stats("gui-products")
        self.step("gallery: 3 thumbnails, %d with findings" % len(flagged))
        self.later(300, lambda: (self.docker_shot("dataset.png", ds.ds_gallery), self.later(100, self.start_training)))

    def start_training(self):
        d = self.docker
        tr = d.train_tab
        d.tabs.setCurrentIndex(1)
        tr.tr_model.setCurrentText("tiny")
        tr.tr_dataset.setEditText("gui-products")
        tr.tr_name.setText("gui-lora")
        tr.tr_preset.setCurrentText("product")
        tr.plan_reset = True
        tr.refresh_plan()   # what the plan timer does a moment after these changes
        if tr.tr_params["network_dim"].value() <= 0 or not tr.plan_baseline:
            self.fail("the Advanced section was not filled from the plan: %s / %s"
                      % (tr.tr_plan.text(), tr.tr_warnings.text()))
            return
        self.result["preset_values"] = dict(tr.plan_baseline)
        tr.tr_advanced.set_expanded(True)
        p = tr.tr_params
        p["resolution"].setValue(64)
        p["max_train_epochs"].setValue(2)
        p["num_repeats"].setValue(2)
        p["train_batch_size"].setValue(1)
        p["network_dim"].setValue(8)
        p["network_alpha"].setText("4")
        p["learning_rate"].setText("2e-3")
        p["text_encoder_lr"].setText("1e-3")
        p["sample_every_n_epochs"].setValue(1)
        p["sample_prompts"].setPlainText("sks_disc, a product --w 64 --h 64 --d 7 --s 3")
        tr.tr_other.setPlainText("min_bucket_reso=64\nmax_bucket_reso=128\nseed=42")
        tr.plan_timer.stop()
        tr.refresh_plan()
        self.result["plan"] = tr.tr_plan.text()
        self.result["plan_warnings"] = tr.tr_warnings.text()
        if "12 steps: 3 images x 2 repeats x 2 epochs" not in tr.tr_plan.text() or "1,500" not in tr.tr_warnings.text():
            self.fail("the estimate and warnings: %r / %r" % (tr.tr_plan.text(), tr.tr_warnings.text()))
            return
        d.controller.history_interval = 0.2
        self.trained = []
        d.controller.trainingFinished.connect(self.trained.append)
        tr.tr_start.click()
        if d.controller.training is None:
            self.fail("Train did not start a job; status: %s" % d.status.text())
            return
        self.step("training: %s" % tr.tr_plan.text().replace("\n", "; "))
        tr.tr_advanced.set_expanded(False)
        self.live_shot = False
        self.wait_for_live()

    def wait_for_live(self):
        d = self.docker
        tr = d.train_tab
        if time.monotonic() - self.window_t0 > DEADLINE_S:
            self.fail("the training did not finish in time; status: %s" % d.status.text())
            return
        live = d.controller.shown_training.live
        if not self.live_shot and len(live.loss) >= 3 and tr.tr_samples.count() >= 1:
            self.live_shot = True
            self.result["live_at_screenshot"] = {"state": live.state, "points": len(live.loss),
                                                 "samples": tr.tr_samples.count(), "progress": tr.tr_progress.text()}
            self.docker_shot("training.png", tr.tr_samples)
        if not self.trained:
            self.later(100, self.wait_for_live)
            return
        if self.trained[-1].get("state") != "done":
            self.fail("the training ended %s: %s" % (self.trained[-1].get("state"), d.status.text()))
            return
        self.result["loss_points"] = len(live.loss)
        self.result["curve_points"] = len(tr.tr_curve.curves().raw) if tr.tr_curve.curves() else 0
        if self.result["curve_points"] != 12:
            self.fail("the loss curve holds %d points, not 12" % self.result["curve_points"])
            return
        self.later(300, self.choose_epoch)

    def choose_epoch(self):
        d = self.docker
        tr, gen = d.train_tab, d.generate_tab
        if tr.tr_epochs.count() != 2:
            if time.monotonic() - self.window_t0 > DEADLINE_S:
                self.fail("the epoch list has %d rows" % tr.tr_epochs.count())
                return
            self.later(100, self.choose_epoch)
            return
        self.result["epochs"] = [tr.tr_epochs.item(i).text() for i in range(2)]
        tr.tr_epochs.setCurrentRow(0)
        tr.tr_use.click()
        if gen.gen_lora.currentText() != "gui-lora" or "epoch 1" not in tr.tr_epochs.item(0).text() \
                or "in use" not in tr.tr_epochs.item(0).text():
            self.fail("Use this epoch: picker %r, rows %s, status %s" % (
                gen.gen_lora.currentText(), [tr.tr_epochs.item(i).text() for i in range(2)], d.status.text()))
            return
        self.result["after_use"] = [tr.tr_epochs.item(i).text() for i in range(2)]
        self.step("epoch 1 in use: %s" % d.status.text())
        self.docker_shot("epochs.png", tr.tr_grid)
        self.grids = []
        d.controller.gridOpened.connect(lambda doc, path: self.grids.append(path))
        d.controller.grid_options = {"steps": 3, "sampler": "Euler"}
        tr.tr_grid_strengths.setText("0.5, 1")
        tr.tr_grid.click()
        self.wait_for_grid()

    def wait_for_grid(self):
        if time.monotonic() - self.window_t0 > DEADLINE_S:
            self.fail("the validation grid did not open; status: %s" % self.docker.status.text())
            return
        if not self.grids:
            self.later(100, self.wait_for_grid)
            return
        self.result["grid"] = self.grids[-1]
        self.step("validation grid opened: %s" % self.grids[-1])
        self.finish()

    def finish(self):
        self.result["seconds"] = round(time.monotonic() - self.t0, 1)
        with open(os.path.join(OUT, "result.json"), "w") as f:
            json.dump(self.result, f, indent=1)
        for doc in Krita.instance().documents():
            doc.setModified(False)   # no "save changes?" dialog on the way out
        try:
            if self.docker is not None and self.docker.controller is not None:
                self.docker.controller.conn.close()
        except Exception:  # noqa: BLE001
            pass
        QTimer.singleShot(100, QApplication.quit)
        QTimer.singleShot(15000, lambda: os._exit(0))  # Krita may not quit from a plugin's timer


class ProbeExtension(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.probe = Probe()

    def setup(self):
        Krita.instance().notifier().windowCreated.connect(lambda: self.probe.later(1500, self.probe.start))

    def createActions(self, window):
        pass


Krita.instance().addExtension(ProbeExtension(Krita.instance()))
