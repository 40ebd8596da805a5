#!/usr/bin/env python3
"""Runs Kiln's Blender add-on inside a real Blender against a real kilnd.

  run_blender_test.py --build DIR scripted [CASE ...]   blender -b --factory-startup (Cycles on the CPU)
  run_blender_test.py --build DIR gui                   the full Blender GUI under Xvfb: panel screenshot

Every run: builds the add-on zip with installers/blender/build-zip.sh, gives Blender a fresh user
profile (its own config and scripts folders, HOME), starts kilnd in temporary folders with the
tiny reference model registered, lets Blender install the zip with its own operators and run the
cases, then checks kilnd's state from the outside (its job list through the `kiln` CLI, its dataset
and LoRA folders).

Exit status 77 (CTest's SKIP_RETURN_CODE) when Blender (or, for the GUI, xvfb-run) is not installed;
set KILN_TEST_KEEP=1 to keep the temporary folders.

README screenshots: `gui` with KILN_TEST_SCREENSHOT_DIR (or --screenshot-dir) also registers Kiln
Mini (mini/kiln-mini.safetensors, or $KILN_TEST_MINI_MODEL) as "kiln-mini" and runs the GUI probe
on it (KILN_TEST_MODEL=kiln-mini), so the panel shows a real restyle; the tiny model's images are
noise. Without screenshots the probe uses the tiny model, as CI runs it.
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
CASES = ["reports", "restyle", "animation", "texture", "cancel", "train", "remote_files"]


def log(*args):
    print(*args, flush=True)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def build_zip(build, root):
    out = os.path.join(root, "kiln-blender.zip")
    subprocess.run([os.path.join(SOURCE, "installers", "blender", "build-zip.sh"), build, out], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def profile_env(root, socket):
    """A fresh Blender user profile under root, and the environment of a user whose kilnd runs."""
    env = dict(os.environ)
    for var, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "share"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_RUNTIME_DIR", "runtime"),
                     ("BLENDER_USER_CONFIG", "blender/config"), ("BLENDER_USER_SCRIPTS", "blender/scripts"),
                     ("BLENDER_USER_DATAFILES", "blender/datafiles")):
        path = os.path.join(root, sub)
        os.makedirs(path, mode=0o700, exist_ok=True)
        env[var] = path
    env["KILN_SOCKET"] = socket
    env.pop("KILN_DAEMON", None)   # the add-on must use the running daemon, not start one
    env.pop("PYTHONPATH", None)    # and its own bundled client, not the build's
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["OMP_WAIT_POLICY"] = env.get("OMP_WAIT_POLICY", "PASSIVE")
    return env


def run_group(cmd, env, timeout):
    """Runs cmd in its own process group; on timeout the whole group is killed (xvfb-run leaves
    Xvfb and Blender behind otherwise). Returns (exit status or None on timeout, output)."""
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
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def screenshot_dir(args):
    return args.screenshot_dir or os.environ.get("KILN_TEST_SCREENSHOT_DIR") or None


def start_daemon(mini=False):
    """kilnd with the tiny model registered, and Kiln Mini as "kiln-mini" when `mini`."""
    from daemon_process import DaemonProcess, tiny_model_path
    d = DaemonProcess("bl", extra_args=["--listen", "127.0.0.1:0"])  # also remote, for case_remote_files
    c = d.client("blender-test-driver")
    c.call("models.add", {"path": tiny_model_path(), "name": "tiny"})
    if mini:
        c.call("models.add", {"path": mini_model_path(), "name": MINI_NAME})
    d.remote_url = "kiln+tls://" + c.call("status")["remote"]["address"]
    d.remote_token = c.call("remote.tokens.create", {"name": "blender-test"})["token"]
    c.close()
    return d


def kiln_jobs(d):
    cli = os.environ.get("KILN_TEST_KILN_CLI")
    if not cli:
        return None
    r = subprocess.run([cli, "--socket", d.socket, "--no-autostart", "jobs", "list", "--json", "--limit", "500"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "kiln jobs list failed: %s" % r.stderr)
    data = json.loads(r.stdout)
    return data.get("jobs", data) if isinstance(data, dict) else data


def blender_output(output):
    return "\n".join(l for l in output.splitlines() if not l.startswith(("Fra:", "Warning: property")))


def run_scripted(args, env, zip_path, root, d):
    out = os.path.join(root, "out")
    os.makedirs(out)
    env = dict(env, KILN_TEST_OUT=out, KILN_TEST_REMOTE_URL=d.remote_url, KILN_TEST_REMOTE_TOKEN=d.remote_token,
               KILN_TEST_DATA_DIR=d.data_dir)
    for name in ("KILN_REMOTE", "KILN_TOKEN"):
        env.pop(name, None)  # the other cases use the local socket
    t0 = time.monotonic()
    cmd = ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
           "--python", os.path.join(HERE, "blender_cases.py"), "--", zip_path] + list(args.cases)
    code, output = run_group(cmd, env, args.timeout)
    lines = blender_output(output).splitlines()
    log("\n".join(lines[-80:]))
    check(code is not None, "Blender did not finish within %d s" % args.timeout)
    log("blender: exit %d in %.1f s" % (code, time.monotonic() - t0))
    path = os.path.join(out, "result.json")
    check(os.path.exists(path), "the cases wrote no result (Blender failed to run them)")
    with open(path) as f:
        result = json.load(f)
    for failure in result["failed"]:
        log("FAILED %s: %s\n%s" % (failure["name"], failure["error"], failure["traceback"]))
    check(not result["failed"], "%d case(s) failed in Blender" % len(result["failed"]))
    check(code == 0, "Blender exited with %d after the cases" % code)
    expected = list(args.cases) or CASES
    check(sorted(result["passed"]) == sorted(expected), "cases passed: %s" % result["passed"])
    return result


def check_daemon_state(result, d):
    """What kilnd holds after the cases, seen by another client (the CLI) and on disk."""
    jobs = kiln_jobs(d)
    if jobs is not None:
        mine = [j for j in jobs if str(j.get("client", "")).startswith("blender-addon")]
        check(mine, "kiln jobs list shows the add-on's jobs: %s" % sorted({str(j.get("client")) for j in jobs}))
        kinds = sorted({j.get("type") for j in mine})
        log("kiln jobs list: %d jobs from the Blender add-on (%s)" % (len(mine), ", ".join(kinds)))
    if "train" in result.get("passed", []):
        folder = os.path.join(d.data_dir, "datasets", "blender-style")
        images = [p for p in glob.glob(os.path.join(folder, "*_sks_style", "*.png")) if "_flip" not in p]
        check(len(images) == 2, "the kohya folder of the dataset holds the two renders (and the style preset's "
                                "mirrored copies): %s" % images)
        lora = os.path.join(d.data_dir, "loras", "blender-style", "blender-style.safetensors")
        check(os.path.exists(lora), "the LoRA file exists: %s" % lora)
        log("dataset: %d images; LoRA %s" % (len(images), lora))


def png_colours(path):
    if not shutil.which("identify"):
        return None
    r = subprocess.run(["identify", "-format", "%k %w %h", path], capture_output=True, text=True)
    check(r.returncode == 0, "identify could not read %s" % path)
    k, w, h = (int(v) for v in r.stdout.split())
    return k, w, h


def run_gui(args, env, zip_path, root, d):
    out = os.path.join(root, "out")
    os.makedirs(out)
    env = dict(env, KILN_TEST_OUT=out, KILN_TEST_ZIP=zip_path)
    shots = screenshot_dir(args)
    if shots:
        env["KILN_TEST_SCREENSHOT_DIR"] = os.path.abspath(shots)
    # The README's picture on Kiln Mini; the test itself on the tiny model.
    env["KILN_TEST_MODEL"] = MINI_NAME if shots else "tiny"
    t0 = time.monotonic()
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1440x900x24", "blender", "--factory-startup", "--enable-event-simulate",
           "--python", os.path.join(HERE, "gui_probe.py")]
    code, output = run_group(cmd, env, args.timeout)
    log("\n".join([l for l in blender_output(output).splitlines()
                   if "kiln" in l.lower() or "Traceback" in l or "Error" in l][-60:]))
    check(code is not None, "Blender did not finish within %d s" % args.timeout)
    log("blender GUI: exit %s in %.1f s" % (code, time.monotonic() - t0))
    path = os.path.join(out, "result.json")
    check(os.path.exists(path), "the GUI probe wrote no result; Blender's output:\n" + output[-3000:])
    with open(path) as f:
        result = json.load(f)
    log(json.dumps(result, indent=1))
    check(not result.get("errors"), "the GUI probe failed: %s" % result.get("errors"))
    for name, (min_w, min_h, min_colours) in (("panel.png", (200, 300, 16)), ("window.png", (800, 500, 64))):
        shot = os.path.join(out, name)
        check(os.path.exists(shot), "no screenshot %s" % name)
        colours = png_colours(shot)
        if colours:
            k, w, h = colours
            log("%s: %dx%d, %d colours" % (name, w, h, k))
            check(w >= min_w and h >= min_h, "%s is a usable size (%dx%d)" % (name, w, h))
            check(k >= min_colours, "%s is not blank (%d colours)" % (name, k))
    if args.artifacts:
        os.makedirs(args.artifacts, exist_ok=True)
        for name in ("panel.png", "window.png", "progress.png"):
            if os.path.exists(os.path.join(out, name)):
                shutil.copy(os.path.join(out, name), args.artifacts)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="build folder with python/kiln (and bin/kilnd)")
    ap.add_argument("--timeout", type=int, help="seconds Blender may run (default 600 scripted, 300 gui)")
    ap.add_argument("--artifacts", help="copy screenshots here (gui)")
    ap.add_argument("--screenshot-dir", help="the GUI probe also writes the README screenshot here")
    ap.add_argument("mode", choices=["scripted", "gui"])
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    if args.timeout is None:
        args.timeout = 600 if args.mode == "scripted" else 300

    if not shutil.which("blender"):
        log("SKIP: Blender is not installed (Debian: apt install blender); the Blender host tests need it")
        return SKIP
    if args.mode == "gui" and not shutil.which("xvfb-run"):
        log("SKIP: xvfb-run is not installed (apt install xvfb xauth); the Blender GUI test needs it")
        return SKIP
    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "python"))
    os.environ.setdefault("KILN_TEST_KILND", os.path.join(build, "bin", "kilnd"))

    root = tempfile.mkdtemp(prefix="kb-", dir="/tmp")
    t0 = time.monotonic()
    try:
        zip_path = build_zip(build, root)
        mini = args.mode == "gui" and screenshot_dir(args) is not None
        if mini:
            check(os.path.isfile(mini_model_path()), "README screenshots need Kiln Mini at %s (or set "
                  "KILN_TEST_MINI_MODEL)" % mini_model_path())
            log("screenshots: on Kiln Mini (%s)" % mini_model_path())
        d = start_daemon(mini)
        try:
            env = profile_env(root, d.socket)
            if args.mode == "scripted":
                result = run_scripted(args, env, zip_path, root, d)
                check_daemon_state(result, d)
            else:
                run_gui(args, env, zip_path, root, d)
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
