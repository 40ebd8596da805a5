"""Test cases run inside a real Blender (blender -b --factory-startup) by run_blender_test.py, which
starts kilnd with the tiny model, builds the add-on zip and checks $KILN_TEST_OUT/result.json.

The add-on is installed from its zip with Blender's own operators into the fresh user profile the
driver made, then each case renders a small scene with Cycles on the CPU and runs the add-on's own
operators (bpy.ops.kiln.*), pumping the add-on's timer callback while kilnd works, and asserts on
the images, files and reports it makes and on kilnd's own output.

  blender -b --factory-startup --python-exit-code 1 --python blender_cases.py -- ZIP [CASE ...]
"""

import json
import os
import sys
import time
import traceback

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blender_support import (MODEL, Failure, addon, check, check_equal, image_rgb, install_addon,  # noqa: E402
                             make_scene, max_difference, pump_until, read_png, rgb_of)

OUT = os.environ.get("KILN_TEST_OUT", "/tmp")
# kohya settings that make one epoch on the tiny reference model take seconds.
TINY_TRAINING = ("resolution=64, min_bucket_reso=64, max_bucket_reso=128, max_train_epochs=1, train_batch_size=1, "
                 "num_repeats=10, seed=42, learning_rate=2e-3, text_encoder_lr=1e-3, sample_every_n_epochs=1\n"
                 "sample_prompts=sks_style, a house --w 64 --h 64 --d 7 --s 3")


def op(name, **kw):
    """Runs bpy.ops.kiln.<name>; returns its result, or raises Failure with the report it made."""
    try:
        return getattr(bpy.ops.kiln, name)(**kw)
    except RuntimeError as e:  # an ERROR report, raised by bpy.ops
        raise Failure("kiln.%s reported: %s" % (name, e))


def op_error(name, **kw):
    """Runs an operator that must fail; returns the text of its ERROR report."""
    try:
        result = getattr(bpy.ops.kiln, name)(**kw)
    except RuntimeError as e:
        return str(e)
    raise Failure("kiln.%s should have failed with a report, returned %s" % (name, result))


def settings(scene, **kw):
    s = scene.kiln
    s.model = MODEL
    s.prompt = "an ink drawing of a house"
    s.negative = "blurry"
    s.seed, s.steps, s.sampler, s.cfg, s.strength, s.max_side = 1234, 4, "Euler", 7.0, 0.6, 768
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def ctl():
    controller, _, _ = addon()
    return controller.controller()


def job(job_id):
    return ctl().conn.session.call("jobs.get", {"id": job_id})


def wait_image_task(what="the job", timeout=120):
    c = ctl()
    pump_until(lambda: c.image_task is None, timeout, what)
    return c


def render():
    t0 = time.monotonic()
    check_equal(bpy.ops.render.render(), {"FINISHED"}, "render")
    return time.monotonic() - t0


def png_infotext(path):
    from kiln_blender.backend import infotext
    return infotext.png_infotext(path)


# -- cases ----------------------------------------------------------------------------------

def case_reports():
    """Plain reports: no model picked, nothing rendered yet, a model kilnd does not have, no daemon."""
    scene = make_scene()
    s = settings(scene, model="")
    msg = op_error("restyle")
    check("Pick a base model first" in msg, "no model: %s" % msg)
    settings(scene)
    msg = op_error("restyle")
    check("Nothing rendered yet" in msg and "F12" in msg, "nothing rendered: %s" % msg)
    render()
    s.model = "no-such-model"
    msg = op_error("restyle")
    check("no-such-model" in msg, "unknown model named: %s" % msg)
    s.model = MODEL
    check(ctl().image_task is None, "nothing was started by the refused requests")
    # No daemon: a socket where none listens and a kilnd program that does not exist.
    prefs = bpy.context.preferences.addons["kiln_blender"].preferences
    prefs.daemon, prefs.socket = "/nonexistent/kilnd", os.path.join(OUT, "no-daemon.sock")
    try:
        msg = op_error("restyle")
        check("kilnd" in msg and "not running" in msg and "/nonexistent/kilnd" in msg, "no daemon: %s" % msg)
        msg2 = op_error("connect")
        check("not running" in msg2, "connect without a daemon: %s" % msg2)
    finally:
        prefs.daemon, prefs.socket = "", ""
    op("connect")
    return {"no_daemon": msg}


