"""Pipelines as graphs: spec (names, inputs, outputs), validation, golden model, and the
hardware's forks, skew buffers and joins in simulation (exact cycle counts, stalls)."""
import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amaranth.back import rtlil

from rasterflow import cli
from rasterflow.boards.build import rtlil_memories
from rasterflow.errors import SpecError
from rasterflow.hdl.filters import SharedWindow
from rasterflow.hdl import top as hdl_top
from rasterflow.sim.session import simulate
from rasterflow.spec import parse_spec

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

BLUR = {"name": "blur", "op": "gaussian", "ksize": 5}
UNSHARP = {"name": "sharp", "op": "add_weighted", "inputs": ["input", "blur"],
           "alpha": 1.5, "beta": -0.5, "gamma": 0}


def graph(*stages, width=16, height=12, channels=1, pixels_per_clock=1, **top):
    return {"input": {"width": width, "height": height, "channels": channels,
                      "pixels_per_clock": pixels_per_clock},
            "stage": [dict(s) for s in stages], **top}


def random_batch(pipeline, frames=2, seed=0):
    fmt = pipeline.input_format
    rng = np.random.default_rng(seed)
    shape = (frames, pipeline.height, pipeline.width, fmt.channels)
    return rng.integers(fmt.min, fmt.max + 1, size=shape).astype(fmt.np_dtype)


# --- spec --------------------------------------------------------------------------------

def test_chain_without_names_keeps_its_meaning():
    pipeline = parse_spec(graph({"op": "gaussian"}, {"op": "threshold", "level": 9}))
    assert [b.inputs for b in pipeline.bound] == [("input",), ("stage0",)]
    assert pipeline.outputs == ["stage1"]
    assert "outputs" not in pipeline.to_dict()
    assert all("name" not in s and "inputs" not in s for s in pipeline.to_dict()["stage"])


def test_graph_in_any_order_is_sorted_and_round_trips():
    doc = graph(UNSHARP, {**BLUR, "inputs": ["input"]}, outputs=["sharp"])
    pipeline = parse_spec(doc)
    assert [b.name for b in pipeline.bound] == ["blur", "sharp"]
    assert pipeline.bound[1].inputs == ("input", "blur")
    again = parse_spec(pipeline.to_dict())
    assert again.to_dict() == pipeline.to_dict()
    assert [s["name"] for s in again.to_dict()["stage"]] == ["sharp", "blur"]


def test_several_outputs():
    doc = graph(BLUR, {"name": "edges", "op": "sobel", "inputs": ["input"]},
                outputs=["edges", "blur"])
    pipeline = parse_spec(doc)
    assert pipeline.outputs == ["edges", "blur"]
    assert {k: str(f) for k, f in pipeline.output_formats.items()} == \
        {"edges": "1xint16", "blur": "1xuint8"}
    with pytest.raises(SpecError, match=r"^outputs: this pipeline has 2 outputs"):
        pipeline.output_format
    frame = random_batch(pipeline, 1)[0]
    golden = pipeline.golden_outputs(frame)
    assert list(golden) == ["edges", "blur"] and golden["edges"].dtype == np.int16


