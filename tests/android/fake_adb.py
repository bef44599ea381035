#!/usr/bin/env python3
"""A fake ``adb`` that emulates one or more Android phones and their faults, for the tests.

The tests put a two-line ``adb`` wrapper first on PATH that runs this file. Its behaviour
comes from the JSON state file named by ``$FAKE_ADB_STATE`` (written by
``tests/android/fake_phone.py``):

    {"root": DIR, "devices": [{"serial", "state", "props", "faults", "outputs", ...}], ...}

Each phone has a folder ``DIR/<serial>`` that stands for its file system: device paths
under ``/data`` and ``/sys`` map into it, and ``DIR/<serial>/bin`` holds the phone's own
``taskset`` and ``sleep``. ``adb shell sh SCRIPT ...`` really runs the script with a local
POSIX shell (``$FAKE_ADB_SH``, default ``sh``), so the device script is exercised as it is
on a phone; ``benchmark_model`` on the fake phone is ``fake_benchmark_model.py``.

Answered like real adb (messages and exit codes of platform-tools 34/35):

- ``adb devices [-l]``, ``adb get-state``;
- ``adb [-s SERIAL] push LOCAL REMOTE`` (with ``N file pushed`` / ``adb: error: ...``);
- ``adb [-s SERIAL] shell CMD``: ``getprop [KEY]``, ``mkdir -p``, ``rm -f``, ``chmod``,
  ``stat -c %s``, ``sh SCRIPT ARGS``; anything else is "inaccessible or not found" (exit 127);
- errors: ``adb: device 'S' not found``, ``adb: device unauthorized.`` (+ hints),
  ``adb: device offline``, ``adb: more than one device/emulator``,
  ``adb: no devices/emulators found`` (``error: `` instead of ``adb: `` when the state says
  ``"messages": "old"``, as adb printed before platform-tools 31), ``error: closed``.

Faults (``device["faults"]``): ``offline_times`` (the first N commands fail with
``error: device offline``), ``vanish_after_commands`` (the phone disappears after N
commands), ``push_fails`` (message; optionally only for names containing
``push_fails_matching``), ``push_short`` (the pushed file arrives cut in half),
``cut_after_lines`` + ``cut_times`` (a shell's output stops after N lines with
``error: closed``, the given number of times), ``vanish_during_benchmark`` (the phone
disappears after printing that many lines of a benchmark run, of the first run whose
model name contains ``vanish_graph`` when given), ``shell_hangs_s`` (every
shell command hangs that long first). ``killed_after_lines``, ``gpu_fails`` and
``delay_s`` are read by fake_benchmark_model.py.

Every command is appended to ``DIR/adb_calls.jsonl`` so tests can check what was run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

UNAUTHORIZED_HINT = ("This adb server's $ADB_VENDOR_KEYS is not set\n"
                     "Try 'adb kill-server' if that seems wrong.\n"
                     "Otherwise check for a confirmation dialog on your device.\n")


def load_state() -> dict:
    with open(os.environ["FAKE_ADB_STATE"]) as file:
        return json.load(file)


@contextlib.contextmanager
def counters(root: str, serial: str):
    """The phone's mutable counters (commands run, faults used), locked while in use."""
    folder = os.path.join(root, serial)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ".fake_counters.json")
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = {}
        if os.path.exists(path):
            with open(path) as file:
                data = json.load(file)
        try:
            yield data
        finally:  # kept even when the command ends with an adb error (sys.exit)
            with open(path, "w") as file:
                json.dump(data, file)


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(message if message.endswith("\n") else message + "\n")
    sys.exit(code)


def device_error(state: dict, text: str) -> None:
    """A device-selection error as adb words it: ``adb: ...`` since platform-tools 31,
    ``error: ...`` before (state["messages"] == "old")."""
    prefix = "error: " if state.get("messages") == "old" else "adb: "
    fail(prefix + text)


def present(state: dict) -> list[dict]:
    """Devices still plugged in."""
    out = []
    for device in state["devices"]:
        with counters(state["root"], device["serial"]) as count:
            if not count.get("vanished"):
                out.append(device)
    return out


