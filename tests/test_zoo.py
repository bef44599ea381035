"""The reference zoo reproduces the papers' sizes at the papers' settings (512x512, 150 classes)."""

import json

import pytest

from mobileseg.search.reference_choice import REFERENCES, reference_files
from mobileseg.summary import summarize

PUBLISHED_SEAFORMER = {  # (params M, GMACs) from the SeaFormer paper / official README, ADE20K 512x512
    "seaformer_tiny": (1.7, 0.6), "seaformer_small": (4.0, 1.1),
    "seaformer_base": (8.6, 1.8), "seaformer_large": (14.0, 6.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED_SEAFORMER))
def test_seaformer_matches_the_paper(name):
    params, macs = PUBLISHED_SEAFORMER[name]
    summary = summarize(str(REFERENCES / f"{name}.yaml"), num_classes=150, input_size=(512, 512))
    assert summary["params"] == pytest.approx(params * 1e6, rel=0.10)
    assert summary["macs"] == pytest.approx(macs * 1e9, rel=0.15)


@pytest.mark.slow
def test_segformer_b0_matches_keras_hub():
    import keras_hub

    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=[2, 2, 2, 2], num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2], hidden_dims=[32, 64, 160, 256], image_shape=(512, 512, 3))
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=256)
    theirs = keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=150).count_params()
    ours = summarize(str(REFERENCES / "segformer_b0.yaml"), num_classes=150, input_size=(512, 512))
    assert ours["params"] == pytest.approx(theirs, rel=0.05)
    assert ours["macs"] == pytest.approx(8.4e9, rel=0.15)  # SegFormer paper: 8.4 GFLOPs at 512x512


def test_every_reference_the_issue_names_is_there():
    names = {path.stem for path in reference_files()}
    assert names >= {"seaformer_tiny", "seaformer_small", "seaformer_base", "seaformer_large", "rtformer_slim",
                     "rtformer_base", "segformer_b0", "mobilenetv3_small_lraspp", "mobilenetv3_large_lraspp",
                     "hyctas_lattice", "fasterseg_lattice"}


@pytest.mark.slow
def test_zoo_cli_writes_a_table_and_json(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "zoo.json"
    arch = REFERENCES / "mobilenetv3_small_lraspp.yaml"
    result = subprocess.run([sys.executable, "-m", "mobileseg.zoo", "--arch", str(arch), "--input_size", "64x96",
                             "--num_classes", "4", "--clock", "thread_cpu", "--json_out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| mobilenetv3_small_lraspp |" in result.stdout and "thread_cpu clock" in result.stdout
    assert json.loads(out.read_text())["clock"] == "thread_cpu"
    row = json.loads(out.read_text())["rows"][0]
    assert row["int8"]["median_ms"] > 0 and row["fp32"]["median_ms"] > 0
    missing = subprocess.run([sys.executable, "-m", "mobileseg.zoo", "--arch", str(tmp_path / "no.yaml")],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "no such genotype file" in missing.stderr
    threads = subprocess.run([sys.executable, "-m", "mobileseg.zoo", "--arch", str(arch), "--clock", "thread_cpu",
                              "--threads", "2"], capture_output=True, text=True)
    assert threads.returncode == 1 and "give --threads 1" in threads.stderr
