#!/usr/bin/env python3
"""Runs Kiln's Krita plugin inside a real Krita against a real kilnd.

  run_krita_test.py --build DIR scripted [CASE ...]   kritarunner, QT_QPA_PLATFORM=offscreen
  run_krita_test.py --build DIR gui                   the full Krita GUI under Xvfb: docker screenshot

Every run: builds the plugin zip with installers/krita/build-zip.sh, imports it into a fresh
Krita profile with Krita's own "Import Python Plugin" code, starts kilnd in temporary folders
with the tiny reference model registered, runs the cases, then checks kilnd's state from the
outside (its job list through the `kiln` CLI, its dataset and LoRA folders).

Exit status 77 (CTest's SKIP_RETURN_CODE) when Krita is not installed; set KILN_TEST_KEEP=1 to
keep the temporary folders.

README screenshots: `gui` with KILN_TEST_SCREENSHOT_DIR (or --screenshot-dir) also registers Kiln
Mini (mini/kiln-mini.safetensors, or $KILN_TEST_MINI_MODEL) as "kiln-mini" and runs the GUI probe
on it (KILN_TEST_MODEL=kiln-mini), so the pictures show what a model makes of the prompts; the
tiny model's images are noise. Without screenshots the probe uses the tiny model, as CI runs it.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "shared", "bindings", "python", "tests"))
from daemon_process import MINI_NAME, mini_model_path  # noqa: E402 (needs the path above)

SKIP = 77
IMPORTER = "/usr/share/krita/pykrita/plugin_importer/plugin_importer.py"


def log(*args):
    print(*args, flush=True)


def build_zip(build, root):
    out = os.path.join(root, "kiln-krita.zip")
    subprocess.run([os.path.join(SOURCE, "installers", "krita", "build-zip.sh"), build, out], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def make_profile(root, zip_path, extra_plugins=()):
    """A fresh Krita profile (XDG folders under root) with the zip imported the way Krita's
    Tools > Scripts > Import Python Plugin from File does, and the plugins enabled."""
    env = dict(os.environ)
    for var, sub in (("XDG_DATA_HOME", "share"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_RUNTIME_DIR", "runtime"), ("HOME", "home")):
        path = os.path.join(root, sub)
        os.makedirs(path, mode=0o700, exist_ok=True)
        env[var] = path
    resources = os.path.join(env["XDG_DATA_HOME"], "krita")
    os.makedirs(resources, exist_ok=True)
    importer = IMPORTER if os.path.exists(IMPORTER) else None
    if importer:
        r = subprocess.run([sys.executable, importer, zip_path, resources], capture_output=True, text=True)
        if r.returncode != 0 or "Imported plugin" not in r.stdout:
            raise RuntimeError("Krita's plugin importer refused the zip: %s %s" % (r.stdout, r.stderr))
    else:  # the importer ships with Krita; without it, unpack as it would
        import zipfile
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(os.path.join(resources, "pykrita"))
        os.rename(os.path.join(resources, "pykrita", "kiln.desktop"), os.path.join(resources, "pykrita", "kiln_krita.desktop"))
    pykrita = os.path.join(resources, "pykrita")
    for src in extra_plugins:
        name = os.path.basename(src)
        shutil.copytree(src, os.path.join(pykrita, name))
        shutil.copy(src + ".desktop", os.path.join(pykrita, name + ".desktop"))
    enabled = ["kiln_krita"] + [os.path.basename(p) for p in extra_plugins]
    with open(os.path.join(env["XDG_CONFIG_HOME"], "kritarc"), "w") as f:
        f.write("[python]\n" + "".join("enable_%s=true\n" % n for n in enabled))
        # No "what's new" or session restore prompts in a test.
        f.write("\n[General]\nsessionOnStartup=0\nshowSplashScreen=false\n")
    check(os.path.isfile(os.path.join(pykrita, "kiln_krita", "kiln", "__init__.py")), "the client module was installed")
    check(glob.glob(os.path.join(pykrita, "kiln_krita", "kiln", "_kiln*.so")), "the compiled module was installed")
    return env, pykrita


def run_group(cmd, env, timeout):
    """Runs cmd in its own process group; on timeout the whole group is killed (xvfb-run leaves
    Xvfb and Krita behind otherwise). Returns (exit status or None on timeout, output)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        return None, out
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left running
        except ProcessLookupError:
            pass


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def screenshot_dir(args):
    return args.screenshot_dir or os.environ.get("KILN_TEST_SCREENSHOT_DIR") or None


