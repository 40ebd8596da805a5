"""Kiln's GUI test probe: a second Python plugin installed only into the test's Krita profile
(see tests/hosts/krita/run_krita_test.py gui).

Once Krita's main window is up it opens a document, shows the Kiln docker, clicks its Connect and
Generate buttons (the same slots a user's clicks run), waits for the layer, saves screenshots of
the docker and the window to $KILN_TEST_OUT; then draws a product cut-out on a layer of its own,
switches to the "product shot" mode, clicks again, waits for the scene layer below the product and
saves a screenshot of that; writes result.json there, then quits Krita.
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
DEADLINE_S = float(os.environ.get("KILN_TEST_GUI_DEADLINE", "150"))


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
        models = [d.gen_model.itemText(i) for i in range(d.gen_model.count())]
        self.result["models"] = models
        self.result["daemon_label"] = d.daemon_label.text()
        self.step("connected: %s; models %s" % (d.daemon_label.text(), models))
        if "tiny" not in models:
            self.fail("the model picker does not list kilnd's model 'tiny': %s" % models)
            return
        d.gen_model.setCurrentText("tiny")
        d.gen_prompt.setPlainText("a red speaker on a wooden table, studio light")
        d.gen_negative.setPlainText("blurry, low quality")
        d.gen_seed.setValue(1234)
        d.gen_steps.setValue(4)
        d.gen_sampler.setCurrentText("Euler")
        d.tabs.setCurrentIndex(2)
        sel = Selection()
        sel.select(200, 150, 93, 61, 255)  # rounded to 96x64: seconds on a CPU
        self.doc.setSelection(sel)
        d._update_size_note()
        self.result["size_note"] = d.gen_size.text()
        if "96x64 from the selection (93x61, rounded to multiples of 8)" not in d.gen_size.text():
            self.fail("the size note: %r" % d.gen_size.text())
            return
        self.finished = []
        d.controller.generationFinished.connect(lambda node, record: self.finished.append((node, record)))
        d.gen_start.click()   # the Generate button's own slot
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
        d.gen_mode.setCurrentText("product shot")
        d.gen_prompt.setPlainText("a red bottle on a marble counter, morning light")
        d.gen_count.setValue(1)
        d._update_size_note()
        self.result["shot_size_note"] = d.gen_size.text()
        if "512x384 scene around the layer 'bottle'" not in d.gen_size.text():
            self.fail("the product shot size note: %r" % d.gen_size.text())
            return
        self.shots_before = len(self.finished)
        d.gen_start.click()   # now labelled "Make product shot"
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