def case_restyle():
    """The render as seen -> img2img -> a new image equal to kilnd's PNG; the PNG saved beside the
    output path; the preview; 'restyle every render'."""
    controller, handlers, image_io = addon()
    scene = make_scene()
    settings(scene)
    scene.render.filepath = os.path.join(OUT, "render", "shot_###")
    op("connect")
    wm = bpy.context.window_manager
    check(MODEL in [m.name for m in wm.kiln_models], "the model picker lists kilnd's model: %s" % list(wm.kiln_models))
    render()
    # What the add-on sends is the render as Blender saves it 'as render' (view transform applied).
    rgba, w, h = image_io.read_render(scene)
    check_equal((w, h), (64, 48), "render size")
    path = os.path.join(OUT, "as-render.png")
    rr = bpy.data.images["Render Result"]
    s = scene.render.image_settings
    s.file_format, s.color_mode, s.color_depth = "PNG", "RGBA", "8"
    rr.save_render(path, scene=scene)
    pw, ph, pch, png = read_png(path)
    check_equal(max_difference(rgba, png), 0, "the sent pixels equal Blender's own 'save as render'")
    view = scene.view_settings.view_transform
    scene.view_settings.view_transform = "Standard"
    standard, _, _ = image_io.read_render(scene)
    scene.view_settings.view_transform = view
    check(max_difference(standard, rgba) > 8, "the view transform (%s) is applied, not the Standard one" % view)

    t0 = time.monotonic()
    check_equal(op("restyle"), {"FINISHED"}, "kiln.restyle")
    c = ctl()
    job_id = c.image_task.id
    c = wait_image_task("the restyle")
    seconds = time.monotonic() - t0
    record = job(job_id)
    check_equal(record["state"], "done", "restyle job (%s)" % record.get("error"))
    p = record["params"]
    check_equal((p["init_image"]["width"], p["init_image"]["height"], p["strength"], p["seed"], p["steps"]),
                (64, 48, 0.6, 1234, 4), "the img2img request")
    check_equal(record["client"].split()[0], "blender-addon", "the job's client")
    last = c.last_result
    name = "Kiln restyle: an ink drawing of a house (seed 1234)"
    check_equal(last["image"], name, "the image's name")
    image = bpy.data.images[name]
    check_equal(tuple(image.size), (64, 48), "result size")
    check(image.packed_file is not None, "the result is packed into the .blend")
    w, h, ch, png = read_png(record["result"]["images"][0]["png"])
    diff = max_difference(image_rgb(image), rgb_of(w, h, ch, png))
    check(diff <= 1, "the image's pixels equal kilnd's PNG within one level (max difference %d)" % diff)
    saved = os.path.join(OUT, "render", "kiln", "shot_001-seed1234.png")
    check_equal(last["saved"], saved, "the PNG saved beside the output path")
    info = png_infotext(saved)
    check_equal((info["params"].get("Seed"), info["params"].get("Denoising strength")), ("1234", "0.6"),
                "infotext of the saved copy")
    check(bpy.data.images.get(image_io.PREVIEW_NAME) is not None, "a preview image followed the render")
    check(any("Made '%s'" % name in m for _, m in c.messages), "a report named the image: %s" % c.messages[-2:])

    # Restyle every render: the render handler queues a timer that restyles once the render ends.
    scene.kiln.restyle_every_render = True
    scene.kiln.seed = 4321
    before = len(c.messages)
    render()
    check(handlers.has_pending(), "the render handler took note of the render")
    handlers.tick()   # what the timer runs: the render has ended, so it restyles
    check(c.image_task is not None, "the render is being restyled")
    wait_image_task("the automatic restyle")
    scene.kiln.restyle_every_render = False
    check("(seed 4321)" in c.last_result["image"], "the automatic restyle made its image: %s" % c.messages[before:])
    return {"image": name, "seconds": round(seconds, 1), "max_difference": diff}