def start_daemon(mini=False):
    """kilnd with the tiny model registered (and Kiln Mini as "kiln-mini" when `mini`) and the test
    tagger installed (for auto-tag)."""
    from daemon_process import DaemonProcess, tiny_model_path
    import tiny_tagger
    d = DaemonProcess("kr", extra_args=["--listen", "127.0.0.1:0"])  # also remote, for case_remote_files
    c = d.client("krita-test-driver")
    c.call("models.add", {"path": tiny_model_path(), "name": "tiny"})
    if mini:
        c.call("models.add", {"path": mini_model_path(), "name": MINI_NAME})
    d.remote_url = "kiln+tls://" + c.call("status")["remote"]["address"]
    d.remote_token = c.call("remote.tokens.create", {"name": "krita-test"})["token"]
    c.close()
    tiny_tagger.install(d.data_dir)
    return d


def kiln_cli(d, *args):
    """The `kiln` CLI's output against the test's kilnd, or None without a CLI to run."""
    cli = os.environ.get("KILN_TEST_KILN_CLI")
    if not cli:
        return None
    r = subprocess.run([cli, "--socket", d.socket, "--no-autostart"] + list(args), capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, "kiln %s failed: %s" % (" ".join(args), r.stderr))
    return r.stdout


def kiln_jobs(d):
    out = kiln_cli(d, "jobs", "list", "--json")
    if out is None:
        return None
    data = json.loads(out)
    return data.get("jobs", data) if isinstance(data, dict) else data


def run_scripted(args, env, pykrita, root, d):
    out = os.path.join(root, "out")
    os.makedirs(out)
    env = dict(env, QT_QPA_PLATFORM="offscreen", KILN_SOCKET=d.socket, KILN_TEST_OUT=out,
               PYTHONPATH=os.pathsep.join([pykrita, HERE]), PYTHONDONTWRITEBYTECODE="1",
               KILN_TEST_REMOTE_URL=d.remote_url, KILN_TEST_REMOTE_TOKEN=d.remote_token, KILN_TEST_DATA_DIR=d.data_dir,
               KILN_CONFIG_DIR=os.path.join(root, "kiln-config"))  # the remote's pin, of this test only
    for name in ("KILN_REMOTE", "KILN_TOKEN"):
        env.pop(name, None)  # the other cases use the local socket
    env.pop("KILN_DAEMON", None)  # the plugin must use the running daemon, not start one
    t0 = time.monotonic()
    cmd = ["kritarunner", "-s", "krita_cases", "-f", "main"] + list(args.cases)
    if os.environ.get("KILN_TEST_GDB"):  # debugging a crash: Krita under gdb, with a backtrace
        cmd = ["gdb", "-q", "-batch", "-ex", "run", "-ex", "bt 40", "--args"] + cmd
    code, output = run_group(cmd, env, args.timeout)
    lines = [l for l in output.splitlines() if not l.startswith("krita.lib.resources")]
    log("\n".join(lines[-60:]))
    check(code is not None, "kritarunner did not finish within %d s" % args.timeout)
    log("kritarunner: exit %d in %.1f s" % (code, time.monotonic() - t0))
    path = os.path.join(out, "result.json")
    check(os.path.exists(path), "the cases wrote no result (Krita failed to run them)")
    with open(path) as f:
        result = json.load(f)
    for failure in result["failed"]:
        log("FAILED %s: %s\n%s" % (failure["name"], failure["error"], failure["traceback"]))
    check(not result["failed"], "%d case(s) failed in Krita" % len(result["failed"]))
    check(code == 0, "kritarunner exited with %d after the cases (a crash?)" % code)
    expected = list(args.cases) or ["generate", "product_shot", "colour_models", "documents_and_clients", "dataset_and_train",
                                    "captions_and_tags", "attach", "remote_files"]
    check(sorted(result["passed"]) == sorted(expected), "cases passed: %s" % result["passed"])
    return result


