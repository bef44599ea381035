"""The adb client against the fake adb: device selection, every device fault, retries,
pushes with size checks, timeouts."""

from __future__ import annotations

import pytest

from mobileseg.android import errors
from mobileseg.android.adb_client import AdbClient
from mobileseg.android.adb_output import DeviceEntry, ShellResult
from tests.android.fake_phone import PRESETS

PIXEL = PRESETS["pixel7"]["serial"]
S23 = PRESETS["galaxy_s23"]["serial"]


def client(**kwargs) -> AdbClient:
    kwargs.setdefault("backoff_s", 0.0)
    return AdbClient("adb", **kwargs)


def test_no_adb_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(errors.AdbNotFoundError, match="install Android platform-tools"):
        AdbClient()


def test_no_device(fake_adb):
    with pytest.raises(errors.NoDeviceError, match="USB debugging"):
        client().select_devices(None)


def test_one_device_is_chosen_without_serial(fake_adb):
    fake_adb.add_phone("pixel7")
    adb = client()
    assert adb.select_devices(None) == [PIXEL]
    entry = adb.devices()[0]
    assert entry == DeviceEntry(PIXEL, "device", {"usb": "1-1", "product": "panther",
                                                  "model": "Pixel_7", "device": "panther",
                                                  "transport_id": "1"})


def test_several_devices_need_a_serial(fake_adb):
    fake_adb.add_phone("pixel7")
    fake_adb.add_phone("galaxy_s23")
    with pytest.raises(errors.MultipleDevicesError, match="pass --serial") as info:
        client().select_devices(None)
    assert info.value.serials == [PIXEL, S23]
    assert client().select_devices([S23, PIXEL, S23]) == [S23, PIXEL]


def test_unknown_serial(fake_adb):
    fake_adb.add_phone("pixel7")
    with pytest.raises(errors.DeviceNotFoundError, match=f"connected: {PIXEL}"):
        client().select_devices(["NOPE123"])


def test_unauthorized_device(fake_adb):
    fake_adb.add_phone("pixel7", state="unauthorized")
    with pytest.raises(errors.DeviceUnauthorizedError,
                       match=f"device {PIXEL} is unauthorized: accept the USB debugging prompt"):
        client().select_devices(None)
    # A command sent to it anyway gets the same clear error, not a generic failure.
    with pytest.raises(errors.DeviceUnauthorizedError):
        client().shell(PIXEL, "getprop")


def test_offline_device_is_looked_up_again_then_reported(fake_adb):
    fake_adb.add_phone("pixel7", state="offline")
    sleeps = []
    adb = AdbClient("adb", retries=3, backoff_s=0.5, sleep=sleeps.append)
    with pytest.raises(errors.DeviceOfflineError, match="adb reconnect offline"):
        adb.select_devices([PIXEL])
    assert sleeps == [0.5, 1.0]  # bounded: 3 looks, exponential backoff
    assert sum(call == ["devices", "-l"] for call in fake_adb.adb_calls()) == 3


def test_no_permissions_state(fake_adb):
    fake_adb.add_phone("pixel7", state="no permissions (missing udev rules? user is in the "
                                        "plugdev group); see [http://developer.android.com/"
                                        "tools/device.html]")
    assert client().devices()[0].state == "no permissions"
    with pytest.raises(errors.DeviceNoPermissionError, match="udev rule"):
        client().select_devices(None)


def test_recovery_state(fake_adb):
    fake_adb.add_phone("pixel7", state="recovery")
    with pytest.raises(errors.DeviceStateError, match="reboot it into Android"):
        client().select_devices(None)


def test_transient_offline_is_retried(fake_adb):
    fake_adb.add_phone("pixel7", faults={"offline_times": 2})
    sleeps = []
    adb = AdbClient("adb", retries=3, backoff_s=0.25, sleep=sleeps.append)
    assert adb.getprop(PIXEL)["ro.product.model"] == "Pixel 7"
    assert sleeps == [0.25, 0.5]


def test_offline_beyond_the_retries(fake_adb):
    fake_adb.add_phone("pixel7", faults={"offline_times": 10})
    adb = client(retries=3)
    with pytest.raises(errors.DeviceOfflineError):
        adb.shell(PIXEL, "getprop")
    shells = [call for call in fake_adb.adb_calls() if "shell" in call]
    assert len(shells) == 3