def case_animation():
    """Three frames rendered and restyled with one seed; names as Blender's; resume; cancel; a folder."""
    controller, handlers, image_io = addon()
    scene = make_scene()
    settings(scene, seed=777)
    out = os.path.join(OUT, "anim")
    scene.render.filepath = os.path.join(out, "frame_##")
    c = ctl()
    t0 = time.monotonic()
    check_equal(op("restyle_animation"), {"FINISHED"}, "kiln.restyle_animation")
    run = c.image_task
    check(run is not None and run.todo == [1, 2, 3], "the run covers frames 1-3")
    etas = []
    pump_until(lambda: (etas.append(c.status) or c.image_task is None), 300, "the animation")
    seconds = time.monotonic() - t0
    check(not [m for lvl, m in c.messages[-3:] if lvl == "ERROR"], "errors: %s" % c.messages[-3:])
    expected = [os.path.join(out, "kiln", os.path.basename(scene.render.frame_path(frame=f))) for f in (1, 2, 3)]
    check_equal([os.path.basename(p) for p in expected], ["frame_01.png", "frame_02.png", "frame_03.png"],
                "Blender's own frame names")
    check_equal(run.outputs, expected, "outputs named and numbered as Blender's")
    seeds = [png_infotext(p)["params"].get("Seed") for p in expected]
    check_equal(seeds, ["777"] * 3, "one seed for every frame (infotext)")
    check(any("ETA" in line for line in etas), "the progress showed an ETA: %s" % etas[-3:])
    check(any("frame 2 (2/3)" in line for line in etas), "the progress named the frame: %s" % etas[-3:])
    check_equal(scene.frame_current, 1, "the current frame is restored")
    pixels = [read_png(p)[3] for p in expected]
    check(pixels[0] != pixels[2], "the frames differ (the cube moves)")

    # Resume: a missing frame is redone, the others are kept.
    mtimes = {p: os.stat(p).st_mtime_ns for p in expected}
    os.remove(expected[1])
    op("restyle_animation")
    run = c.image_task
    check_equal(run.todo, [2], "the resumed run does only the missing frame")
    wait_image_task("the resumed animation")
    check_equal(run.outputs, [expected[1]], "frame 2 written again")
    check(all(os.stat(p).st_mtime_ns == mtimes[p] for p in (expected[0], expected[2])), "frames 1 and 3 kept")
    check_equal(png_infotext(expected[1])["params"].get("Seed"), "777", "the resumed frame's seed")

    # Cancel (the panel's button) after the first frame: the others stay missing; a rerun resumes
    # from the first missing one.
    scene.render.filepath = os.path.join(OUT, "cancelled", "frame_##")
    scene.kiln.steps = 20
    op("restyle_animation")
    run = c.image_task
    pump_until(lambda: len(run.outputs) >= 1, 120, "the first frame of the cancelled run")
    op("cancel")
    wait_image_task("the cancelled animation")
    done = len(run.outputs)
    check(run.cancelled and done < 3, "the run stopped early (%d outputs)" % done)
    check(any("Cancelled after %d of 3 frames; run it again to resume from frame %d" % (done, done + 1) in m
              for _, m in c.messages[-2:]), "the cancel report says where it will resume: %s" % c.messages[-2:])
    scene.kiln.steps = 4
    op("restyle_animation")
    run = c.image_task
    check_equal(run.todo, list(range(done + 1, 4)), "the rerun resumes from the first missing frame")
    wait_image_task("the resumed run")
    check_equal(sorted(os.listdir(os.path.join(OUT, "cancelled", "kiln"))), ["frame_01.png", "frame_02.png",
                                                                           "frame_03.png"], "every frame after the resume")

    # A folder of frames rendered earlier by Blender's own 'Render Animation'.
    frames_dir = os.path.join(OUT, "frames")
    scene.render.filepath = frames_dir + os.sep
    scene.frame_end = 2
    s = scene.render.image_settings
    s.file_format, s.color_mode = "PNG", "RGB"
    bpy.ops.render.render(animation=True)
    check_equal(sorted(os.listdir(frames_dir)), ["0001.png", "0002.png"], "Blender rendered the frames")
    scene.kiln.anim_source, scene.kiln.anim_folder = "FOLDER", frames_dir
    op("restyle_animation")
    run = c.image_task
    wait_image_task("the animation from a folder")
    check_equal([os.path.relpath(p, frames_dir) for p in run.outputs], ["kiln/0001.png", "kiln/0002.png"],
                "restyled frames keep the folder's names")
    check_equal({png_infotext(p)["params"].get("Seed") for p in run.outputs}, {"777"}, "the folder run's seed")
    scene.kiln.anim_source, scene.frame_end = "RENDER", 3
    return {"outputs": [os.path.basename(p) for p in expected], "seconds": round(seconds, 1)}


