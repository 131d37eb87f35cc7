"""Filter library hardware vs the golden models, in Amaranth's simulator.

Every op, every border it accepts, small frames (down to the minimum ``K//2 + 1``), random
input gaps and output stalls (``stall=0.3``), two back-to-back frames; and, unstalled, the
exact cycle count ``frames * W * H + latency_cycles``. Also: the median networks (0-1
principle), the spec-level type checks and every hardware block's parameter validation.
"""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rasterflow.errors import SpecError
from rasterflow.golden.pixel import PixelFormat
from rasterflow.hdl import imgproc, pointwise, sorting
from rasterflow.sim.session import simulate

from conftest import make_pipeline, random_frames

# Blocks built only to read their latency or to be rejected are never elaborated.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

BORDERS = ("constant", "replicate", "reflect", "reflect101")


def check(stages, width, height, *, channels=1, dtype="uint8", seed=0, lo=None, hi=None,
          stall=0.3, cycles=False):
    """Simulate two different back-to-back frames with stalls; optionally, unstalled, the
    exact cycle count. Returns the pipeline."""
    pipeline = make_pipeline(stages, width, height, channels, dtype)
    batch = random_frames(pipeline, seed, lo, hi)
    result = simulate(pipeline, batch, stall=stall, seed=seed, progress=False)
    assert result.frames == 2
    assert result.bit_exact, (result.frame_mismatches, result.marker_errors)
    if cycles:
        result = simulate(pipeline, batch, stall=0.0, progress=False)
        assert result.bit_exact
        assert result.cycles == 2 * width * height + result.latency_cycles
    return pipeline


