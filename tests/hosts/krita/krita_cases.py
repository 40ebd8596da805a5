"""Test cases run inside a real Krita by kritarunner (see run_krita_test.py, which starts kilnd,
installs the plugin zip into a fresh Krita profile and checks what this writes to
$KILN_TEST_OUT/result.json).

Each case drives kiln_krita.controller.Controller — the methods the docker's buttons call — on
real Krita documents, pumping Qt events while kilnd works, and asserts on the layers it makes
and on kilnd's own output for the same request.
"""

import json
import os
import sys
import time
import traceback

from krita import Krita, Selection
from PyQt5.QtCore import QCoreApplication, QEventLoop
from PyQt5.QtGui import QImage

OUT = os.environ.get("KILN_TEST_OUT", "/tmp")
MODEL = os.environ.get("KILN_TEST_MODEL", "tiny")
# A training on the tiny reference model that takes seconds: the values changed in the docker's
# Advanced section (kiln.training.PARAMETERS), and its "Other" kohya options.
TINY_ADVANCED = {"resolution": 64, "max_train_epochs": 2, "num_repeats": 2, "network_dim": 8, "network_alpha": 4,
                 "train_batch_size": 1, "learning_rate": 2e-3, "text_encoder_lr": 1e-3, "sample_every_n_epochs": 1,
                 "sample_prompts": "sks_disc, a product --w 64 --h 64 --d 7 --s 3"}
TINY_OTHER = ["min_bucket_reso=64", "max_bucket_reso=128", "seed=42"]


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def check_equal(a, b, message):
    if a != b:
        raise Failure("%s: %r != %r" % (message, a, b))


def pump_until(predicate, timeout=120.0, what="the condition"):
    """Runs Qt's event loop (the plugin's QTimer pumps kilnd's events) until predicate() holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents(QEventLoop.AllEvents, 50)
        if predicate():
            return
        time.sleep(0.01)
    raise Failure("timed out after %.0f s waiting for %s" % (timeout, what))


# -- documents ------------------------------------------------------------------------------

def fill(node, rect, bgra):
    x, y, w, h = rect
    node.setPixelData(bytes(bgra) * (w * h), x, y, w, h)


def disc(node, cx, cy, r, bgra, size):
    """A filled disc with a transparent surround, as product cut-outs are."""
    w, h = size
    data = bytearray(w * h * 4)
    for y in range(h):
        for x in range(w):
            if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
                data[(y * w + x) * 4:(y * w + x) * 4 + 4] = bytes(bgra)
    node.setPixelData(bytes(data), 0, 0, w, h)


def make_document(width=96, height=80, name="kiln-test"):
    """Background, a 'sketch' layer with a shape, a 'products' group with three product layers."""
    app = Krita.instance()
    doc = app.createDocument(width, height, name, "RGBA", "U8", "", 72.0)
    root = doc.rootNode()
    bg = doc.createNode("background", "paintlayer")
    root.addChildNode(bg, None)
    fill(bg, (0, 0, width, height), (230, 240, 250, 255))
    sketch = doc.createNode("sketch", "paintlayer")
    root.addChildNode(sketch, bg)
    disc(sketch, width // 2, height // 2, min(width, height) // 3, (40, 60, 200, 255), (width, height))
    group = doc.createGroupLayer("products")
    root.addChildNode(group, sketch)
    colours = [(30, 30, 220, 255), (40, 200, 40, 255), (210, 60, 20, 255)]
    for i, colour in enumerate(colours):
        layer = doc.createNode("product %d" % (i + 1), "paintlayer")
        group.addChildNode(layer, group.childNodes()[-1] if group.childNodes() else None)
        disc(layer, 20 + 25 * i, 30 + 8 * i, 12 + 3 * i, colour, (width, height))
    hidden = doc.createNode("hidden product", "paintlayer")
    group.addChildNode(hidden, group.childNodes()[-1])
    disc(hidden, 40, 40, 10, (0, 0, 0, 255), (width, height))
    hidden.setVisible(False)
    doc.setActiveNode(sketch)
    doc.refreshProjection()
    doc.waitForDone()
    return doc


def select_rect(doc, x, y, w, h):
    s = Selection()
    s.select(x, y, w, h, 255)
    doc.setSelection(s)


def child_index(node):
    return [c.uniqueId() for c in node.parentNode().childNodes()].index(node.uniqueId())


def read_png_bgra(path):
    img = QImage(path)
    check(not img.isNull(), "kilnd's PNG %s could not be read" % path)
    img = img.convertToFormat(QImage.Format_ARGB32)  # BGRA bytes on little-endian machines
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    data = bytes(ptr)
    row = img.width() * 4
    if img.bytesPerLine() != row:
        data = b"".join(data[y * img.bytesPerLine():y * img.bytesPerLine() + row] for y in range(img.height()))
    return img.width(), img.height(), data


def distinct_pixels(bgra):
    return len({bgra[i:i + 4] for i in range(0, len(bgra), 4)})


# -- the plugin ------------------------------------------------------------------------------

def controller():
    from kiln_krita import controller as ctl
    from kiln_krita.backend import kiln
    c = ctl.Controller(ctl.connection())
    events = {"finished": [], "errors": [], "status": [], "datasets": [], "trained": [], "grids": [], "previews": 0}
    c.generationFinished.connect(lambda node, record: events["finished"].append((node, record)))
    c.error.connect(events["errors"].append)
    c.status.connect(events["status"].append)
    c.datasetShown.connect(lambda ds, imp: events["datasets"].append(ds))
    c.trainingFinished.connect(events["trained"].append)
    c.gridOpened.connect(lambda doc, path: events["grids"].append((doc, path)))

    def count_preview(_image):
        events["previews"] += 1

    c.preview.connect(count_preview)
    return c, events, kiln


def generate_and_wait(c, events, doc, settings, node=None, source="layer"):
    t0 = time.monotonic()
    before = len(events["finished"])
    job_id = c.generate(doc, settings, node, source)
    pump_until(lambda: len(events["finished"]) > before, 120, "the generation to finish")
    layer, record = events["finished"][-1]
    check(not events["errors"], "errors: %s" % events["errors"])
    check_equal(record.get("id"), job_id, "the finished job")
    check_equal(record.get("state"), "done", "job state (%s)" % (record.get("error"),))
    check(layer is not None, "no layer was inserted")
    print("  %s %dx%d in %.1f s" % (settings.mode, record["params"]["width"], record["params"]["height"],
                                    time.monotonic() - t0), flush=True)
    return layer, record


def daemon_generate(c, params):
    """The same request sent by a plain client: kilnd's own output, as BGRA bytes."""
    session = c.conn.session
    record = session.call("generate", params)
    final = session.wait(record["id"], timeout=120)
    check_equal(final["state"], "done", "reference job")
    img = session.read_image(final["result"]["images"][0]["image"])
    return img.tobytes("BGRA"), final


