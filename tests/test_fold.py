"""Folding CNN specs onto a board (``rasterflow.fold``, ``rasterflow fold``, ``import
--board``) and refusing, before any tool runs, designs that cannot fit.

The cost model's sizes are checked against the hardware itself (memories and products in the
RTLIL of whole pipelines, the DSP count of the one measured CNN build); the folding against
its contract: within the budget per the model, every MAC layer within the frame budget, the
next smaller budget not fitting, at least as fast as the import's default folding whenever
that fits; and the errors name the resource and by how much.
"""
import dataclasses
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil

from rasterflow.boards import build as board_build
from rasterflow.boards.build import DesignDoesNotFit, rtlil_memories, rtlil_multipliers
from rasterflow.boards.platforms import get_board
from rasterflow.cli import main
from rasterflow.cli_import import import_model
from rasterflow.fold import (DoesNotFit, MemoryNeed, assess, certain_overruns, fold, place_memory,
                             refolded, stage_costs)
from rasterflow.spec import load_spec
from test_tflite_import import conv_model, conv_options

OPERATOR_DATA = Path(__file__).parent / "data" / "tflite"
MODEL_DATA = Path(__file__).parent / "data" / "tflite2"
EXAMPLES = Path(__file__).parent.parent / "examples"
BOARDS = ["ulx3s-85f", "icebreaker"]
OPERATOR_MODELS = ["yolo_block_64", "mobile_block_40", "yolo_pool_s1_26", "yolo_two_blocks_32"]
WHOLE_MODELS = {"mnv1_025_96g": None, "mnv2_small_64": None, "mnv1_025_64_floatio": None,
                "yolov3_tiny_w025_128": None}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """``imported(name)``: the pipeline ``rasterflow import`` makes of a fixture (default
    folding), imported once."""
    folder = tmp_path_factory.mktemp("specs")
    cache = {}

    def get(name):
        if name not in cache:
            path = (OPERATOR_DATA if name in OPERATOR_MODELS else MODEL_DATA) / f"{name}.tflite"
            cache[name] = import_model(path, folder / f"{name}.toml",
                                       layers=WHOLE_MODELS.get(name))
        return cache[name]
    return get


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    """A 3x3 conv of 256 -> 256 channels on 4x4 frames with random weights: 4.5 Mbit of
    weights, more than the ULX3S's 3.66 Mbit of block RAM. Returns the model's path and its
    imported pipeline."""
    folder = tmp_path_factory.mktemp("big")
    path = folder / "big.tflite"
    path.write_bytes(conv_model(np.random.default_rng(7), [1, 4, 4, 256], 256, 3, conv_options(),
                                [1, 4, 4, 256]))
    return path, import_model(path, folder / "big.toml")


def most_folded(pipeline):
    """``pipeline`` with every MAC stage at ``pe = simd = 1``."""
    return refolded(pipeline, {b.name: dataclasses.replace(b.stage, pe=1, simd=1)
                               for b in pipeline.bound if getattr(b.stage, "folding", None)})


def at_budget(pipeline, budget):
    """``pipeline`` with each MAC stage at its ``balanced_folding`` for ``budget`` cycles
    per frame (0: the full arrays)."""
    stages = {}
    for b in pipeline.bound:
        if getattr(b.stage, "folding", None):
            pe, simd = b.stage.balanced_folding(b.stage.layer, b.out_width * b.out_height,
                                                budget)
            stages[b.name] = dataclasses.replace(b.stage, pe=pe, simd=simd)
    return refolded(pipeline, stages)