def case_texture():
    """A seamless texture generated into the active material's Image Texture node."""
    controller, handlers, image_io = addon()
    scene = make_scene()
    s = settings(scene, seed=99)
    s.tex_prompt, s.tex_size, s.tex_seamless = "weathered oak planks", 64, True
    cube = bpy.data.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    c = ctl()
    check(c.generate_tiles(), "this kilnd's generate takes 'tiling'")
    check_equal(op("texture"), {"FINISHED"}, "kiln.texture")
    job_id = c.image_task.id
    wait_image_task("the texture")
    record = job(job_id)
    check_equal(record["state"], "done", "texture job (%s)" % record.get("error"))
    check_equal((record["params"].get("tiling"), record["params"]["width"], "init_image" in record["params"]),
                (True, 64, False), "a tiled txt2img request")
    nodes = cube.active_material.node_tree.nodes
    tex = [n for n in nodes if n.type == "TEX_IMAGE"]
    check_equal(len(tex), 1, "one Image Texture node")
    image = tex[0].image
    check(image is not None and image.name.startswith("Kiln texture: weathered oak planks (seed 99)"),
          "the node holds the texture: %s" % (image and image.name))
    bsdf = nodes["Principled BSDF"]
    check(bsdf.inputs["Base Color"].is_linked and bsdf.inputs["Base Color"].links[0].from_node == tex[0],
          "the texture feeds the Base Color")
    w, h, ch, png = read_png(record["result"]["images"][0]["png"])
    diff = max_difference(image_rgb(image), rgb_of(w, h, ch, png))
    check(diff <= 1, "the texture's pixels equal kilnd's PNG (max difference %d)" % diff)
    # A second texture goes into the same (active) node.
    op("texture")
    wait_image_task("the second texture")
    check_equal(len([n for n in nodes if n.type == "TEX_IMAGE"]), 1, "the active node is reused")
    check(tex[0].image != image, "the node holds the new texture")
    # No material: a plain report.
    bpy.ops.mesh.primitive_monkey_add()
    msg = op_error("texture")
    check("has no material" in msg, "no material: %s" % msg)
    return {"image": image.name}


def case_cancel():
    """Cancel: the job ends cancelled and no image is made."""
    scene = make_scene()
    settings(scene, steps=200, seed=5)
    render()
    c = ctl()
    images = len(bpy.data.images)
    op("restyle")
    job_id = c.image_task.id
    pump_until(lambda: job(job_id)["state"] == "running", 60, "the job to start")
    op("cancel")
    wait_image_task("the cancelled restyle", 60)
    check_equal(job(job_id)["state"], "cancelled", "the job's state")
    check(c.status.startswith("Cancelled"), "status: %s" % c.status)
    check(len(bpy.data.images) <= images + 1, "no result image (the preview may appear)")
    check(not any("(seed 5)" in im.name for im in bpy.data.images), "no result image")
    return {}


def case_train():
    """Two renders become a style dataset; a short training on the tiny model; a restyle asked for
    during the training runs first; the LoRA appears in the picker and restyles a render."""
    controller, handlers, image_io = addon()
    scene = make_scene()
    settings(scene)
    c = ctl()
    render()
    op("train_add_render")
    bpy.data.materials["cube"].node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.1, 0.8, 0.2, 1)
    scene.camera.location.x = 1.5
    render()
    op("train_add_render")
    t = scene.kiln.train
    check_equal([i.image.name for i in t.images], ["Kiln render 1", "Kiln render 2"], "the render snapshots")
    check(image_rgb(t.images[0].image) != image_rgb(t.images[1].image), "the two renders differ")
    t.dataset, t.trigger, t.lora, t.resolution, t.extra = "blender-style", "sks_style", "blender-style", 256, TINY_TRAINING
    t0 = time.monotonic()
    check_equal(op("train"), {"FINISHED"}, "kiln.train")
    run = c.training
    pump_until(lambda: run.train_id is not None or run.finished, 120, "the dataset import")
    check(run.train_id is not None, "the training started: %s" % c.train_status)
    check_equal(run.added, 2, "two renders added to the dataset")
    # A restyle during the training runs before the training ends (interactive jobs go first).
    pump_until(lambda: job(run.train_id)["state"] == "running", 120, "the training to run")
    settings(scene, seed=31)
    op("restyle")
    restyle_id = c.image_task.id
    wait_image_task("the restyle during training")
    training_state = job(run.train_id)["state"]
    check(training_state in ("running", "paused", "queued"),
          "the restyle finished while the training was still going (training: %s)" % training_state)
    check_equal(job(restyle_id)["state"], "done", "the restyle during training")
    pump_until(lambda: c.training is None, 300, "the training")
    seconds = time.monotonic() - t0
    record = run.result
    check(record is not None and record["state"] == "done", "training: %s" % c.train_status)
    check("loss" in c.train_status or run.loss is not None, "the loss was shown: %s" % c.train_status)
    check(run.loss is not None, "the progress carried the loss")
    check(bpy.data.images.get(image_io.SAMPLE_NAME) is not None, "a training sample was shown: %s" % run.last_sample)
    wm = bpy.context.window_manager
    handlers.redraw()
    check("blender-style" in [n.name for n in wm.kiln_loras], "the LoRA is in the picker: %s" % list(wm.kiln_loras))
    dataset = c.conn.call("datasets.get", {"name": "blender-style"})
    check_equal(dataset.get("settings", {}).get("preset"), "style", "the dataset's preset")
    check_equal(sorted(i.get("source_name") for i in dataset["images"]), ["Kiln render 1", "Kiln render 2"],
                "the dataset's images")
    # The new LoRA restyles a render.
    scene.kiln.lora, scene.kiln.lora_weight = "blender-style", 0.8
    op("insert_lora")
    check(scene.kiln.prompt.endswith("<lora:blender-style:0.8>"), "the tag was inserted: %s" % scene.kiln.prompt)
    op("restyle")
    lora_job = c.image_task.id
    wait_image_task("the restyle with the LoRA")
    result = job(lora_job)["result"]
    check([l.get("name") for l in result.get("loras", [])] == ["blender-style"], "the LoRA was applied: %s"
          % result.get("loras"))
    return {"seconds": round(seconds, 1), "loss": run.loss, "training_during_restyle": training_state}