# -- cases ----------------------------------------------------------------------------------

def case_generate():
    """txt2img into a layer at the canvas and at a rounded selection, then img2img from a layer."""
    from kiln_krita.backend import requests
    c, events, kiln = controller()
    check(MODEL in c.refresh_models(), "the model '%s' is registered in kilnd" % MODEL)
    doc = make_document()
    sketch = doc.nodeByName("sketch")
    top_before = [n.name() for n in doc.rootNode().childNodes()]

    settings = requests.GenerateSettings(model=MODEL, prompt="a red speaker on a wooden table", negative="blurry",
                                         seed=1234, steps=4, sampler="Euler", cfg=7.0, preview_every=1)
    layer, record = generate_and_wait(c, events, doc, settings, node=sketch)
    # Placed just above the layer it was made from, in the same group.
    check_equal(layer.parentNode().uniqueId(), sketch.parentNode().uniqueId(), "parent of the new layer")
    check_equal(child_index(layer), child_index(sketch) + 1, "the new layer's position (just above 'sketch')")
    check_equal(len(doc.rootNode().childNodes()), len(top_before) + 1, "one layer added")
    check(layer.name().startswith("Kiln txt2img: a red speaker"), "layer name %r" % layer.name())
    check("1234" in layer.name(), "the seed is in the layer name")
    b = layer.bounds()
    check_equal((b.x(), b.y(), b.width(), b.height()), (0, 0, 96, 80), "the layer covers the canvas")
    got = bytes(layer.pixelData(0, 0, 96, 80))
    check(distinct_pixels(got) > 50, "the layer holds an image, not a flat colour")
    check(all(got[i] == 255 for i in range(3, len(got), 4)), "a txt2img layer is opaque")
    params = record["params"]
    check_equal((params["width"], params["height"], params["seed"], params["steps"]), (96, 80, 1234, 4), "request")
    # Equal to kilnd's own output for the same request: its PNG, and a second run by a plain client.
    w, h, png = read_png_bgra(record["result"]["images"][0]["png"])
    check_equal((w, h), (96, 80), "PNG size")
    check(png == got, "the layer's pixels equal kilnd's PNG for this job")
    again, _ = daemon_generate(c, {k: v for k, v in params.items() if k not in ("preview_every",)})
    check(again == got, "the layer's pixels equal kilnd's output for the same request and seed")
    check(events["previews"] > 0, "previews were shown while it rendered")

    # A 37x29 selection: rounded to 40x32 around it, the layer placed there.
    select_rect(doc, 30, 21, 37, 29)
    from kiln_krita import canvas
    region = canvas.generation_region(doc, "txt2img")
    check_equal(region.rect, (29, 20, 40, 32), "rounded region (centred on the selection)")
    check("37x29 rounded to 40x32" in region.note, "the rounding note: %r" % region.note)
    settings.seed = 77
    sel_layer, sel_record = generate_and_wait(c, events, doc, settings, node=doc.nodeByName("background"))
    b = sel_layer.bounds()
    check_equal((b.x(), b.y(), b.width(), b.height()), (29, 20, 40, 32), "the layer sits on the rounded selection")
    check_equal(child_index(sel_layer), child_index(doc.nodeByName("background")) + 1, "above 'background'")
    check(any("rounded to 40x32" in s for s in events["status"]), "the note reached the status line")
    w, h, png = read_png_bgra(sel_record["result"]["images"][0]["png"])
    check(png == bytes(sel_layer.pixelData(29, 20, 40, 32)), "selection layer equals kilnd's PNG")

    # img2img from the 'sketch' layer inside the same selection.
    settings.mode, settings.strength, settings.seed = "img2img", 0.6, 99
    i2i_layer, i2i_record = generate_and_wait(c, events, doc, settings, node=sketch)
    p = i2i_record["params"]
    check_equal((p["init_image"]["width"], p["init_image"]["height"], p["strength"]), (40, 32, 0.6), "img2img request")
    b = i2i_layer.bounds()
    check_equal((b.x(), b.y(), b.width(), b.height()), (29, 20, 40, 32), "img2img layer placement")
    i2i = bytes(i2i_layer.pixelData(29, 20, 40, 32))
    w, h, png = read_png_bgra(i2i_record["result"]["images"][0]["png"])
    check(png == i2i, "img2img layer equals kilnd's PNG")
    # Same seed and prompt from another source gives another picture: the source mattered.
    bg_layer, _ = generate_and_wait(c, events, doc, settings, node=doc.nodeByName("background"))
    check(bytes(bg_layer.pixelData(29, 20, 40, 32)) != i2i, "img2img depends on the source layer")

    # Inpainting: only the selection changes (outside it the new layer is transparent).
    settings.mode, settings.seed = "inpaint", 5
    s = Selection()
    s.select(40, 30, 16, 16, 255)
    doc.setSelection(s)
    inp_layer, inp_record = generate_and_wait(c, events, doc, settings, node=sketch)
    region = canvas.generation_region(doc, "inpaint")
    x, y, w, h = region.rect
    data = bytes(inp_layer.pixelData(x, y, w, h))
    inside = data[((40 - y) * w + (40 - x)) * 4 + 3]
    outside = data[3]
    check_equal((inside, outside), (255, 0), "inpaint layer alpha inside / outside the selection")
    check("mask" in inp_record["params"], "the selection was sent as the mask")

    # Cancel: the job ends cancelled and no layer is added.
    doc.setSelection(None) if hasattr(doc, "setSelection") else None
    settings.mode, settings.steps = "txt2img", 200
    count = len(doc.rootNode().childNodes())
    c.generate(doc, settings, sketch)
    c.cancel_generation()
    pump_until(lambda: c.generation is None, 60, "the cancelled job to end")
    node, record = events["finished"][-1]
    check(node is None and record["state"] == "cancelled", "cancelled generation: %s" % record.get("state"))
    check_equal(len(doc.rootNode().childNodes()), count, "no layer for a cancelled job")
    return {"layers": [n.name() for n in doc.rootNode().childNodes()]}