def check_folding(pipeline, board):
    """Fold ``pipeline`` onto ``board`` and check the result's contract; returns the
    :class:`Folding`, or the :class:`DoesNotFit` raised (after checking that the most
    folded design indeed does not fit, with those very reasons)."""
    try:
        folding = fold(pipeline, board)
    except DoesNotFit as error:
        overruns = assess(most_folded(pipeline), board).usage.overruns()
        assert overruns and error.overruns == overruns
        assert "even with every MAC layer at pe = simd = 1" in str(error)
        return error
    report = folding.report
    budget = get_board(board).budget
    usage = report.usage
    assert usage.dsp <= budget["dsp"] and usage.bram <= budget["bram"]
    assert usage.logic <= budget["logic"]
    # The report is the folded pipeline's own assessment.
    assert assess(folding.pipeline, board) == report
    # Balanced: every MAC layer within the frame budget, which is at least one input pixel
    # per cycle; the stages' own timings say so.
    frame = report.frame_cycles
    assert frame >= pipeline.width * pipeline.height
    for b in folding.pipeline.bound:
        assert b.out_width * b.out_height * b.stage.timing(b).initiation_interval <= frame
    assert report.layers and all(layer.cycles <= frame for layer in report.layers)
    for b in folding.pipeline.bound:
        if b.name in folding.stages:
            assert b.stage.folding == (folding.stages[b.name].pe, folding.stages[b.name].simd)
    # The smallest budget that fits: one cycle less does not, unless nothing is faster (the
    # full arrays' cycles per frame, set by the input and the stages without MAC arrays).
    if frame > assess(at_budget(pipeline, 0), board).frame_cycles:
        assert not assess(at_budget(pipeline, frame - 1), board).fits
    # At least as fast as the import's default folding when that fits.
    default = assess(pipeline, board)
    if default.fits:
        assert frame <= default.frame_cycles
    return folding


# --- the cost model against the hardware --------------------------------------------------------

@pytest.mark.parametrize("spec", [OPERATOR_DATA / "mobile_block_40", EXAMPLES / "dog"],
                         ids=["mobile_block_40", "dog"])
def test_memories_and_products_match_the_hardware(spec, imported):
    """Every memory bit and variable product the model counts is in the pipeline's RTLIL:
    MAC weight and parameter ROMs, line buffers (shared ones once), skew FIFOs."""
    pipeline = imported(spec.name) if spec.name in OPERATOR_MODELS else \
        load_spec(spec.with_suffix(".toml"))
    text = rtlil.convert(pipeline.hardware())
    memories = rtlil_memories(text)
    costs = stage_costs(pipeline)
    modelled = [m for cost in costs for m in cost.memories]
    assert sum(m.bits for m in modelled if not m.rom) == \
        sum(bits for _, _, bits, rom in memories if not rom)
    assert sum(m.bits for m in modelled if m.rom) == \
        sum(bits for _, name, bits, rom in memories if name in ("weight_rom", "param_rom"))
    variable = [m for m in rtlil_multipliers(text) if m.constant is None]
    assert sum(count for cost in costs for _, _, count in cost.products) == len(variable)


def test_dsp_blocks_match_the_measured_build(imported):
    """bench/results: the YOLOv3-tiny block (conv pe 4 x simd 27, LeakyReLU, pool) took 124
    DSP blocks on the ULX3S: 108 products and 4 requantizers of 4 blocks."""
    pipeline = imported("yolo_block_64")
    usage = assess(pipeline, "ulx3s-85f").usage
    assert (usage.dsp, usage.products_on_dsp, usage.products_in_luts) == (124, 112, 0)
    usage = assess(pipeline, "icebreaker").usage
    # 8 SB_MAC16: two requantizers (most LUT bits per block first), the rest in LUTs.
    assert (usage.dsp, usage.products_on_dsp, usage.products_in_luts) == (8, 2, 110)


@pytest.mark.parametrize("memory,family,placed", [
    # 4 x 864-bit weight ROM: LUTs (Yosys: 3456 / 16 is cheaper than 24 blocks).
    (MemoryNeed("weights", 864, 4, rom=True), "ecp5", (0, 864)),
    # 8-bit x 32768 words: 9-bit x 2048 blocks.
    (MemoryNeed("weights", 8, 32768, rom=True), "ecp5", (16, 0)),
    (MemoryNeed("weights", 8, 32768, rom=True), "ice40", (64, 0)),
    # ECP5 line memories of 128+ words are DP16KD blocks, 18 bits wide at 1024 words.
    (MemoryNeed("line buffers", 24, 640, rom=False, count=2, line=True), "ecp5", (4, 0)),
    # Shallower ones are LUT RAM (16 x 4 cells).
    (MemoryNeed("line buffers", 24, 64, rom=False, count=2, line=True), "ecp5", (0, 192)),
    (MemoryNeed("line buffers", 24, 64, rom=False, count=2, line=True), "ice40", (4, 0)),
    # One word is a constant.
    (MemoryNeed("parameters", 220, 1, rom=True), "ice40", (0, 0)),
])
def test_memory_placement(memory, family, placed):
    board = {"ecp5": "ulx3s-85f", "ice40": "icebreaker"}[family]
    assert place_memory(memory, get_board(board).family_info) == placed