@pytest.mark.parametrize("doc, field, message", [
    (graph(BLUR, {"op": "threshold", "level": 1, "inputs": ["blurr"]}), "stage[1].inputs",
     "unknown stage 'blurr'; known: input, blur, stage1"),
    (graph(BLUR, {**BLUR, "ksize": 3}), "stage[1].name", "duplicate name 'blur' (also stage[0])"),
    (graph({**BLUR, "inputs": ["thr"]}, {"name": "thr", "op": "threshold", "level": 1}),
     "stage[0].inputs", "the graph has a cycle: blur -> thr -> blur"),
    (graph(BLUR, {"name": "thr", "op": "threshold", "level": 1, "inputs": ["input"]}),
     "stage[0]", "'blur' is read by no stage and is not in outputs (thr)"),
    (graph(BLUR, {**UNSHARP, "inputs": ["blur"]}), "stage[1].inputs",
     "add_weighted takes 2 inputs, not 1"),
    (graph({"op": "gaussian", "inputs": ["input", "input"]}), "stage[0].inputs",
     "gaussian takes 1 input, not 2"),
    (graph({"name": "edges", "op": "sobel"}, {**UNSHARP, "inputs": ["input", "edges"]},
           width=512, height=512), "stage[1].inputs",
     "add_weighted needs two 512x512x1 uint8 inputs of one format, got 512x512x1 uint8 and "
     "512x512x1 int16"),
    (graph({"name": "input", "op": "gaussian"}), "stage[0].name", "names the pipeline input"),
    (graph({"name": "9x", "op": "gaussian"}), "stage[0].name", "must be an identifier"),
    (graph({"op": "gaussian", "inputs": "input"}), "stage[0].inputs", "non-empty list"),
    (graph(BLUR, outputs=["nope"]), "outputs", "unknown stage 'nope'; stages: blur"),
    (graph(BLUR, outputs=[]), "outputs", "non-empty list of stage names"),
    (graph(BLUR, outputs=["blur", "blur"]), "outputs", "lists a stage twice"),
    (graph(BLUR, {"name": "pool", "op": "max_pool", "size": 2, "stride": 2,
                  "inputs": ["input"]}, outputs=["blur", "pool"]),
     "stage[1].op", "int8"),
])
def test_invalid_graph_names_field(doc, field, message):
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert info.value.field == field
    assert message in info.value.message


def test_outputs_of_different_sizes_leave_in_sequence():
    doc = {"input": {"width": 8, "height": 8, "dtype": "int8"},
           "outputs": ["a", "b"],
           "stage": [{"name": "a", "op": "max_pool", "size": 2, "stride": 2},
                     {"name": "b", "op": "max_pool", "size": 2, "stride": 1,
                      "inputs": ["input"]}]}
    # b (7x7) waits in a buffer one whole frame deep while a (4x4) leaves.
    assert parse_spec(doc).hardware().sequencer.fifo_depths == {"b": 49}


# --- hardware ----------------------------------------------------------------------------