# (id, stages, width, height, extra options for check()). Sizes include each window's
# minimum (K//2 + 1); "cycles" marks the unstalled cycle-count check (one or more per op).
CASES = [
    # gaussian: the fixed tables (3, 5), a computed kernel (ksize 11), a sigma.
    *[(f"gaussian3-{b}", [{"op": "gaussian", "ksize": 3, "border": b}], 7, 5, {})
      for b in BORDERS],
    ("gaussian5-rgb", [{"op": "gaussian", "ksize": 5}], 9, 6, {"channels": 3, "cycles": True}),
    ("gaussian5-sigma", [{"op": "gaussian", "ksize": 5, "sigma": 1.7, "border": "constant"}],
     3, 3, {}),
    ("gaussian11-min", [{"op": "gaussian", "ksize": 11, "border": "reflect"}], 6, 6,
     {"cycles": True}),
    ("gaussian15-sigma-replicate", [{"op": "gaussian", "ksize": 15, "sigma": 2.5,
                                     "border": "replicate"}], 9, 8, {}),
    # box
    *[(f"box3-{b}", [{"op": "box", "ksize": 3, "border": b}], 8, 5, {}) for b in BORDERS],
    ("box7-rgb", [{"op": "box", "ksize": 7}], 10, 7, {"channels": 3, "cycles": True}),
    *[(f"box5-sum-{b}", [{"op": "box", "ksize": 5, "normalize": False, "border": b}], 6, 3,
       {"cycles": b == "constant"}) for b in ("constant", "reflect101")],
    ("box15-sum-min", [{"op": "box", "ksize": 15, "normalize": False, "border": "reflect"}],
     8, 8, {}),
    ("box9-tall", [{"op": "box", "ksize": 9}], 5, 11, {"cycles": True}),
    # derivatives
    *[(f"sobel-dx-{b}", [{"op": "sobel", "dx": 1, "dy": 0, "border": b}], 7, 5, {})
      for b in BORDERS],
    ("sobel-dy2-k5", [{"op": "sobel", "dx": 0, "dy": 2, "ksize": 5}], 9, 6, {"cycles": True}),
    ("sobel-dxdy-k1", [{"op": "sobel", "dx": 1, "dy": 1, "ksize": 1, "border": "replicate"}],
     2, 2, {}),
    ("sobel-dx-k7-saturating", [{"op": "sobel", "dx": 1, "dy": 0, "ksize": 7}], 8, 5, {}),
    *[(f"scharr-dx-{b}", [{"op": "scharr", "dx": 1, "dy": 0, "border": b}], 7, 5, {})
      for b in BORDERS],
    ("scharr-dy", [{"op": "scharr", "dx": 0, "dy": 1}], 9, 4, {"cycles": True}),
    *[(f"laplacian1-{b}", [{"op": "laplacian", "ksize": 1, "border": b}], 7, 5, {})
      for b in BORDERS],
    ("laplacian3-rgb", [{"op": "laplacian", "ksize": 3}], 8, 6, {"channels": 3, "cycles": True}),
    # gradient magnitude; low-contrast inputs keep l2 below its 255 saturation
    *[(f"gradmag-{n}-{b}", [{"op": "gradient_magnitude", "norm": n, "border": b}], 8, 5,
       {"lo": 90, "hi": 140}) for n in ("l1", "l2") for b in BORDERS],
    ("gradmag-l2-k5", [{"op": "gradient_magnitude", "norm": "l2", "ksize": 5}], 9, 6,
     {"lo": 100, "hi": 112, "cycles": True}),
    ("gradmag-l2-k7-full-range", [{"op": "gradient_magnitude", "norm": "l2", "ksize": 7}],
     4, 4, {}),
    ("gradmag-l1-k1", [{"op": "gradient_magnitude", "norm": "l1", "ksize": 1}], 7, 5,
     {"cycles": True}),
    ("gradmag-l2-rgb", [{"op": "gradient_magnitude", "norm": "l2"}], 6, 4,
     {"channels": 3, "lo": 0, "hi": 60, "cycles": True}),
    # median (always replicate)
    ("median3", [{"op": "median", "ksize": 3}], 9, 6, {"cycles": True}),
    ("median3-rgb-min", [{"op": "median", "ksize": 3}], 2, 2, {"channels": 3}),
    ("median5", [{"op": "median", "ksize": 5}], 10, 7, {"cycles": True, "lo": 0, "hi": 7}),
    ("median7-min", [{"op": "median", "ksize": 7}], 4, 4, {"cycles": True}),
    ("median7-rgb", [{"op": "median", "ksize": 7}], 8, 5, {"channels": 3}),
    ("median5-tall", [{"op": "median", "ksize": 5}], 3, 9, {"lo": 50, "hi": 53}),
    # morphology: default border (never wins), all shapes, signed and wider types
    ("erode3-rect", [{"op": "erode", "ksize": 3}], 9, 6, {"cycles": True}),
    ("dilate5-rect", [{"op": "dilate", "ksize": 5}], 7, 5, {"channels": 3}),
    ("erode5-cross", [{"op": "erode", "ksize": 5, "shape": "cross"}], 8, 5, {"cycles": True}),
    ("dilate5-cross-int8", [{"op": "dilate", "ksize": 5, "shape": "cross"}], 6, 4,
     {"dtype": "int8"}),
    ("erode7-ellipse", [{"op": "erode", "ksize": 7, "shape": "ellipse"}], 9, 6, {}),
    ("dilate7-ellipse-int16", [{"op": "dilate", "ksize": 7, "shape": "ellipse"}], 4, 4,
     {"dtype": "int16", "cycles": True}),
    ("erode15-rect-min", [{"op": "erode", "ksize": 15}], 8, 8, {"cycles": True}),
    ("dilate15-ellipse", [{"op": "dilate", "ksize": 15, "shape": "ellipse"}], 9, 8, {}),
    ("erode9-cross-uint16", [{"op": "erode", "ksize": 9, "shape": "cross"}], 7, 5,
     {"dtype": "uint16"}),
    # pointwise
    ("rgb2gray", [{"op": "rgb2gray"}], 7, 5, {"channels": 3, "cycles": True}),
    ("channel_min", [{"op": "channel_min"}], 7, 5, {"channels": 3, "cycles": True}),
    ("channel_min-int16x4", [{"op": "channel_min"}], 5, 3, {"channels": 4, "dtype": "int16"}),
    *[(f"threshold-{t}", [{"op": "threshold", "level": 127, "maxval": 200, "type": t}], 6, 4,
       {"channels": 3, "cycles": t == "binary"})
      for t in pointwise.THRESHOLD_TYPES],
    ("threshold-trunc-negative", [{"op": "threshold", "level": -3, "type": "trunc"}], 4, 3, {}),
    ("threshold-binary-above-range", [{"op": "threshold", "level": 300, "type": "binary_inv"}],
     4, 3, {}),
    # the examples' chains, on small frames
    ("chain-edges", [{"op": "rgb2gray"}, {"op": "gaussian", "ksize": 5},
                     {"op": "gradient_magnitude", "norm": "l1"},
                     {"op": "threshold", "level": 40, "type": "binary"}], 10, 7,
     {"channels": 3, "cycles": True}),
    ("chain-dark-channel", [{"op": "channel_min"}, {"op": "erode", "ksize": 15}], 9, 8,
     {"channels": 3, "cycles": True}),
]