# --- folding ----------------------------------------------------------------------------------

@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("name", OPERATOR_MODELS)
def test_operator_models_fold_within_budget(name, board, imported):
    check_folding(imported(name), board)


def test_folding_beats_the_default_when_resources_allow(imported):
    pipeline = imported("yolo_block_64")
    folding = check_folding(pipeline, "ulx3s-85f")
    # One input pixel per cycle (the default takes four), the conv at II = 1.
    assert folding.report.frame_cycles == 64 * 64 < assess(pipeline, "ulx3s-85f").frame_cycles
    assert [layer.initiation_interval for layer in folding.report.layers] == [1]
    assert 4 * folding.report.fps() == pytest.approx(100e6 / (64 * 64) * 4)


def test_a_tight_board_gets_a_slower_design_that_fits(imported):
    """On the iCEBreaker the default folding of the MobileNet block needs too many LUTs;
    folding finds a slower one that fits."""
    pipeline = imported("mobile_block_40")
    assert not assess(pipeline, "icebreaker").fits
    folding = check_folding(pipeline, "icebreaker")
    assert folding.report.fits
    assert folding.report.frame_cycles > assess(pipeline, "icebreaker").frame_cycles


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("name", list(WHOLE_MODELS))
def test_whole_models_fold_within_budget_or_are_refused(name, board, imported):
    result = check_folding(imported(name), board)
    if isinstance(result, DoesNotFit):
        assert f"cannot fit {board}" in str(result)


@pytest.mark.parametrize("board, capacity", [
    ("icebreaker", r"120 Kbit of block RAM \(30 x 4 Kbit\): 4\.09 Mbit"),
    ("ulx3s-85f", r"3\.66 Mbit of block RAM \(208 x 18 Kbit\): 566\.\d Kbit")])
def test_yolov3_tiny_is_refused_for_its_weights(imported, board, capacity):
    """The YOLOv3-tiny fixture's 4.21 Mbit of weights exceed either board's block RAM."""
    with pytest.raises(DoesNotFit) as caught:
        fold(imported("yolov3_tiny_w025_128"), board)
    message = str(caught.value)
    assert re.search(rf"weights need 4\.21 Mbit of ROM; {board} has {capacity} over",
                     message), message


def test_weights_beyond_the_block_ram_are_refused(big_model):
    _, pipeline = big_model
    with pytest.raises(DoesNotFit) as caught:
        fold(pipeline, "ulx3s-85f")
    message = str(caught.value)
    assert re.search(r"weights need 4\.5\d Mbit of ROM; ulx3s-85f has 3\.66 Mbit of block "
                     r"RAM \(208 x 18 Kbit\): 8\d\d\.\d Kbit over", message), message


def test_a_pipeline_without_mac_stages_runs_at_one_pixel_per_cycle():
    pipeline = load_spec(EXAMPLES / "unsharp.toml")
    folding = fold(pipeline, "ulx3s-85f")
    assert folding.stages == {} and folding.report.layers == ()
    assert folding.report.frame_cycles == 512 * 512


# --- the CLI ----------------------------------------------------------------------------------

def without_folding(doc):
    return [{k: v for k, v in table.items() if k not in ("pe", "simd")}
            for table in doc["stage"]]


