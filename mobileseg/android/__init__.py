"""Android benchmark harness: drive ``benchmark_model`` on adb-connected phones.

- `adb_client`: adb with classified errors, timeouts and bounded retries (what adb prints: `adb_output`);
- `benchmark_output`: a parser for every output format ``benchmark_model`` has had;
- `device_benchmark`: one phone (`AndroidDevice`), one measurement (`measure_on_device`);
- `multi_device`: several models on several phones in parallel (`benchmark_on_devices`);
- `script_output`: what the device script printed, and the result or error it means;
- `table`: the comparison table (`format_table`);
- `device_profiles`: known phones' big-core masks (``android_bench/devices.yaml``);
- `errors`: the exception hierarchy, rooted at `AndroidBenchError`.

The device side (the script pushed to the phone) is in ``android_bench/``.
"""

from mobileseg.android.device_benchmark import AndroidDevice, measure_on_device
from mobileseg.android.errors import (AdbError, AndroidBenchError, BenchmarkError, DeviceLost)
from mobileseg.android.multi_device import benchmark_on_devices
from mobileseg.android.table import format_table

__all__ = ["AdbError", "AndroidBenchError", "AndroidDevice", "BenchmarkError", "DeviceLost",
           "benchmark_on_devices", "format_table", "measure_on_device"]