def check_daemon_state(result, d):
    """What kilnd holds after the cases: the plugin's jobs, seen by another client (the CLI)."""
    jobs = kiln_jobs(d)
    if jobs is not None:
        mine = [j for j in jobs if str(j.get("client", "")).startswith("krita-plugin")]
        check(mine, "kiln jobs list shows the plugin's jobs: %s" % [j.get("client") for j in jobs])
        log("kiln jobs list: %d jobs from the Krita plugin" % len(mine))
    details = result.get("details", {})
    ds = details.get("dataset_and_train") or {}
    if isinstance(ds.get("dataset"), dict):
        folder = os.path.join(d.data_dir, "datasets", "krita-products")
        images = glob.glob(os.path.join(folder, "*_sks_disc", "*.png"))
        check(len(images) >= 3, "kohya folder of the dataset holds the layers: %s" % images)
        captions = glob.glob(os.path.join(folder, "*_sks_disc", "*.txt"))
        for c in captions:
            with open(c) as f:
                check(f.read().startswith("sks_disc"), "captions start with the trigger word (%s)" % c)
        log("dataset: %d training images in %s" % (len(images), folder))
    if isinstance(ds.get("train"), dict):
        lora_dir = os.path.join(d.data_dir, "loras", "krita-lora")
        files = glob.glob(os.path.join(lora_dir, "*.safetensors"))
        check(os.path.exists(os.path.join(lora_dir, "krita-lora.safetensors")), "the LoRA file exists: %s" % files)
        log("LoRA files: %s" % sorted(os.path.basename(f) for f in files))
        with open(os.path.join(lora_dir, "config.json")) as f:
            config = json.load(f)
        check((config["network_dim"], config["network_alpha"], config["max_train_epochs"]) == (8, 4.0, 2),
              "the run's config.json has the Advanced values: %s" % config)
    if ds.get("chosen") == 1:
        listed = kiln_cli(d, "loras", "list")
        if listed is not None:
            row = next((l for l in listed.splitlines() if l.startswith("krita-lora ")), "")
            check("epoch 1" in row, "kiln loras list shows krita-lora using epoch 1:\n%s" % listed)
            log("kiln loras list: %s" % " ".join(row.split()))
    tags = details.get("captions_and_tags") or {}
    if isinstance(tags.get("captions"), dict):
        folder = os.path.join(d.data_dir, "datasets", "krita-tags")
        captions = sorted(glob.glob(os.path.join(folder, "*_sks_disc", "*.txt")))
        check(len(captions) == 3, "the caption files of krita-tags: %s" % captions)
        for c in captions:
            with open(c) as f:
                text = f.read()
            check(text.startswith("sks_disc") and ("red dress" in text or "blue sky" in text),
                  "auto-tagged caption %s: %s" % (c, text))
    attach = details.get("attach") or {}
    if attach.get("job"):
        check(os.path.exists(os.path.join(d.data_dir, "loras", "cli-lora", "cli-lora.safetensors")),
              "the CLI's training ended with its LoRA")


def png_colours(path):
    """Distinct colours of a PNG per ImageMagick (an independent look at the screenshot)."""
    if not shutil.which("identify"):
        return None
    r = subprocess.run(["identify", "-format", "%k %w %h", path], capture_output=True, text=True)
    check(r.returncode == 0, "identify could not read %s" % path)
    k, w, h = (int(v) for v in r.stdout.split())
    return k, w, h