@pytest.mark.parametrize("stages,width,height,options",
                         [pytest.param(s, w, h, o, id=i) for i, s, w, h, o in CASES])
def test_op_matches_golden(stages, width, height, options):
    check(stages, width, height, seed=width * 31 + height, **options)


def test_every_op_is_covered():
    from rasterflow.stages_imgproc import __all__ as stage_classes
    from rasterflow import stages_imgproc
    ops = {getattr(stages_imgproc, name).op for name in stage_classes}
    covered = {stage["op"] for _, stages, _, _, _ in CASES for stage in stages}
    cycle_checked = {stages[0]["op"] for _, stages, _, _, o in CASES if o.get("cycles")}
    assert ops <= covered
    assert ops <= cycle_checked


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(level=st.integers(-5, 260), maxval=st.integers(0, 255),
       type=st.sampled_from(pointwise.THRESHOLD_TYPES), seed=st.integers(0, 1 << 16))
def test_threshold_random_parameters(level, maxval, type, seed):
    check([{"op": "threshold", "level": level, "maxval": maxval, "type": type}], 5, 3,
          seed=seed, stall=0.5)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(3, 9), height=st.integers(3, 6), border=st.sampled_from(BORDERS),
       norm=st.sampled_from(("l1", "l2")), seed=st.integers(0, 1 << 16),
       contrast=st.integers(4, 255))
def test_gradient_magnitude_random_frames(width, height, border, norm, seed, contrast):
    check([{"op": "gradient_magnitude", "norm": norm, "border": border}], width, height,
          seed=seed, lo=0, hi=contrast)


# --- median networks -----------------------------------------------------------------------

