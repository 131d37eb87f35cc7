"""``bench/bench_models.py``: its hardware figures against counts made without the stages'
timing, and its LiteRT figures on a small model."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from rasterflow.tflite_import import load_tflite

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "tflite"
MODEL = DATA / "mobile_block_40.tflite"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_models",
                                                  ROOT / "bench" / "bench_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def golden_macs(model):
    """MACs per frame from the golden layers alone: a MAC layer does one product per weight
    for each output pixel (its weights' size x the output pixels of running it; a dense
    layer's ``[N, C]`` output is one pixel)."""
    frames = {"input": np.zeros(model.input_shape, np.int8)}
    total = 0
    for node in model.nodes:
        frames[node.name] = out = node.layer(*(frames[name] for name in node.inputs))
        weights = getattr(node.layer, "weights", None)
        if weights is not None:
            total += weights.size * int(np.prod(out.shape[1:-1]))
    return total


@pytest.mark.parametrize("fold, board", [(False, "ulx3s-85f"), (True, "ulx3s-85f"),
                                         (True, "icebreaker")])
def test_hardware_figures_match_independent_counts(tmp_path, fold, board):
    pipeline, folding, refusal = bench.import_fixture(MODEL, tmp_path, board=board, fold=fold,
                                                      cycles_per_pixel=4)
    assert refusal is None
    assert folding == (f"folded for {board}" if fold else
                       "import default (balanced for 4 cycles per input pixel)")
    figures = bench.hardware_figures(pipeline, board, 50e6)
    macs = golden_macs(load_tflite(MODEL))
    # conv 3x3x3 -> 8 stride 2, depthwise 3x3 x 8, conv 1x1 8 -> 16, all on 20 x 20 outputs.
    assert macs == (8 * 27 + 9 * 8 + 16 * 8) * 20 * 20
    assert figures["macs_per_frame"] == macs
    assert figures["multipliers"] == sum(t.multipliers for t in pipeline.timings().values()) > 0
    cycles = figures["cycles_per_frame"]
    assert cycles == pipeline.frame_cycles
    assert figures["mac_utilization"] == pytest.approx(macs / (figures["multipliers"] * cycles))
    assert 0 < figures["mac_utilization"] <= 1
    assert figures["fps"] == pytest.approx(50e6 / cycles)
    assert figures["gmac_per_s"] == pytest.approx(macs * 50e6 / cycles / 1e9)
    assert figures["latency_cycles"] == pipeline.latency_cycles
    assert figures["estimate"]["board"] == board
    if fold:
        assert figures["estimate"]["fits"] and not figures["estimate"]["overruns"]


def test_litert_figures_on_the_fixture(tmp_path):
    inputs = np.load(DATA / "mobile_block_40_input.npy")
    expected = np.load(DATA / "mobile_block_40_expected.npy")
    figures = bench.litert_figures(MODEL, inputs, [expected], seconds=0.02, threads=2)
    assert figures["ref_equals_fixture"] is True
    assert figures["ref_inf_s"] > 0 and figures["xnnpack_1_inf_s"] > 0 and \
        figures["xnnpack_n_inf_s"] > 0
    assert figures["frames_compared"] == len(inputs) == 2
    assert figures["output_values"] == expected.size
    assert 0 <= figures["xnnpack_mismatches"] <= expected.size
    # A wrong expectation is caught.
    flipped = expected.copy()
    flipped.flat[0] ^= 1
    assert bench.litert_figures(MODEL, inputs, [flipped], seconds=0.01,
                                threads=1)["ref_equals_fixture"] is False


def test_build_reports_give_each_model_its_clock(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"fmax_mhz": 61.25, "board": "ulx3s-85f"}))
    assert bench.parse_build_reports([f"a={report}"], ["a", "b"]) == {"a": (61.25, str(report))}
    with pytest.raises(ValueError, match="MODEL one of a, b"):
        bench.parse_build_reports([f"c={report}"], ["a", "b"])
    with pytest.raises(ValueError, match="no fmax_mhz"):
        bench.parse_build_reports([f"a={tmp_path / 'missing.json'}"], ["a"])


def test_main_writes_the_table_and_reports_a_model_it_cannot_import(tmp_path, monkeypatch,
                                                                    capsys):
    real_import = bench.import_model

    def refusing_import(model_path, spec, **kwargs):
        if Path(model_path).stem == "mnv2_small_64":
            raise bench.InputError("cannot be a stage: for this test")
        return real_import(model_path, spec, **kwargs)

    monkeypatch.setattr(bench, "import_model", refusing_import)
    assert bench.main(["--models", "mnv2_small_64,mnv1_025_64_floatio", "--seconds", "0.01",
                       "--threads", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "mnv2_small_64: no hardware figures: cannot be a stage: for this test" in printed
    rows = {row["model"]: row for row in
            json.loads((tmp_path / "models.json").read_text())["models"]}
    assert rows["mnv2_small_64"]["skipped"] == "cannot be a stage: for this test"
    assert "macs_per_frame" not in rows["mnv2_small_64"]
    assert rows["mnv2_small_64"]["litert"]["ref_equals_fixture"] is True
    floatio = rows["mnv1_025_64_floatio"]
    assert floatio["clock_source"] == "reference" and floatio["clock_mhz"] == 100
    assert floatio["fps"] == pytest.approx(100e6 / floatio["cycles_per_frame"])
    assert floatio["litert"]["ref_equals_fixture"] is True
    page = (tmp_path / "models.md").read_text()
    assert f"| mnv1_025_64_floatio | {floatio['macs_per_frame']:,} |" in page
    assert "- mnv2_small_64: not imported, so no hardware figures" in page


@pytest.mark.parametrize("name", [entry["name"] for entry in bench.manifest()])
def test_whole_model_macs_match_the_golden_layers(tmp_path, name):
    model = bench.FIXTURES / f"{name}.tflite"
    pipeline, _, _ = bench.import_fixture(model, tmp_path, board="ulx3s-85f", fold=False,
                                          cycles_per_pixel=4)
    figures = bench.hardware_figures(pipeline, "ulx3s-85f", 100e6)
    assert figures["macs_per_frame"] == golden_macs(load_tflite(model))
    assert figures["cycles_per_frame"] == pipeline.frame_cycles


def test_a_model_that_does_not_fit_keeps_the_import_folding(tmp_path):
    pipeline, folding, refusal = bench.import_fixture(
        bench.FIXTURES / "mnv2_small_64.tflite", tmp_path, board="ulx3s-85f", fold=True,
        cycles_per_pixel=2)
    assert folding == "import default (balanced for 2 cycles per input pixel)"
    assert refusal.startswith("not folded for ulx3s-85f, which it does not fit even at "
                              "pe = simd = 1: logic needs about")
    assert bench.hardware_figures(pipeline, "ulx3s-85f", 100e6)["cycles_per_frame"] == \
        2 * 64 * 64