def test_fold_cli_round_trip(tmp_path, capsys):
    spec = tmp_path / "block.toml"
    assert main(["import", str(OPERATOR_DATA / "mobile_block_40.tflite"), "-o", str(spec)]) == 0
    capsys.readouterr()
    for out in (tmp_path / "folded.toml", tmp_path / "elsewhere" / "folded.toml"):
        assert main(["fold", str(spec), "--board", "icebreaker", "-o", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"fold: wrote {out} (3 MAC stages folded)" in printed
        assert "cycles per frame" in printed and "at 100 MHz (a reference clock" in printed
        folding = fold(load_spec(spec), "icebreaker")
        folded = load_spec(out)
        assert {b.name: b.stage.folding for b in folded.bound} == \
            {name: (stage.pe, stage.simd) for name, stage in folding.stages.items()}
        before, after = tomllib.loads(spec.read_text()), tomllib.loads(out.read_text())
        if out.parent == spec.parent:
            # Only pe/simd change.
            assert without_folding(after) == without_folding(before)
            assert {k: v for k, v in after.items() if k != "stage"} == \
                {k: v for k, v in before.items() if k != "stage"}
        else:
            # The references name the same sidecar keys, from the output's folder.
            assert after["stage"][0]["weights"] == "../block.npz:layer0.weights"
        text = out.read_text()
        assert text.startswith("# Imported by `rasterflow import` from mobile_block_40.tflite")
        assert f"pe/simd: folded for icebreaker ({folding.report.frame_cycles:,} cycles per " \
               f"frame)." in text and "rate-balanced" not in text


def test_fold_cli_refuses_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "yolo.toml"
    import_model(MODEL_DATA / "yolov3_tiny_w025_128.tflite", spec, layers=(0, 13))
    out = tmp_path / "out" / "folded.toml"
    assert main(["fold", str(spec), "--board", "icebreaker", "-o", str(out)]) == 2
    assert "cannot fit icebreaker (iCE40UP5K)" in capsys.readouterr().err
    assert not out.exists()
    unsharp = EXAMPLES / "unsharp.toml"
    assert main(["fold", str(unsharp), "--board", "icebreaker", "-o", str(out)]) == 2
    assert "has no MAC stages" in capsys.readouterr().err
    assert not out.exists()


def test_import_with_a_board_folds_before_writing(imported, tmp_path, capsys):
    spec = tmp_path / "block.toml"
    assert main(["import", str(OPERATOR_DATA / "yolo_block_64.tflite"), "-o", str(spec),
                 "--board", "ulx3s-85f"]) == 0
    assert "4,096 cycles per frame" in capsys.readouterr().out
    folding = fold(imported("yolo_block_64"), "ulx3s-85f")
    assert {b.name: b.stage.folding for b in load_spec(spec).bound if b.name in folding.stages} \
        == {name: (stage.pe, stage.simd) for name, stage in folding.stages.items()}
    assert "pe/simd: folded for ulx3s-85f (4,096 cycles per frame)." in spec.read_text()


def test_import_with_a_board_it_cannot_fit_leaves_no_files(tmp_path, capsys):
    spec = tmp_path / "yolo.toml"
    assert main(["import", str(MODEL_DATA / "yolov3_tiny_w025_128.tflite"), "-o", str(spec),
                 "--layers", "0:13", "--board", "icebreaker"]) == 2
    assert "weights need" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --- build refuses before any tool runs -------------------------------------------------------

@pytest.fixture
def no_tools(monkeypatch):
    """Fail the test if build gets as far as elaborating or running a tool."""
    def refuse(*args, **kwargs):
        raise AssertionError("build went on to elaborate or run a tool")
    for name in ("BoardTop", "prepared_tool_environment"):
        monkeypatch.setattr(board_build, name, refuse)
    monkeypatch.setattr(board_build.subprocess, "Popen", refuse)


def test_build_refuses_weights_beyond_the_block_ram(big_model, tmp_path, no_tools):
    _, pipeline = big_model
    with pytest.raises(DesignDoesNotFit, match=r"does not fit ulx3s-85f \(LFE5U-85F\), per the "
                                               r"estimate before building: weights that "
                                               r"synthesis puts in block RAM need 4\.5\d Mbit; "
                                               r"ulx3s-85f has 3\.66 Mbit"):
        board_build.build(most_folded(pipeline), "ulx3s-85f", tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_build_refuses_memories_beyond_the_whole_device(big_model, tmp_path, no_tools):
    _, pipeline = big_model
    with pytest.raises(DesignDoesNotFit, match=r"memories need 4\.5\d Mbit; icebreaker holds "
                                               r"at most 202\.5 Kbit"):
        board_build.build(pipeline, "icebreaker", tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_the_certain_check_only_refuses_clear_cases(imported, big_model):
    """Designs the rough estimate finds too big are not refused on its say: only memory
    bits beyond doubt. The big model's default folding keeps its weights in 4-word ROMs
    that Yosys would put in LUTs, and 4.5 Mbit could fit the ULX3S's block RAM and LUTs."""
    for board in BOARDS:
        for name in ("yolo_block_64", "mobile_block_40", "yolo_two_blocks_32"):
            assert certain_overruns(imported(name), board) == []
    assert not assess(imported("yolo_block_64"), "icebreaker").fits
    assert certain_overruns(big_model[1], "ulx3s-85f") == []
