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


def _cpu(tmp_path, cpuinfo, caches):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    for index, (level, kind, size) in enumerate(caches):
        folder = tmp_path / "cache" / f"index{index}"
        folder.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(f"{value}\n")
    return provenance.cpu_id(str(tmp_path / "cpuinfo"), str(tmp_path / "cache"))


def test_cpu_id_tells_apart_two_xeons_that_share_a_model_name(tmp_path):
    cpuinfo = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: {model}\n"
               "model name\t: Intel(R) Xeon(R) Processor\nstepping\t: {stepping}\n"
               "flags\t\t: fpu sse avx2 avx512f avx512_vnni {extra}\n\nprocessor\t: 1\nflags\t\t: other\n")
    sapphire = _cpu(tmp_path / "a", cpuinfo.format(model=143, stepping=8, extra="avx512_bf16 amx_int8 amx_bf16"),
                    [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"), (3, "Unified", "107520K")])
    ice = _cpu(tmp_path / "b", cpuinfo.format(model=106, stepping=6, extra=""),
               [(1, "Data", "48K"), (2, "Unified", "1280K"), (3, "Unified", "55296K")])
    assert sapphire == ("GenuineIntel family 6 model 143 stepping 8; L1d 48K L1i 32K L2 2048K L3 107520K; "
                        "avx2 avx512f avx512_vnni avx512_bf16 amx_int8 amx_bf16")
    assert ice == "GenuineIntel family 6 model 106 stepping 6; L1d 48K L2 1280K L3 55296K; avx2 avx512f avx512_vnni"


def test_cpu_id_of_an_arm_core_and_of_nothing(tmp_path):
    arm = _cpu(tmp_path, "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm bf16\nCPU implementer\t: 0x41\n"
                         "CPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd0c\nCPU revision\t: 1\n", [])
    assert arm == "implementer 0x41 architecture 8 variant 0x1 part 0xd0c revision 1; asimddp i8mm bf16"
    assert provenance.cpu_id(str(tmp_path / "absent"), str(tmp_path / "absent")) == ""