def test_device_that_disappears_is_lost(fake_adb):
    fake_adb.add_phone("pixel7", faults={"vanish_after_commands": 1})
    adb = client()
    assert adb.select_devices(None) == [PIXEL]
    assert adb.getprop(PIXEL)["ro.soc.model"] == "GS201"
    with pytest.raises(errors.DeviceLost, match="results measured before this point are kept"):
        adb.shell(PIXEL, ["stat", "-c", "%s", "/data/local/tmp/x"], during="checking x")


def test_old_adb_wording_is_understood(fake_adb):
    fake_adb.messages = "old"  # "error: device 'X' not found" instead of "adb: device ..."
    fake_adb.add_phone("pixel7", faults={"vanish_after_commands": 0})
    adb = client()
    adb.devices()
    with pytest.raises(errors.DeviceLost):
        adb.getprop(PIXEL)


def test_getprop_and_shell_quoting(fake_adb):
    fake_adb.add_phone("galaxy_s23")
    adb = client()
    props = adb.getprop(S23)
    assert props["ro.board.platform"] == "kalama"
    assert props["ro.product.cpu.abilist"] == "arm64-v8a,armeabi-v7a,armeabi"
    adb.shell(S23, ["mkdir", "-p", "/data/local/tmp/a dir"])
    assert (fake_adb.phone_dir(S23) / "data/local/tmp/a dir").is_dir()
    # A remote command that fails by itself is returned, not raised.
    result = adb.shell(S23, ["stat", "-c", "%s", "/data/local/tmp/none"])
    assert result.returncode == 1 and "No such file" in result.stderr
    assert adb.shell(S23, "frobnicate").returncode == 127


def test_push_checks_the_size(fake_adb, tmp_path):
    fake_adb.add_phone("pixel7")
    local = tmp_path / "model name.tflite"
    local.write_bytes(b"x" * 1234)
    adb = client()
    assert adb.push(PIXEL, local, "/data/local/tmp/m.tflite") == 1234
    assert (fake_adb.phone_dir(PIXEL) / "data/local/tmp/m.tflite").read_bytes() == b"x" * 1234
    assert adb.file_size(PIXEL, "/data/local/tmp/m.tflite") == 1234
    assert adb.file_size(PIXEL, "/data/local/tmp/none.tflite") is None


def test_push_failure(fake_adb, tmp_path):
    fake_adb.add_phone("pixel7", faults={"push_fails": "No space left on device"})
    local = tmp_path / "m.tflite"
    local.write_bytes(b"x" * 10)
    with pytest.raises(errors.PushError, match="No space left on device; check free space") as e:
        client().push(PIXEL, local, "/data/local/tmp/m.tflite")
    assert e.value.remote == "/data/local/tmp/m.tflite" and e.value.serial == PIXEL


def test_push_that_arrives_short(fake_adb, tmp_path):
    fake_adb.add_phone("pixel7", faults={"push_short": True})
    local = tmp_path / "m.tflite"
    local.write_bytes(b"x" * 1000)
    with pytest.raises(errors.PushError, match="1000 bytes here, 500 bytes on the device"):
        client().push(PIXEL, local, "/data/local/tmp/m.tflite")


def test_push_to_a_folder_that_does_not_exist(fake_adb, tmp_path):
    fake_adb.add_phone("pixel7")
    local = tmp_path / "m.tflite"
    local.write_bytes(b"x")
    with pytest.raises(errors.PushError, match="couldn't create file"):
        client().push(PIXEL, local, "/data/local/tmp/no/such/dir/m.tflite")


def test_timeout(fake_adb):
    fake_adb.add_phone("pixel7", faults={"shell_hangs_s": 5})
    with pytest.raises(errors.AdbTimeoutError, match="did not finish within 0.5 s"):
        client().shell(PIXEL, "getprop", timeout_s=0.5)


def test_adb_message_ignores_remote_errors():
    remote = ShellResult("", "stat: '/x': No such file or directory\n", 1)
    assert remote.adb_message() == ""
    closed = ShellResult("partial output\n", "error: closed\n", 1)
    assert closed.adb_message() == "error: closed"