@pytest.mark.parametrize("ksize", imgproc.MEDIAN_SIZES)
def test_median_network_is_correct(ksize):
    network = sorting.MEDIAN_NETWORKS[ksize]
    assert sorting.check_median_network(ksize, network)
    # Not vacuous: dropping any one comparator breaks it (the greedy pruning kept only those).
    for index in (0, len(network) // 2, len(network) - 1):
        assert not sorting.check_median_network(ksize, network[:index] + network[index + 1:])


@pytest.mark.parametrize("ksize", (3, 5))
def test_median_network_derivation_reproduces_table(ksize):
    assert sorting.derive_median_network(ksize) == sorting.MEDIAN_NETWORKS[ksize]


def test_median_comparator_counts():
    counts = {k: imgproc.MedianBlur(PixelFormat(1, "uint8"), 8, 8, k).comparators
              for k in imgproc.MEDIAN_SIZES}
    assert counts[3]["column"] == 3 and counts[3]["window"] == 11
    assert counts[5]["column"] == 9 and counts[5]["window"] == 66
    assert counts[7]["column"] == 16 and counts[7]["window"] == 198
    for c in counts.values():
        assert c["window_full"] + c["window_half"] == c["window"]


@pytest.mark.parametrize("n", range(1, 17))
def test_batcher_network_sorts(n):
    network = sorting.batcher_network(n)
    for bits in range(1 << n):
        values = [(bits >> k) & 1 for k in range(n)]
        for a, b in network:
            if values[a] > values[b]:
                values[a], values[b] = values[b], values[a]
        assert values == sorted(values)


# --- spec checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("stages,channels,dtype,field,words", [
    ([{"op": "sobel"}, {"op": "gradient_magnitude"}], 1, "uint8", "stage[1].op", "uint8"),
    ([{"op": "rgb2gray"}], 1, "uint8", "stage[0].op", "with 3 channels"),
    ([{"op": "rgb2gray"}, {"op": "rgb2gray"}], 3, "uint8", "stage[1].op", "with 3 channels"),
    ([{"op": "median"}], 1, "int16", "stage[0].op", "uint8"),
    ([{"op": "laplacian"}, {"op": "threshold", "level": 3}], 1, "uint8", "stage[1].op", "uint8"),
    ([{"op": "box", "normalize": False}, {"op": "gaussian"}], 1, "uint8", "stage[1].op",
     "uint8"),
    ([{"op": "gaussian", "ksize": 4}], 1, "uint8", "stage[0].ksize", "15"),
    ([{"op": "median", "ksize": 9}], 1, "uint8", "stage[0].ksize", "7"),
    ([{"op": "erode", "shape": "disc"}], 1, "uint8", "stage[0].shape", "ellipse"),
    ([{"op": "gradient_magnitude", "norm": "max"}], 1, "uint8", "stage[0].norm", "l2"),
    ([{"op": "sobel", "dx": 0, "dy": 0}], 1, "uint8", "stage[0].dx", "dx + dy"),
    ([{"op": "sobel", "ksize": 9}], 1, "uint8", "stage[0].ksize", "7"),
    ([{"op": "scharr", "dx": 1, "dy": 1}], 1, "uint8", "stage[0].dx", "(1, 0)"),
    ([{"op": "threshold"}], 1, "uint8", "stage[0].level", "required"),
    ([{"op": "threshold", "level": 1, "type": "otsu"}], 1, "uint8", "stage[0].type", "tozero"),
    ([{"op": "threshold", "level": 1, "maxval": 256}], 1, "uint8", "stage[0].maxval", "0..255"),
    ([{"op": "box", "normalize": 1}], 1, "uint8", "stage[0].normalize", "true or false"),
    ([{"op": "gaussian", "sigma": -1}], 1, "uint8", "stage[0].sigma", "0 ="),
    ([{"op": "erode", "ksize": 15}], 1, "uint8", "input.width", "at least 8"),
    ([{"op": "gaussian", "border": "wrap"}], 1, "uint8", "stage[0].border", "reflect101"),
])
def test_spec_errors(stages, channels, dtype, field, words):
    with pytest.raises(SpecError) as info:
        make_pipeline(stages, 6 if field == "input.width" else 16, 16, channels, dtype)
    assert info.value.field == field
    assert words in info.value.message


def test_valid_chains_bind():
    pipeline = make_pipeline([{"op": "rgb2gray"}, {"op": "sobel", "dx": 1, "dy": 0}], 8, 8, 3)
    assert pipeline.output_format == PixelFormat(1, "int16")
    pipeline = make_pipeline([{"op": "box", "normalize": False}], 8, 8, 3)
    assert pipeline.output_format == PixelFormat(3, "int32")
    pipeline = make_pipeline([{"op": "channel_min"}, {"op": "dilate", "shape": "cross"}], 8, 8,
                             3, "int16")
    assert pipeline.output_format == PixelFormat(1, "int16")