def case_colour_models():
    """A 16-bit document is refused with a clear message, and works once converted."""
    from kiln_krita import canvas
    from kiln_krita.backend import requests
    c, events, kiln = controller()
    doc = Krita.instance().createDocument(64, 64, "deep", "RGBA", "U16", "", 72.0)
    layer = doc.createNode("paint", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    settings = requests.GenerateSettings(model=MODEL, prompt="a cube", seed=3, steps=2, sampler="Euler")
    try:
        c.generate(doc, settings, layer)
        raise Failure("a 16-bit document was accepted")
    except canvas.UnsupportedDocument as e:
        check("8-bit" in str(e) and "16-bit" in str(e), "message: %s" % e)
    gray = Krita.instance().createDocument(64, 64, "grey", "GRAYA", "U8", "", 72.0)
    try:
        canvas.check_document(gray)
        raise Failure("a greyscale document was accepted")
    except canvas.UnsupportedDocument as e:
        check("GRAYA" in str(e), "message names the colour model: %s" % e)
    canvas.convert_to_srgb8(doc)
    check_equal((doc.colorModel(), doc.colorDepth()), ("RGBA", "U8"), "converted")
    node, record = generate_and_wait(c, events, doc, settings, layer)
    check_equal(node.bounds().width(), 64, "generated after conversion")
    return {}


def products_dataset(c, events, doc, name, repeats=4):
    """The 'products' group's visible layers as the dataset `name` (product preset, trigger
    sks_disc, the smallest dataset resolution; the tiny model trains at 64 below)."""
    from kiln_krita.backend import requests
    shown = len(events["datasets"])
    c.add_layers_to_dataset(doc, [doc.nodeByName("products")], requests.DatasetSettings(
        name=name, trigger="sks_disc", preset="product", background="white", resolution=256, repeats=repeats))
    pump_until(lambda: len(events["datasets"]) > shown or events["errors"], 120, "the dataset '%s'" % name)
    check(not events["errors"], "errors: %s" % events["errors"])
    return events["datasets"][-1]


def rgb_at(image, x, y):
    colour = image.pixelColor(x, y)
    return colour.red(), colour.green(), colour.blue()


def near(a, b, tolerance=40):
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def case_dataset_and_train():
    """The visible layers of a group become a dataset shown with thumbnails and findings; a training
    with changed Advanced values, followed live (loss and samples while it runs), ends on its epochs:
    one is chosen with "use this epoch" and the validation grid opens."""
    from kiln_krita import canvas
    from kiln_krita.backend import findings, requests, training
    c, events, kiln = controller()
    if not c.conn.has_method("datasets.add_images"):
        return {"skipped": "this kilnd has no datasets.add_images"}
    doc = make_document()
    group = doc.nodeByName("products")
    layers = canvas.dataset_layers([group])
    check_equal([n.name() for n in layers], ["product 3", "product 2", "product 1"], "visible children, top first")
    exported = canvas.export_layer(layers[0])
    check_equal(exported[1], (70 - 18, 46 - 18, 37, 37), "trimmed to the layer's pixels")
    dataset = products_dataset(c, events, doc, "krita-products")
    names = sorted(i.get("source_name") for i in dataset.get("images", []))
    check_equal(names, ["product 1", "product 2", "product 3"], "dataset images by source name")
    for image in dataset["images"]:
        check(isinstance(image.get("findings"), list), "quality findings per image")
        tip = findings.tooltip(image)
        for f in image["findings"]:
            check(f.get("message") and f.get("action"), "each finding gives its reason and what to do: %s" % f)
            check(f["message"] in tip and f["action"] in tip, "the gallery's tooltip says it: %s" % tip)
    check(dataset.get("findings"), "the dataset's own findings (few images) for the top of the gallery")
    result = {"dataset": dataset}

    # The gallery's thumbnails: each layer's disc (Krita's BGRA colours, read back as RGB) centred
    # on the product preset's white.
    thumbs = c.load_thumbnails("krita-products", size=64)
    by_source = {i["source_name"]: i["id"] for i in dataset["images"]}
    check_equal(sorted(thumbs), sorted(by_source.values()), "a thumbnail per image")
    for layer, rgb in (("product 1", (220, 30, 30)), ("product 2", (40, 200, 40)), ("product 3", (20, 60, 210))):
        img = thumbs[by_source[layer]]
        check(not img.isNull() and max(img.width(), img.height()) == 64, "thumbnail size %dx%d" % (img.width(), img.height()))
        check(near(rgb_at(img, img.width() // 2, img.height() // 2), rgb), "the thumbnail of '%s' shows its disc: %s"
              % (layer, rgb_at(img, img.width() // 2, img.height() // 2)))
        check(near(rgb_at(img, 1, 1), (255, 255, 255), 8), "on white: %s" % (rgb_at(img, 1, 1),))
    if not c.conn.has_method("train"):
        result["train"] = "skipped: this kilnd has no train method"
        return result

    # The Advanced section: pre-filled from the plan of the preset and the dataset, some changed.
    base = requests.TrainSettings(base_model=MODEL, dataset="krita-products", name="krita-lora", preset="product")
    plan = c.plan_training(base)
    baseline = training.values_from_plan(plan)
    check_equal(baseline["num_repeats"], 4, "the dataset's repeats pre-filled")
    check_equal(plan["origins"].get("network_dim"), "preset product", "the rank comes from the preset")
    overrides = training.changed_values(dict(baseline, **TINY_ADVANCED), baseline)
    overrides.update(json.loads(os.environ.get("KILN_TEST_TRAIN_CONFIG", "{}")))
    settings = requests.TrainSettings(base_model=MODEL, dataset="krita-products", name="krita-lora", preset="product",
                                      overrides=overrides, set=TINY_OTHER)
    plan = c.plan_training(settings)
    check_equal(plan["steps"], 12, "the estimate: 3 images x 2 repeats x 2 epochs")
    check(any("1,500" in w for w in training.plan_warnings(plan)), "the preset's warnings before training: %s"
          % plan["warnings"])
    check(training.plan_summary(plan)[0].startswith("12 steps: 3 images x 2 repeats x 2 epochs"), "%s"
          % training.plan_summary(plan))

    updates = []
    c.liveUpdated.connect(lambda live, added, new_samples, new_files: updates.append(
        (live.state, added, len(live.samples), len(live.loss))))
    epochs_shown, used = [], []
    c.epochsReady.connect(lambda rows, lora: epochs_shown.append((rows, lora)))
    c.loraUsed.connect(lambda name, epoch: used.append((name, epoch)))
    c.history_interval = 0.1
    previews_before = events["previews"]
    t0 = time.monotonic()
    job_id = c.train(settings, "sks_disc")
    pump_until(lambda: events["trained"] or events["errors"], 300, "the training")
    check(not events["errors"], "errors: %s" % events["errors"])
    record = events["trained"][-1]
    check_equal(record.get("id"), job_id, "the finished training job")
    check_equal(record.get("state"), "done", "training job (%s)" % record.get("error"))
    check_equal(record["result"].get("steps"), 12, "kohya's step count: 3 images x 2 repeats x 2 epochs")
    print("  training: 12 steps in %.1f s" % (time.monotonic() - t0), flush=True)
    # The run's config.json holds the Advanced values.
    with open(record["result"]["config"]) as f:
        config = json.load(f)
    for key, want in (("network_dim", 8), ("network_alpha", 4.0), ("max_train_epochs", 2), ("num_repeats", 2),
                      ("resolution", "64,64"), ("sample_every_n_epochs", 1), ("learning_rate", 2e-3)):
        check_equal(config.get(key), want, "config.json %s" % key)
    # The live view was fed while it ran: loss points in several steps, epoch 1's sample before the end.
    running = [u for u in updates if u[0] == "running" and u[1] > 0]
    check(len(running) >= 2, "the loss curve grew while training ran: %s" % updates)
    check(any(u[0] == "running" and u[2] >= 1 for u in updates), "a sample arrived while training ran: %s" % updates)
    live = c.shown_training.live
    check_equal([p.step for p in live.loss.points], list(range(1, 13)), "every step's loss")
    check(training.plot_curves(live.loss, 200, 100, 12) is not None, "the curve has points to draw")
    check_equal([e for e, _ in live.samples_by_epoch()], [1, 2], "a sample per epoch")
    check(events["previews"] > previews_before, "the training sample was shown")
    check(any("epoch" in s and "loss" in s for s in events["status"]), "progress showed epoch and loss: %s"
          % events["status"][-3:])
    result["train"] = record
    check("krita-lora" in c.refresh_loras(), "the new LoRA is in kilnd's library (the LoRA picker)")

    # Choosing the result: the epochs with their samples; "use this epoch" on the first.
    pump_until(lambda: epochs_shown, 30, "the epoch list")
    rows, _ = epochs_shown[-1]
    check_equal([(r.epoch, r.final, r.in_use, len(r.samples)) for r in rows], [(1, False, False, 1), (2, True, True, 1)],
                "epochs (number, final file, in use, samples)")
    folder = record["result"]["folder"]
    c.use_epoch("krita-lora", 1)
    check_equal(used, [("krita-lora", 1)], "use this epoch")
    check_equal([(r.epoch, r.in_use) for r in c.last_epochs], [(1, True), (2, False)], "epoch 1 in use")
    with open(os.path.join(folder, "krita-lora.safetensors"), "rb") as a, \
            open(os.path.join(folder, "krita-lora-000001.safetensors"), "rb") as b:
        check(a.read() == b.read(), "<lora:krita-lora:w> now gives epoch 1's file")
    check(os.path.exists(os.path.join(folder, "krita-lora-000002.safetensors")), "the trained final file is kept")
    result["chosen"] = 1

    if c.conn.has_method("lora.grid"):
        c.grid_options = {"steps": 3, "sampler": "Euler"}
        c.request_grid("krita-lora", "sks_disc, a product", "0.5, 1")
        pump_until(lambda: events["grids"] or events["errors"], 120, "the validation grid")
        check(not events["errors"], "errors: %s" % events["errors"])
        grid_doc, path = events["grids"][-1]
        check(grid_doc is not None and grid_doc.width() > 2 * 64 and grid_doc.height() > 2 * 64,
              "the grid (2 epochs x 2 strengths) opened as a document")
        result["grid"] = path
    if c.conn.has_method("datasets.remove_images"):
        # The docker's "Remove selected", on a second dataset of the same layers (krita-products
        # stays whole for the checks after Krita): it comes back without them.
        second = products_dataset(c, events, doc, "krita-removal")
        first = second["images"][0]["id"]
        c.remove_dataset_images("krita-removal", [first])
        check_equal(len(events["datasets"][-1]["images"]), 2, "images left after removing one")
        check(first not in [i["id"] for i in events["datasets"][-1]["images"]], "the removed image is gone")
    return result


def case_captions_and_tags():
    """A caption edited, tags batch-edited and the images auto-tagged with the test tagger (which
    run_krita_test.py installs), each checked in the caption files on disk."""
    from kiln_krita.canvas import UserError
    c, events, kiln = controller()
    if not c.conn.has_method("datasets.thumbnails"):
        return {"skipped": "this kilnd has no training panels' methods"}
    doc = make_document()
    dataset = products_dataset(c, events, doc, "krita-tags", repeats=2)
    folder = dataset["folder"]
    tags_shown = []
    c.tagsChanged.connect(lambda name, rows: tags_shown.append(rows))

    def on_disk():
        out = {}
        for image in events["datasets"][-1]["images"]:
            with open(os.path.join(folder, os.path.splitext(image["stored_file"])[0] + ".txt")) as f:
                out[image["source_name"]] = f.read().strip()
        return out

    first = next(i for i in dataset["images"] if i["source_name"] == "product 1")
    # Double-click in the gallery: the untouched original (the layer's own pixels, with alpha) opens
    # as a new document.
    path = c.original_path("krita-tags", first["id"])
    original = c.open_original("krita-tags", first["id"])
    try:
        on_file = QImage(path)
        check_equal((original.width(), original.height()), (on_file.width(), on_file.height()), "the original's size")
        check(on_file.hasAlphaChannel() and on_file.pixelColor(0, 0).alpha() == 0, "the original keeps its alpha")
        check_equal(os.path.realpath(original.fileName()), os.path.realpath(path), "the document is the original file")
    finally:
        original.close()
    c.set_caption("krita-tags", first["id"], "red disc, sks_disc, studio light, red disc")
    check_equal(on_disk()["product 1"], "sks_disc, red disc, studio light", "the edited caption (trigger first)")
    c.edit_tags("krita-tags", "add", [], "white background")
    check(all(t.endswith("white background") for t in on_disk().values()), "added to every caption: %s" % on_disk())
    c.edit_tags("krita-tags", "replace", ["red disc"], "crimson disc")
    c.edit_tags("krita-tags", "move_to_end", ["studio light"])
    check_equal(on_disk()["product 1"], "sks_disc, crimson disc, white background, studio light", "batch edits on disk")
    check(("white background", 3) in tags_shown[-1], "the tag list counts it in 3 captions: %s" % tags_shown[-1])
    try:
        c.edit_tags("krita-tags", "replace", ["crimson disc", "studio light"], "x")
        raise Failure("replacing two tags at once was accepted")
    except UserError as e:
        check("one tag" in str(e), "plain words: %s" % e)

    c.auto_tag("krita-tags", 0.35)
    pump_until(lambda: c.auto_tag_job is None or events["errors"], 120, "auto-tagging")
    check(not events["errors"], "errors: %s" % events["errors"])
    # The test tagger scores blue_sky by the blue channel's mean and red_dress by the red one's.
    captions = on_disk()
    for source, caption in captions.items():
        tags = [t.strip() for t in caption.split(",")]
        check_equal(tags[0], "sks_disc", "the trigger stays first (%s)" % source)
        check("sensitive" not in tags, "ratings are left out: %s" % caption)
    check("red dress" in captions["product 1"], "the red disc tagged red: %s" % captions["product 1"])
    check("blue sky" in captions["product 3"], "the blue disc tagged blue: %s" % captions["product 3"])
    check(captions["product 1"].startswith("sks_disc, crimson disc, white background, studio light, "),
          "the found tags appended after the edited ones: %s" % captions["product 1"])
    return {"captions": on_disk()}


def case_attach():
    """A training started from the command line, attached to from Krita while it runs: its whole
    history first, then live; paused and resumed from the docker; its epochs at the end."""
    import subprocess
    c, events, kiln = controller()
    cli = os.environ.get("KILN_TEST_KILN_CLI")
    if not cli or not c.conn.has_method("train.history"):
        return {"skipped": "no kiln CLI given, or this kilnd has no train.history"}
    names = [d.get("name") for d in c.conn.call("datasets.list").get("datasets", [])]
    if "krita-products" not in names:
        products_dataset(c, events, make_document(), "krita-products")
    cmd = [cli, "--socket", os.environ["KILN_SOCKET"], "--no-autostart", "train", "--base", MODEL, "--dataset",
           "krita-products", "--name", "cli-lora", "--preset", "product", "--no-wait", "--json"]
    # 3 images x 4 repeats x 2 epochs = 24 steps (a few seconds): time to attach and pause it mid-run.
    for item in TINY_OTHER + ["max_train_epochs=2", "num_repeats=4", "train_batch_size=1", "sample_every_n_epochs=1",
                              "learning_rate=2e-3",
                              "resolution=64", "sample_prompts=sks_disc --w 64 --h 64 --d 7 --s 3"]:
        cmd += ["--set", item]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "kiln train --no-wait: %s %s" % (r.stdout, r.stderr))
    job_id = json.loads(r.stdout)["id"]
    # Attach once it has trained a little: the history must come from the first step.
    pump_until(lambda: len(c.conn.call("train.history", {"id": job_id}).get("loss", [])) >= 2, 120,
               "the CLI's training to start")
    entries = c.list_trainings()
    entry = next((e for e in entries if e.id == job_id), None)
    check(entry is not None and entry.running and entry.lora == "cli-lora" and entry.client.startswith("kiln"),
          "the docker lists the CLI's training: %s" % [e.label for e in entries])
    finished = []
    c.trainingFinished.connect(finished.append)
    epochs_shown = []
    c.epochsReady.connect(lambda rows, lora: epochs_shown.append(rows))
    c.history_interval = 0.1
    live = c.attach_training(job_id)
    check(live.loss.points and live.loss.points[0].step == 1, "the history from its first step")
    c.pause_training()
    pump_until(lambda: c.conn.call("jobs.get", {"id": job_id})["state"] == "paused", 60, "the pause")
    pump_until(lambda: live.state == "paused", 10, "the paused state in the view")
    held = len(live.loss)
    t = time.monotonic() + 0.5
    pump_until(lambda: time.monotonic() > t, 5, "a moment")
    check_equal(len(live.loss), held, "no steps while paused")
    c.resume_training()
    pump_until(lambda: finished or events["errors"], 300, "the attached training to end")
    check(not events["errors"], "errors: %s" % events["errors"])
    check_equal(finished[-1].get("state"), "done", "the CLI's training")
    check_equal([p.step for p in live.loss.points], list(range(1, 25)), "every step's loss, before and after attaching")
    pump_until(lambda: epochs_shown, 30, "the epoch list")
    check_equal([r.epoch for r in epochs_shown[-1]], [1, 2], "its epochs to choose from")
    return {"job": job_id, "points": len(live.loss)}


def case_documents_and_clients():
    """Two documents and a second client at once: a generation started in one document lands in
    it while another document is active, and a plain client's job on the same kilnd runs too."""
    from kiln_krita.backend import kiln, requests
    c, events, _ = controller()
    first = make_document(64, 64, "first")
    second = make_document(80, 64, "second")
    layers_second = [n.name() for n in second.rootNode().childNodes()]
    other = kiln.Client(socket=os.environ["KILN_SOCKET"], name="other-client", autostart=False)
    other.connect()
    try:
        theirs = other.call("generate", {"model": MODEL, "prompt": "a blue cube", "steps": 2, "seed": 5,
                                         "width": 64, "height": 64, "sampler": "Euler", "save": False})
        settings = requests.GenerateSettings(model=MODEL, prompt="a green bottle", seed=11, steps=3, sampler="Euler")
        c.generate(first, settings, first.nodeByName("sketch"))
        Krita.instance().setActiveDocument(second)  # the user switches documents while it renders
        layer, record = generate_and_wait_started(c, events)
        check(layer.parentNode() is not None, "layer attached")
        check_equal([n.name() for n in second.rootNode().childNodes()], layers_second, "the other document is untouched")
        check(any(n.uniqueId() == layer.uniqueId() for n in first.rootNode().childNodes()), "the layer is in its document")
        deadline = time.monotonic() + 60
        while other.call("jobs.get", {"id": theirs["id"]})["state"] not in ("done", "failed", "cancelled"):
            check(time.monotonic() < deadline, "the other client's job finished")
            time.sleep(0.1)
        check_equal(other.call("jobs.get", {"id": theirs["id"]})["state"], "done", "the other client's job")
    finally:
        other.close()
    return {}


def case_remote_files():
    """A kilnd on another machine (TLS on loopback): the validation grid, a training sample and a
    dataset image's original open from downloaded copies, a grid drawn again is downloaded again,
    and Add model refuses a file of this computer with a message saying what to do."""
    from kiln_krita import controller as ctl
    from kiln_krita.canvas import UserError
    data = os.environ["KILN_TEST_DATA_DIR"]
    conn = ctl.Connection(remote=os.environ["KILN_TEST_REMOTE_URL"], token=os.environ["KILN_TEST_REMOTE_TOKEN"])
    c = ctl.Controller(conn)
    docs = []
    try:
        conn.ensure()
        check(conn.session.is_remote, "connected over TLS")
        os.makedirs(os.path.join(data, "outputs"), exist_ok=True)
        grid = os.path.join(data, "outputs", "remote-grid.png")
        for size in ((8, 6), (12, 10)):  # drawn, then drawn again in place (as grid.png is)
            image = QImage(size[0], size[1], QImage.Format_RGB32)
            image.fill(0xFF2060A0)
            check(image.save(grid, "PNG"), "test grid written")
            docs.append(c._open_grid({"png": grid}))
            check_equal((docs[-1].width(), docs[-1].height()), size, "the grid as kilnd last drew it")
            check(c.last_grid_path != grid and not c.last_grid_path.startswith(data), "opened from a downloaded copy")
        sample = c.local_file(grid)
        check(sample and sample != grid and os.path.exists(sample), "a sample's copy on this machine")
        check_equal(c.local_file(os.path.join(data, "models.json")), "", "a file outside the results is not downloaded")
        sets = [d.get("name") for d in conn.call("datasets.list").get("datasets", [])]
        opened_original = "krita-tags" in sets
        if opened_original:  # made by case_captions_and_tags
            first = conn.call("datasets.get", {"name": "krita-tags"})["images"][0]
            path = c.original_path("krita-tags", first["id"])
            check(not path.startswith(data), "the original is a downloaded copy: %s" % path)
            docs.append(c.open_original("krita-tags", first["id"]))
        laptop_model = os.path.join(OUT, "laptop-model.safetensors")
        with open(laptop_model, "wb") as f:
            f.write(b"not really a model")
        try:
            c.add_model(laptop_model)
            check(False, "a model file of this computer was registered on a remote kilnd")
        except UserError as e:
            check("another machine" in str(e) and "kiln models add" in str(e), "Add model says what to do: %s" % e)
    finally:
        for doc in docs:
            doc.setModified(False)
            doc.close()
        conn.close()
    return {"opened_original": opened_original}


def product_cutout(node, size, box):
    """A bottle-like cut-out in `box` (x, y, w, h): an opaque body whose colours vary per pixel, an
    anti-aliased outline and a hole, transparent around it."""
    W, H = size
    bx, by, bw, bh = box
    data = bytearray(W * H * 4)
    cx, cy, rx, ry = bx + bw / 2.0, by + bh / 2.0, bw / 2.0, bh / 2.0
    for y in range(by, by + bh):
        for x in range(bx, bx + bw):
            # Signed distance (in pixels, roughly) to the ellipse's outline, and to the hole's.
            d = (1.0 - (((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2) ** 0.5) * min(rx, ry)
            hole = ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy - bh / 5.0) ** 2) ** 0.5 - 3.0
            a = max(0.0, min(1.0, d + 0.5, hole + 0.5))
            if a > 0:
                i = (y * W + x) * 4
                data[i:i + 4] = bytes((40 + 3 * (x - bx), 30 + 2 * (y - by), 200, int(round(a * 255))))
    node.setPixelData(bytes(data), 0, 0, W, H)


def case_product_shot():
    """A product shot from a cut-out layer: the layer untouched, a scene layer per variation below
    it, the scene equal to kilnd's, the product's opaque pixels exact in kilnd's composite."""
    from kiln_krita.backend import requests
    c, events, kiln = controller()
    check(MODEL in c.refresh_models(), "the model '%s' is registered in kilnd" % MODEL)
    doc = make_document(96, 80, "kiln-shot")
    product = doc.createNode("bottle", "paintlayer")
    doc.rootNode().addChildNode(product, doc.rootNode().childNodes()[-1])
    product_cutout(product, (96, 80), (30, 14, 26, 52))
    doc.setActiveNode(product)
    doc.refreshProjection()
    doc.waitForDone()
    before = bytes(product.pixelData(0, 0, 96, 80))
    alphas = before[3::4]
    check(any(a == 255 for a in alphas) and any(0 < a < 255 for a in alphas), "the cut-out has opaque and soft pixels")

    settings = requests.GenerateSettings(model=MODEL, prompt="a bottle on a marble counter, morning light", seed=11,
                                         steps=3, sampler="Euler", mode=requests.SHOT, count=2, edge=3,
                                         preview_every=1)
    count_before = len(doc.rootNode().childNodes())
    layer, record = generate_and_wait(c, events, doc, settings, node=product)
    result = record["result"]
    # The product layer is untouched and still on top of its scenes.
    check(bytes(product.pixelData(0, 0, 96, 80)) == before, "the product layer was not modified")
    check_equal(len(doc.rootNode().childNodes()), count_before + 2, "one layer per variation")
    i = child_index(product)
    siblings = product.parentNode().childNodes()
    check_equal(siblings[i - 1].uniqueId(), layer.uniqueId(), "the first scene is just below the product")
    check(layer.visible() and not siblings[i - 2].visible(), "the first scene shown, the second hidden")
    check(layer.name().startswith("Kiln product shot: a bottle"), "layer name %r" % layer.name())
    # Placed where the layer is, at scale 1: the opaque box of the cut-out starts at (30, 14).
    at = result["placement"]
    b = product.bounds()
    check_equal((at["x"], at["y"], at["scale"]), (30, 14, 1.0), "placement reported by kilnd (layer bounds %s)" % b)
    # The scene layers are kilnd's scenes; kilnd's composite keeps the product's opaque pixels.
    for k, entry in enumerate(result["images"]):
        w, h, scene_png = read_png_bgra(entry["scene_png"])
        check(bytes(siblings[i - 1 - k].pixelData(0, 0, 96, 80)) == scene_png, "scene layer %d equals kilnd's PNG" % k)
        w, h, composite = read_png_bgra(entry["png"])
        for p in range(96 * 80):
            if before[p * 4 + 3] == 255:
                check(composite[p * 4:p * 4 + 3] == before[p * 4:p * 4 + 3],
                      "opaque product pixel %d,%d kept exactly in the composite" % (p % 96, p // 96))
        outside = [p for p in range(96 * 80) if before[p * 4 + 3] == 0]
        check(sum(1 for p in outside if scene_png[p * 4:p * 4 + 3] != bytes((127, 127, 127))) > len(outside) // 2,
              "the scene was painted around the product")
    check(result["images"][0]["seed"] == 11 and result["images"][1]["seed"] == 12, "variations use seed + k")
    return {"layers": [n.name() for n in doc.rootNode().childNodes()], "placement": at}


def generate_and_wait_started(c, events):
    before = len(events["finished"])
    pump_until(lambda: len(events["finished"]) > before, 120, "the generation to finish")
    check(not events["errors"], "errors: %s" % events["errors"])
    layer, record = events["finished"][-1]
    check_equal(record.get("state"), "done", "job state (%s)" % (record.get("error"),))
    check(layer is not None, "no layer was inserted")
    return layer, record


CASES = {"generate": case_generate, "product_shot": case_product_shot, "colour_models": case_colour_models,
         "documents_and_clients": case_documents_and_clients, "dataset_and_train": case_dataset_and_train,
         "captions_and_tags": case_captions_and_tags, "attach": case_attach, "remote_files": case_remote_files}


def main(args=None):
    names = list(args or []) or list(CASES)
    results = {"passed": [], "failed": [], "details": {}}
    for name in names:
        t0 = time.monotonic()
        try:
            results["details"][name] = CASES[name]()
            results["passed"].append(name)
            print("PASS %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported to the driver
            results["failed"].append({"name": name, "error": "%s: %s" % (type(e).__name__, e),
                                      "traceback": traceback.format_exc()})
            print("FAIL %s: %s\n%s" % (name, e, traceback.format_exc()), flush=True)
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    # Close what the cases opened: kritarunner destroys documents still open after Qt's objects
    # at exit and crashes in KisDocument's destructor (Krita 5.1.5).
    for doc in Krita.instance().documents():
        doc.setModified(False)
        doc.close()
    QCoreApplication.processEvents(QEventLoop.AllEvents, 100)
    sys.stdout.flush()
