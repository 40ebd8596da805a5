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
# kohya settings that make one epoch on the tiny reference model take seconds.
TINY_TRAINING = ["resolution=64", "min_bucket_reso=64", "max_bucket_reso=128", "max_train_epochs=1",
                 "train_batch_size=1", "num_repeats=4", "seed=42", "learning_rate=2e-3", "text_encoder_lr=1e-3",
                 "sample_every_n_epochs=1", "sample_prompts=sks_disc, a product --w 64 --h 64 --d 7 --s 3"]


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


def case_dataset_and_train():
    """The visible layers of a group become a dataset; one short training makes a LoRA."""
    from kiln_krita import canvas
    from kiln_krita.backend import requests
    c, events, kiln = controller()
    if not c.conn.has_method("datasets.add_images"):
        return {"skipped": "this kilnd has no datasets.add_images"}
    doc = make_document()
    group = doc.nodeByName("products")
    layers = canvas.dataset_layers([group])
    check_equal([n.name() for n in layers], ["product 3", "product 2", "product 1"], "visible children, top first")
    exported = canvas.export_layer(layers[0])
    check_equal(exported[1], (70 - 18, 46 - 18, 37, 37), "trimmed to the layer's pixels")
    # The smallest dataset resolution (256) and few repeats: the tiny model trains at 64 below.
    ds = requests.DatasetSettings(name="krita-products", trigger="sks_disc", preset="product", background="white",
                                  resolution=256, repeats=4)
    c.add_layers_to_dataset(doc, [group], ds)
    pump_until(lambda: events["datasets"] or events["errors"], 120, "the dataset")
    check(not events["errors"], "errors: %s" % events["errors"])
    dataset = events["datasets"][-1]
    names = sorted(i.get("source_name") for i in dataset.get("images", []))
    check_equal(names, ["product 1", "product 2", "product 3"], "dataset images by source name")
    for image in dataset["images"]:
        check(isinstance(image.get("findings"), list), "quality findings per image")
        for f in image["findings"]:
            check(f.get("message") and f.get("action"), "each finding gives its reason and what to do: %s" % f)
    result = {"dataset": dataset}
    if not c.conn.has_method("train"):
        result["train"] = "skipped: this kilnd has no train method"
        return result
    # One short epoch on the tiny model: 3 images x 4 repeats = 12 steps at 64x64, one sample.
    train = requests.TrainSettings(base_model=MODEL, dataset="krita-products", name="krita-lora", preset="product",
                                   overrides=json.loads(os.environ.get("KILN_TEST_TRAIN_CONFIG", "{}")),
                                   set=TINY_TRAINING)
    c.grid_options = {"steps": 3, "strengths": [0.5, 1.0], "sampler": "Euler"}
    previews_before = events["previews"]
    job_id = c.train(train, "sks_disc")
    pump_until(lambda: events["trained"] or events["errors"], 300, "the training")
    check(not events["errors"], "errors: %s" % events["errors"])
    record = events["trained"][-1]
    check_equal(record.get("id"), job_id, "the finished training job")
    check_equal(record.get("state"), "done", "training job (%s)" % record.get("error"))
    check_equal(record["result"].get("steps"), 12, "kohya's step count: 3 images x 4 repeats x 1 epoch")
    check(events["previews"] > previews_before, "the training sample was shown")
    check(any("epoch" in s and "loss" in s for s in events["status"]), "progress showed epoch and loss: %s"
          % events["status"][-3:])
    result["train"] = record
    check("krita-lora" in c.refresh_loras(), "the new LoRA is in kilnd's library (the LoRA picker)")
    if c.conn.has_method("lora.grid"):
        pump_until(lambda: events["grids"] or events["errors"], 120, "the validation grid")
        check(not events["errors"], "errors: %s" % events["errors"])
        grid_doc, path = events["grids"][-1]
        check(grid_doc is not None and grid_doc.width() > 0, "the grid opened as a document")
        result["grid"] = path
    if c.conn.has_method("datasets.remove_images"):
        # The docker's "Remove selected images", on a second dataset of the same layers (krita-products
        # stays whole for the checks after Krita): it comes back without them.
        shown = len(events["datasets"])
        c.add_layers_to_dataset(doc, [group], requests.DatasetSettings(
            name="krita-removal", trigger="sks_disc", preset="product", background="white", resolution=256, repeats=4))
        pump_until(lambda: len(events["datasets"]) > shown or events["errors"], 120, "the second dataset")
        check(not events["errors"], "errors: %s" % events["errors"])
        first = events["datasets"][-1]["images"][0]["id"]
        c.remove_dataset_images("krita-removal", [first])
        check_equal(len(events["datasets"][-1]["images"]), 2, "images left after removing one")
        check(first not in [i["id"] for i in events["datasets"][-1]["images"]], "the removed image is gone")
    return result


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
         "documents_and_clients": case_documents_and_clients, "dataset_and_train": case_dataset_and_train}


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