def case_remote_files():
    """A kilnd on another machine (TLS on loopback): the PNG saved beside the output path comes
    through kilnd (downloaded: a file kilnd does not give remote clients is not read from its disk),
    and Add Model refuses a file of this computer with a message saying what to do."""
    controller, _, _ = addon()
    from kiln_blender.connection import Connection, UserError
    data = os.environ["KILN_TEST_DATA_DIR"]
    conn = Connection(remote=os.environ["KILN_TEST_REMOTE_URL"], token=os.environ["KILN_TEST_REMOTE_TOKEN"])
    c = controller.Controller(conn)
    try:
        conn.ensure()
        check(conn.session.is_remote, "connected over TLS")
        os.makedirs(os.path.join(data, "outputs"), exist_ok=True)
        png = os.path.join(data, "outputs", "remote-shot.png")
        with open(png, "wb") as f:
            f.write(b"kilnd's PNG bytes")
        scene = bpy.context.scene
        scene.render.filepath = os.path.join(OUT, "remote", "shot_###")
        saved = c.save_beside_output(scene, png, 77, frame=5)
        check_equal(saved, os.path.join(OUT, "remote", "kiln", "shot_005-seed77.png"), "saved beside the output path")
        with open(saved, "rb") as f:
            check_equal(f.read(), b"kilnd's PNG bytes", "the downloaded bytes")
        secret = os.path.join(data, "not-a-result.png")
        with open(secret, "wb") as f:
            f.write(b"outside outputs/")
        check_equal(c.save_beside_output(scene, secret, 78, frame=5), None, "only results are downloaded")
        check(not os.path.exists(os.path.join(OUT, "remote", "kiln", "shot_005-seed78.png")), "nothing written")
        check(sorted(os.listdir(os.path.join(OUT, "remote", "kiln"))) == ["shot_005-seed77.png"], "no temporary file left")
        laptop_model = os.path.join(OUT, "laptop-model.safetensors")
        with open(laptop_model, "wb") as f:
            f.write(b"not really a model")
        try:
            c.add_model(laptop_model)
            check(False, "a model file of this computer was registered on a remote kilnd")
        except UserError as e:
            check("another machine" in str(e) and "kiln models add" in str(e), "Add Model says what to do: %s" % e)
    finally:
        conn.close()
    return {"saved": os.path.basename(saved)}


CASES = {"reports": case_reports, "restyle": case_restyle, "animation": case_animation, "texture": case_texture,
         "cancel": case_cancel, "train": case_train, "remote_files": case_remote_files}


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    zip_path, names = argv[0], argv[1:] or list(CASES)
    results = {"passed": [], "failed": [], "details": {}}
    try:
        t0 = time.monotonic()
        results["details"]["install"] = install_addon(zip_path)
        print("PASS install (%.1f s)" % (time.monotonic() - t0), flush=True)
    except Exception as e:  # noqa: BLE001
        results["failed"].append({"name": "install", "error": "%s: %s" % (type(e).__name__, e),
                                  "traceback": traceback.format_exc()})
        names = []
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
            try:  # leave no job running into the next case
                c = ctl()
                c.cancel()
                c.cancel_training()
                pump_until(lambda: not c.busy, 60, "cleanup")
            except Exception:  # noqa: BLE001
                pass
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    bpy.ops.preferences.addon_disable(module="kiln_blender")
    if results["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