def cmd_devices(state: dict, long: bool) -> None:
    print("List of devices attached")
    for index, device in enumerate(present(state), start=1):
        line = f"{device['serial']:<22} {device['state']}" if long else \
            f"{device['serial']}\t{device['state']}"
        if long:
            props = device.get("props", {})
            attrs = [f"usb:1-{index}"]
            if device["state"] == "device":
                attrs += [f"product:{props.get('ro.product.name', 'x')}",
                          f"model:{props.get('ro.product.model', 'x').replace(' ', '_')}",
                          f"device:{props.get('ro.product.device', 'x')}"]
            attrs.append(f"transport_id:{index}")
            line += " " + " ".join(attrs)
        print(line)
    print()


def device_path(state: dict, serial: str, path: str) -> str:
    """Where a device path lives in the fake phone's folder."""
    return os.path.join(state["root"], serial, path.lstrip("/"))


def map_arg(state: dict, serial: str, arg: str) -> str:
    for prefix in ("/data/", "/sys/"):
        if arg.startswith(prefix):
            return device_path(state, serial, arg)
        if arg.startswith("--") and "=" + prefix in arg:
            key, value = arg.split("=", 1)
            return f"{key}={device_path(state, serial, value)}"
    return arg


def unmap(state: dict, serial: str, text: str) -> str:
    return text.replace(os.path.join(state["root"], serial), "")