def check_graph(doc, *, frames=2, seed=0, stall=0.3):
    """Random stalls: bit-exact; unstalled: exactly ``F * ceil(W/P) * H + L`` cycles."""
    pipeline = parse_spec(doc)
    batch = random_batch(pipeline, frames, seed)
    result = simulate(pipeline, batch, stall=stall, seed=seed, progress=False)
    assert result.bit_exact, (result.frame_mismatches, result.marker_errors)
    result = simulate(pipeline, batch, progress=False)
    assert result.bit_exact
    transfers = -(-pipeline.width // pipeline.lanes) * pipeline.height
    assert result.cycles == frames * transfers + result.latency_cycles
    return pipeline, result


#: Graphs of every shape the hardware has: forks, joins of unequal branches, lanes, outputs.
GRAPHS = [
    pytest.param(graph(BLUR, UNSHARP), id="unsharp"),
    pytest.param(graph(BLUR, UNSHARP, width=13, height=9, pixels_per_clock=4), id="unsharp-4px"),
    pytest.param(graph({"name": "gx", "op": "sobel", "dx": 1, "dy": 0},
                       {"name": "gy", "op": "sobel", "dx": 0, "dy": 1, "ksize": 5,
                        "inputs": ["input"]},
                       {"name": "m", "op": "magnitude", "norm": "l2", "inputs": ["gx", "gy"]},
                       outputs=["m", "gx"]), id="sobel-xy-two-outputs"),
    pytest.param(graph({"name": "fine", "op": "gaussian", "ksize": 3},
                       {"name": "coarse", "op": "gaussian", "ksize": 7, "inputs": ["input"]},
                       {"name": "dog", "op": "subtract", "inputs": ["fine", "coarse"]},
                       {"name": "inv", "op": "bitwise_not", "inputs": ["input"]},
                       {"name": "out", "op": "max", "inputs": ["dog", "inv"]},
                       channels=3), id="three-branches-rgb"),
]


@pytest.mark.parametrize("doc", GRAPHS)
def test_graph_hardware_is_exact(doc):
    check_graph(doc)


def line_memories(pipeline):
    """``{scanner module: [bits of each line memory]}`` in the pipeline's RTLIL."""
    found = {}
    for module, name, bits, _ in rtlil_memories(rtlil.convert(pipeline.hardware())):
        if name.startswith("line"):
            found.setdefault(module, []).append(bits)
    return found


FAN_OUT = graph({"name": "gx", "op": "sobel", "dx": 1, "dy": 0},
                {"name": "gy", "op": "sobel", "dx": 0, "dy": 1, "ksize": 5, "inputs": ["input"]},
                {"name": "blur", "op": "gaussian", "ksize": 5, "inputs": ["input"]},
                outputs=["gx", "gy", "blur"], width=20, height=9)


@pytest.mark.parametrize("lanes", [1, 2])
def test_window_stages_reading_one_stream_share_its_line_buffers(lanes):
    """Sobel 3x3, Sobel 5x5 and Gaussian 5x5 of one input keep max(K) - 1 = 4 lines, not
    2 + 4 + 4, and stay exact (bit for bit under stalls, cycle for cycle without)."""
    doc = {**FAN_OUT, "input": {**FAN_OUT["input"], "pixels_per_clock": lanes}}
    pipeline, _ = check_graph(doc)
    assert {b.share for b in pipeline.bound} == {SharedWindow(5, 5, "reflect101")}
    assert list(line_memories(pipeline).values()) == [[20 * 8] * 4]


@pytest.mark.parametrize("stages, scanners", [
    pytest.param([{"name": "a", "op": "gaussian"},
                  {"name": "b", "op": "gaussian", "border": "constant", "inputs": ["input"]}],
                 2, id="different-borders"),
    pytest.param([{"name": "a", "op": "erode", "ksize": 3},
                  {"name": "b", "op": "dilate", "ksize": 3, "inputs": ["input"]}],
                 2, id="erode-dilate-outside-values-differ"),
    pytest.param([{"name": "a", "op": "erode", "ksize": 3},
                  {"name": "b", "op": "erode", "ksize": 5, "shape": "cross", "inputs": ["input"]}],
                 1, id="two-erodes"),
    pytest.param([{"name": "a", "op": "median", "ksize": 5},
                  {"name": "b", "op": "box", "ksize": 3, "border": "replicate",
                   "inputs": ["input"]}],
                 1, id="median-box-replicate"),
])
def test_line_buffers_are_shared_only_under_one_border(stages, scanners):
    pipeline, _ = check_graph(graph(*stages, outputs=["a", "b"], width=11, height=7))
    assert len(line_memories(pipeline)) == scanners


def test_add_weighted_with_gamma_is_exact_where_opencv_has_no_scalar_tail():
    check_graph(graph(BLUR, {**UNSHARP, "alpha": 0.1, "beta": 0.2, "gamma": 0.3},
                      width=8, height=4))
    with pytest.raises(SpecError, match=r"stage\[1\]\.gamma: must be 0 for a 5x5x1 frame"):
        parse_spec(graph(BLUR, {**UNSHARP, "gamma": 0.3}, width=5, height=5))


def test_skew_buffer_depth_is_exact(monkeypatch):
    """The computed depths give ``F*W*H + L`` cycles; one entry fewer on the fast branch
    stalls the fork and the count grows (by about a cycle per line: the 5x5 window's
    line-start bubbles are what the buffer rides out)."""
    doc = graph(BLUR, UNSHARP, width=24, height=10)
    pipeline, exact = check_graph(doc, frames=1, stall=0.0)
    top = pipeline.hardware()
    assert top.skews == {("sharp", 0): top.arrival["blur"] - top.arrival["input"] + 1}

    computed = hdl_top.skew_depth
    monkeypatch.setattr(hdl_top, "skew_depth",
                        lambda latencies: [d - 1 if d else 0 for d in computed(latencies)])
    short = simulate(pipeline, random_batch(pipeline, 1), progress=False)
    assert short.bit_exact
    assert short.cycles > exact.cycles


# --- command line ------------------------------------------------------------------------

def test_cli_writes_one_file_per_output(tmp_path):
    doc = graph(BLUR, {"name": "edges", "op": "sobel", "inputs": ["input"]},
                outputs=["blur", "edges"], width=12, height=9)
    spec = tmp_path / "g.toml"
    spec.write_bytes(tomli_w.dumps(doc).encode())
    pipeline = parse_spec(doc)
    image = random_batch(pipeline, 1)[0]
    np.save(tmp_path / "in.npy", image[:, :, 0])
    golden = pipeline.golden_outputs(image)

    assert cli.main(["golden", str(spec), str(tmp_path / "in.npy"), "-o",
                     str(tmp_path / "g.npy")]) == 0
    for name in ("blur", "edges"):
        written = np.load(tmp_path / f"g_{name}.npy")
        assert written.shape == (9, 12)      # grey: H x W, like numpy and OpenCV
        np.testing.assert_array_equal(written, golden[name][:, :, 0])

    assert cli.main(["sim", str(spec), str(tmp_path / "in.npy"), "--simulator", "amaranth",
                     "-q", "-o", str(tmp_path / "hw.npz")]) == 0
    with np.load(tmp_path / "hw.npz") as archive:
        assert sorted(archive.files) == ["blur", "edges"]
        np.testing.assert_array_equal(archive["edges"], golden["edges"][:, :, 0])

    status = cli.main(["golden", str(spec), str(tmp_path / "in.npy"), "-o",
                       str(tmp_path / "g.png")])
    assert status == 2      # edges is int16: no PNG for it, and nothing is written
    assert not list(tmp_path.glob("g_*.png"))


def test_sweep_takes_graphs():
    """A sweep's cache key and throughput model work on a graph listed out of order."""
    from rasterflow.sweep import design_key, pipeline_pixels_per_cycle, tool_versions
    doc = graph(UNSHARP, {**BLUR, "inputs": ["input"]}, outputs=["sharp"],
                pixels_per_clock=2)
    pipeline = parse_spec(doc)
    assert pipeline_pixels_per_cycle(pipeline) == 2
    versions = tool_versions()
    key = design_key(pipeline, "icebreaker", versions)
    assert design_key(parse_spec(pipeline.to_dict()), "icebreaker", versions) == key
    brighter = graph(UNSHARP, {**BLUR, "inputs": ["input"]}, outputs=["sharp"],
                     pixels_per_clock=2)
    brighter["stage"][0]["gamma"] = 4
    assert design_key(parse_spec(brighter), "icebreaker", versions) != key


# --- random graphs -----------------------------------------------------------------------

UNARY = [{"op": "gaussian", "ksize": 3}, {"op": "gaussian", "ksize": 5},
         {"op": "box", "ksize": 3, "border": "replicate"}, {"op": "median", "ksize": 3},
         {"op": "erode", "ksize": 3}, {"op": "dilate", "ksize": 5, "shape": "ellipse"},
         {"op": "threshold", "level": 100}, {"op": "bitwise_not"},
         {"op": "filter2d", "kernel": [[1, 2, 1]], "shift": 2, "border": "constant",
          "border_value": 9}]
JOINS = [{"op": op} for op in ("add", "subtract", "absdiff", "min", "max", "bitwise_xor")] + \
    [{"op": "add_weighted", "alpha": 0.75, "beta": 0.5}]


@st.composite
def random_graphs(draw):
    """A random DAG of uint8 stages: each reads one or two earlier streams; every stream
    nobody reads is an output (and maybe a few more)."""
    names = ["input"]
    stages = []
    for index in range(draw(st.integers(2, 5))):
        join = len(names) > 1 and draw(st.booleans())
        inputs = draw(st.lists(st.sampled_from(names), min_size=2, max_size=2)) if join \
            else [draw(st.sampled_from(names))]
        stage = dict(draw(st.sampled_from(JOINS if join else UNARY)))
        stages.append({**stage, "name": f"s{index}", "inputs": inputs})
        names.append(f"s{index}")
    read = {name for stage in stages for name in stage["inputs"]}
    outputs = [s["name"] for s in stages if s["name"] not in read]
    for name in draw(st.lists(st.sampled_from(names[1:]), max_size=2, unique=True)):
        if name not in outputs:
            outputs.append(name)
    return graph(*stages, outputs=outputs, width=draw(st.integers(5, 13)),
                 height=draw(st.integers(3, 7)), channels=draw(st.sampled_from([1, 3])),
                 pixels_per_clock=draw(st.sampled_from([1, 2])))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=random_graphs(), seed=st.integers(0, 1 << 16))
def test_random_graphs_are_exact(doc, seed):
    """Forks, joins of branches of any latency, shared line buffers, several outputs: every
    random graph is bit-exact under stalls and takes exactly F*ceil(W/P)*H + L cycles."""
    check_graph(doc, seed=seed)