# --- hardware parameter validation ---------------------------------------------------------

U8, RGB = PixelFormat(1, "uint8"), PixelFormat(3, "uint8")


@pytest.mark.parametrize("build,words", [
    (lambda: imgproc.GaussianBlur(U8, 8, 8, 4), "4"),
    (lambda: imgproc.GaussianBlur(PixelFormat(1, "int16"), 8, 8, 3), "int16"),
    (lambda: imgproc.BoxFilter(U8, 8, 8, 3, normalize="yes"), "'yes'"),
    (lambda: imgproc.Sobel(U8, 8, 8, 0, 0), "dx + dy"),
    (lambda: imgproc.Sobel(U8, 8, 8, 3, 0), "3"),
    (lambda: imgproc.Scharr(U8, 8, 8, 1, 1), "(1, 1)"),
    (lambda: imgproc.Laplacian(U8, 8, 8, 5), "5"),
    (lambda: imgproc.GradientMagnitude(U8, 8, 8, norm="linf"), "'linf'"),
    (lambda: imgproc.MedianBlur(U8, 8, 8, 9), "9"),
    (lambda: imgproc.MedianBlur(U8, 1, 8, 3), "width"),
    (lambda: imgproc.Morphology(U8, 8, 8, 3, shape="disc"), "'disc'"),
    (lambda: imgproc.Morphology(U8, 8, 8, 3, operation="open"), "'open'"),
    (lambda: imgproc.WindowReduce(U8, 3, "min", [[0, 0, 0]] * 3), "mask"),
    (lambda: pointwise.Threshold(U8, level=1, maxval=300), "300"),
    (lambda: pointwise.Threshold(U8, level=1, type="otsu"), "'otsu'"),
    (lambda: pointwise.Threshold(U8, level=1.5), "1.5"),
    (lambda: pointwise.RGB2Gray(U8), "3 channels"),
    (lambda: pointwise.ConstantDivide(PixelFormat(1, "int32"), 9, 255 * 9 * 9, U8), "cannot"),
    (lambda: sorting.median_network(4), "4"),
])
def test_hardware_rejects_bad_parameters(build, words):
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert words in str(info.value)


def test_latencies_are_documented_values():
    """The latency formulas in the docstrings, for the configurations the examples use.
    ``lw`` is the shared window generator's part (scanner, skid buffer, row window, skid
    buffer): a 1x1 Filter2D is that plus its products and rounding registers (2). A stage
    with a per-column part between scanner and row window has one more skid buffer after
    that part (``sk`` = 1 cycle)."""
    sk = 1
    lw = imgproc.Filter2D(U8, 16, 16, [[1]]).latency - 2
    assert pointwise.RGB2Gray(RGB).latency == 4
    assert pointwise.ChannelMin(RGB).latency == 1
    assert pointwise.Threshold(U8, level=1).latency == 1
    g = imgproc.GaussianBlur(U8, 16, 16, 5)
    assert g.latency == lw + 4 + sk + 4 + 1 and g.schedule_delay == 2 * 16 + 2
    assert imgproc.GradientMagnitude(U8, 16, 16, norm="l1").latency == lw + 3 + sk + 3 + 1 + 1
    assert imgproc.GradientMagnitude(U8, 16, 16, norm="l2").latency == lw + 3 + sk + 3 + 1 + 6
    assert imgproc.BoxFilter(U8, 16, 16, 3).latency == lw + 3 + sk + 3 + sk + 1 + 1
    m = imgproc.MedianBlur(U8, 16, 16, 5)
    assert m.latency == lw + 3 + sk + 8 and m.schedule_delay == 2 * 16 + 2
    e = imgproc.Morphology(U8, 451, 300, 15)
    assert e.latency == lw + 2 + sk + 2 and e.schedule_delay == 7 * 451 + 7
    assert imgproc.Morphology(U8, 16, 16, 5, shape="cross").latency == lw + 2
