"""Machine facts recorded with results: the CPU model read from cpuinfo."""

from mobileseg import provenance


def test_cpu_model_x86(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
    assert provenance.cpu_model(str(path)) == "AMD EPYC 7B13"


def test_cpu_model_arm(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nBogoMIPS\t: 38.40\nCPU part\t: 0xd05\n\n"
                    "Hardware\t: Qualcomm Technologies, Inc SM8250\n")
    assert provenance.cpu_model(str(path)) == "Qualcomm Technologies, Inc SM8250"


def test_cpu_model_without_cpuinfo(tmp_path):
    assert provenance.cpu_model(str(tmp_path / "absent"))