def cmd_push(state: dict, device: dict, local: str, remote: str) -> None:
    faults = device.get("faults", {})
    if not os.path.exists(local):
        fail(f"adb: error: cannot stat '{local}': No such file or directory")
    target = device_path(state, device["serial"], remote)
    if remote.endswith("/") or os.path.isdir(target):
        target = os.path.join(target, os.path.basename(local))
    message = faults.get("push_fails")
    if message and faults.get("push_fails_matching", "") in os.path.basename(local):
        fail(f"adb: error: failed to copy '{local}' to '{remote}': remote {message}")
    if not os.path.isdir(os.path.dirname(target)):
        fail(f"adb: error: failed to copy '{local}' to '{remote}': remote "
             "couldn't create file: No such file or directory")
    with open(local, "rb") as file:
        data = file.read()
    if faults.get("push_short"):
        data = data[:len(data) // 2]
    with open(target, "wb") as file:
        file.write(data)
    shutil.copymode(local, target)
    print(f"{local}: 1 file pushed, 0 skipped. 41.2 MB/s ({len(data)} bytes in 0.001s)")


def run_script(state: dict, device: dict, argv: list[str]) -> None:
    serial = device["serial"]
    faults = device.get("faults", {})
    root = os.path.join(state["root"], serial)
    env = dict(os.environ)
    env["PATH"] = os.path.join(root, "bin") + os.pathsep + env.get("PATH", "")
    env["MOBILESEG_SYSFS"] = os.path.join(root, "sys")
    env["FAKE_SERIAL"] = serial
    mapped = [map_arg(state, serial, arg) for arg in argv[1:]]
    shell = os.environ.get("FAKE_ADB_SH", "sh")
    done = subprocess.run([shell, *mapped], env=env, capture_output=True)
    output = unmap(state, serial, done.stdout.decode("utf-8", "replace"))
    error = unmap(state, serial, done.stderr.decode("utf-8", "replace"))
    lines = output.splitlines(keepends=True)
    benchmark = any(arg.startswith("--graph") for arg in argv)
    with counters(state["root"], serial) as count:
        cut_left = faults.get("cut_times", 0) - count.get("cuts", 0)
        if faults.get("cut_after_lines") is not None and cut_left > 0 and benchmark:
            count["cuts"] = count.get("cuts", 0) + 1
            sys.stdout.write("".join(lines[:faults["cut_after_lines"]]))
            fail("error: closed")
        vanish_at = faults.get("vanish_during_benchmark")
        graph = next((arg for arg in argv if arg.startswith("/data/")
                      and arg.endswith(".tflite")), "")
        if vanish_at is not None and benchmark and faults.get("vanish_graph", "") in graph:
            count["vanished"] = True
            sys.stdout.write("".join(lines[:vanish_at]))
            fail("error: closed")
    sys.stdout.write(output)
    sys.stderr.write(error)
    sys.exit(done.returncode)


def cmd_shell(state: dict, device: dict, words: list[str]) -> None:
    serial = device["serial"]
    hang = device.get("faults", {}).get("shell_hangs_s")
    if hang:
        time.sleep(hang)
    argv = shlex.split(" ".join(words))
    if not argv:
        fail("error: interactive shell is not emulated")
    name = argv[0]
    if name == "getprop":
        props = device.get("props", {})
        if len(argv) > 1:
            print(props.get(argv[1], ""))
        else:
            for key in sorted(props):
                print(f"[{key}]: [{props[key]}]")
        return
    if name == "mkdir" and argv[1:2] == ["-p"]:
        for path in argv[2:]:
            os.makedirs(device_path(state, serial, path), exist_ok=True)
        return
    if name == "rm" and argv[1:2] == ["-f"]:
        for path in argv[2:]:
            target = device_path(state, serial, path)
            if os.path.isfile(target):
                os.remove(target)
        return
    if name == "chmod" and len(argv) == 3:
        target = device_path(state, serial, argv[2])
        if not os.path.exists(target):
            fail(f"chmod: {argv[2]}: No such file or directory")
        os.chmod(target, int(argv[1], 8))
        return
    if name == "stat" and argv[1:3] == ["-c", "%s"] and len(argv) == 4:
        target = device_path(state, serial, argv[3])
        if not os.path.isfile(target):
            fail(f"stat: '{argv[3]}': No such file or directory")
        print(os.path.getsize(target))
        return
    if name == "sh" and len(argv) >= 2:
        run_script(state, device, argv)
        return
    fail(f"/system/bin/sh: {name}: inaccessible or not found", 127)


def main(args: list[str]) -> None:
    state = load_state()
    with open(os.path.join(state["root"], "adb_calls.jsonl"), "a") as log:
        log.write(json.dumps(args) + "\n")
    serial = None
    while args and args[0] in ("-s", "-t", "-H", "-P"):
        if args[0] == "-s":
            serial = args[1]
        args = args[2:]
    if not args:
        fail("adb: usage: no command specified")
    command, rest = args[0], args[1:]
    if command == "devices":
        cmd_devices(state, "-l" in rest)
        return
    if command in ("start-server", "kill-server"):
        return

    plugged = present(state)
    if serial is None:
        if not plugged:
            device_error(state, "no devices/emulators found")
        if len(plugged) > 1:
            device_error(state, "more than one device/emulator")
        serial = plugged[0]["serial"]
    device = next((d for d in plugged if d["serial"] == serial), None)
    if device is None:
        device_error(state, f"device '{serial}' not found")

    faults = device.get("faults", {})
    with counters(state["root"], serial) as count:
        count["commands"] = count.get("commands", 0) + 1
        limit = faults.get("vanish_after_commands")
        if limit is not None and count["commands"] > limit:
            count["vanished"] = True
        vanished = count.get("vanished", False)
        offline_now = count["commands"] <= faults.get("offline_times", 0)
    if vanished:
        device_error(state, f"device '{serial}' not found")
    if device["state"] == "unauthorized":
        device_error(state, "device unauthorized.\n" + UNAUTHORIZED_HINT)
    if device["state"] == "offline" or offline_now:
        device_error(state, "device offline")
    if device["state"] != "device":
        device_error(state, f"device '{serial}' is in state {device['state']}")

    if command == "get-state":
        print(device["state"])
    elif command == "push" and len(rest) == 2:
        cmd_push(state, device, rest[0], rest[1])
    elif command == "shell":
        cmd_shell(state, device, rest)
    else:
        fail(f"adb: unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