def run_gui(args, env, pykrita, root, d):
    out = os.path.join(root, "out")
    os.makedirs(out)
    env = dict(env, KILN_SOCKET=d.socket, KILN_TEST_OUT=out, PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1",
               KILN_TEST_PRODUCT_LAYERS=os.path.join(SOURCE, "installers", "sample-data", "product"))
    env.pop("KILN_DAEMON", None)
    env.pop("QT_QPA_PLATFORM", None)
    shots = screenshot_dir(args)
    if shots:
        env["KILN_TEST_SCREENSHOT_DIR"] = os.path.abspath(shots)
    # The README's pictures on Kiln Mini; the test itself on the tiny model.
    env["KILN_TEST_MODEL"] = MINI_NAME if shots else "tiny"
    t0 = time.monotonic()
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1440x900x24", "krita", "--nosplash"]
    code, output = run_group(cmd, env, args.timeout)
    if code is None:
        if os.environ.get("KILN_TEST_VERBOSE"):
            log(output[-20000:])
        log("\n".join(l for l in output.splitlines() if "kiln" in l.lower() or "Traceback" in l)[-4000:])
        raise AssertionError("Krita did not finish within %d s" % args.timeout)
    log("\n".join([l for l in output.splitlines() if "kiln" in l.lower() or "Traceback" in l or "Error" in l][-40:]))
    log("krita GUI: %.1f s" % (time.monotonic() - t0))
    path = os.path.join(out, "result.json")
    check(os.path.exists(path), "the GUI probe wrote no result; Krita output:\n" + output[-3000:])
    with open(path) as f:
        result = json.load(f)
    log(json.dumps(result, indent=1))
    check(not result.get("errors"), "the GUI probe failed: %s" % result.get("errors"))
    shot = os.path.join(out, "docker.png")
    check(os.path.exists(shot), "no docker screenshot")
    colours = png_colours(shot)
    if colours:
        k, w, h = colours
        log("docker.png: %dx%d, %d colours" % (w, h, k))
        check(w >= 150 and h >= 300, "the docker is visible at a usable size (%dx%d)" % (w, h))
        check(k >= 16, "the docker screenshot is not blank (%d colours)" % k)
    shot = os.path.join(out, "product_shot.png")
    check(os.path.exists(shot), "no product shot screenshot")
    colours = png_colours(shot)
    if colours:
        check(colours[0] >= 64, "the product shot screenshot is not blank (%d colours)" % colours[0])
    # The training panels: the gallery, the live view and the epoch choice.
    for name in ("dataset.png", "training.png", "epochs.png"):
        shot = os.path.join(out, name)
        check(os.path.exists(shot), "no %s screenshot" % name)
        colours = png_colours(shot)
        if colours:
            log("%s: %dx%d, %d colours" % (name, colours[1], colours[2], colours[0]))
            check(colours[0] >= 64, "the %s screenshot is not blank (%d colours)" % (name, colours[0]))
    if args.artifacts:
        os.makedirs(args.artifacts, exist_ok=True)
        for name in ("docker.png", "window.png", "product_shot.png", "dataset.png", "training.png", "epochs.png"):
            if os.path.exists(os.path.join(out, name)):
                shutil.copy(os.path.join(out, name), args.artifacts)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="build folder with python/kiln and bin/kilnd")
    ap.add_argument("--timeout", type=int, help="seconds Krita may run (default 600 scripted, 400 gui)")
    ap.add_argument("--artifacts", help="copy screenshots here (gui)")
    ap.add_argument("--screenshot-dir", help="the GUI probe also writes the README screenshot here")
    ap.add_argument("mode", choices=["scripted", "gui"])
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    if args.timeout is None:
        args.timeout = 600 if args.mode == "scripted" else 400

    if not shutil.which("kritarunner") or not shutil.which("krita"):
        log("SKIP: Krita is not installed (Debian: apt install krita python3-pyqt5); the Krita host tests need it")
        return SKIP
    if args.mode == "gui" and not shutil.which("xvfb-run"):
        log("SKIP: xvfb-run is not installed (apt install xvfb xauth); the Krita GUI test needs it")
        return SKIP
    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "python"))
    os.environ.setdefault("KILN_TEST_KILND", os.path.join(build, "bin", "kilnd"))

    root = tempfile.mkdtemp(prefix="kk-", dir="/tmp")
    t0 = time.monotonic()
    try:
        zip_path = build_zip(build, root)
        extra = [os.path.join(HERE, "gui_probe", "kiln_gui_probe")] if args.mode == "gui" else []
        env, pykrita = make_profile(root, zip_path, extra)
        mini = args.mode == "gui" and screenshot_dir(args) is not None
        if mini:
            check(os.path.isfile(mini_model_path()), "README screenshots need Kiln Mini at %s (or set "
                  "KILN_TEST_MINI_MODEL)" % mini_model_path())
            log("screenshots: on Kiln Mini (%s)" % mini_model_path())
        d = start_daemon(mini)
        try:
            if args.mode == "scripted":
                result = run_scripted(args, env, pykrita, root, d)
                check_daemon_state(result, d)
            else:
                run_gui(args, env, pykrita, root, d)
        finally:
            d.stop()
        log("OK in %.1f s" % (time.monotonic() - t0))
        return 0
    except AssertionError as e:
        log("FAIL: %s" % e)
        return 1
    finally:
        if os.environ.get("KILN_TEST_KEEP"):
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
