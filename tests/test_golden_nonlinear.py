"""Int8 SOFTMAX and LOGISTIC golden models against LiteRT's reference kernels (BUILTIN_REF).

Single-operator models are built here with the flatbuffer builder of test_tflite_import and
run in LiteRT; the golden output must match with zero mismatches.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions

from rasterflow.golden.nonlinear import (Logistic, Softmax, exp_on_negative_values,
                                         one_over_one_plus_x_for_x_in_0_1)
from test_tflite_import import activation, build_model, reference_interpreter, run_reference

OUT_Q = (1.0 / 256, -128)


def softmax_options(beta):
    def build(b):
        b.StartObject(1)
        b.PrependFloat32Slot(0, beta, 0.0)
        return b.EndObject()
    return BuiltinOptions.SoftmaxOptions, build


def unary(code, shape, in_q, out_q=OUT_Q, options=None):
    model = build_model([activation(list(shape), *in_q), activation(list(shape), *out_q)],
                        [(code, [0], [1], options)], [0], [1])
    return reference_interpreter(model)


def softmax_inputs(rng, shape, diff_span=None):
    """Random rows, rows whose spread is ``diff_span`` (so the exp cut-off ``diff_min`` bites
    partly), all-equal rows, one-hot rows (max at one position) and the extremes."""
    frames = [rng.integers(-128, 128, size=shape, dtype=np.int8)]
    if diff_span is not None:
        low = rng.integers(-128, 128 - diff_span, size=shape[:-1] + (1,))
        frames.append((low + rng.integers(0, diff_span + 1, size=shape)).astype(np.int8))
    equal = np.broadcast_to(rng.integers(-128, 128, size=shape[:-1] + (1,)), shape)
    frames.append(equal.astype(np.int8))
    one_hot = np.full(shape, -128, np.int8)
    flat = one_hot.reshape(-1, shape[-1])
    flat[np.arange(flat.shape[0]), rng.integers(0, shape[-1], size=flat.shape[0])] = \
        rng.integers(-127, 128, size=flat.shape[0])
    frames += [one_hot, np.full(shape, 127, np.int8), np.full(shape, -128, np.int8)]
    # A peak one step above a plateau: many equal terms next to the maximum.
    peak = np.zeros(shape, np.int8)
    peak.reshape(-1, shape[-1])[:, 0] = 1
    frames.append(peak)
    return frames


def compare_softmax(shape, in_q, beta, rng):
    """``(mismatches, frames compared)``. Frames with a row whose sum of exps reaches 512
    (LiteRT aborts the process on them, see test_softmax_abort_is_reported) are skipped."""
    interpreter = unary(Op.SOFTMAX, shape, in_q, options=softmax_options(beta))
    golden = Softmax(*in_q, *OUT_Q, beta=beta)
    span = max(1, min(254, -golden.diff_min + 2))
    mismatches = compared = 0
    for x in softmax_inputs(rng, tuple(shape), span):
        try:
            expected = golden(x)
        except ValueError:
            continue
        mismatches += int(np.count_nonzero(expected != run_reference(interpreter, x)))
        compared += 1
    return mismatches, compared


# (in_scale, in_zp) pairs: typical logits scales, tiny/huge ones (diff_min 0 / all taken).
SOFTMAX_QUANT = [(0.1, 5), (0.0390625, -10), (0.2371, 3), (0.0123, -128), (1.0, 0), (0.5, 127),
                 (0.00390625, 0), (0.0009765625, 17), (3.5, -3)]


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("in_q", SOFTMAX_QUANT)
def test_softmax_vector_after_global_pool(in_q, beta):
    rng = np.random.default_rng([int(in_q[0] * 1e4), in_q[1] + 128, int(beta * 10)])
    compared = 0
    for channels in (2, 3, 10, 255, 1001):
        mismatches, frames = compare_softmax([1, 1, 1, channels], in_q, beta, rng)
        assert mismatches == 0, channels
        compared += frames
    assert compared >= 4 * 7


@pytest.mark.parametrize("in_q, beta", [((0.1, 5), 1.0), ((0.0390625, -10), 0.5), ((0.2371, 3), 2.0),
                                        ((0.0123, -128), 1.0), ((0.7, 1), 0.25)])
def test_softmax_2d_and_4d(in_q, beta):
    rng = np.random.default_rng(int(in_q[0] * 1e4) + int(beta * 10))
    for shape in ([17], [64, 10], [200, 37], [2, 5, 7, 16], [1, 8, 8, 3], [3, 300]):
        assert compare_softmax(shape, in_q, beta, rng) == (0, 7), shape
    # 1000 channels: the all-equal / all-extreme / plateau frames abort LiteRT and are skipped.
    mismatches, compared = compare_softmax([3, 1000], in_q, beta, rng)
    assert mismatches == 0 and compared >= 2


def test_softmax_many_random_scales():
    rng = np.random.default_rng(2024)
    for _ in range(12):
        in_q = (float(np.exp(rng.uniform(np.log(1e-3), np.log(4.0)))), int(rng.integers(-128, 128)))
        beta = float(rng.choice([1.0, 0.5, 2.0, rng.uniform(0.1, 3.0)]))
        assert compare_softmax([50, int(rng.integers(2, 300))], in_q, beta, rng) == (0, 7), (in_q, beta)


def test_softmax_every_pair_of_two_channels():
    """All 256 x 256 two-element rows, in one batch."""
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    x = np.stack([a.ravel(), b.ravel()], axis=-1).astype(np.int8)
    for in_q, beta in (((0.1, 0), 1.0), ((0.02, -5), 2.0), ((0.3, 9), 0.5)):
        interpreter = unary(Op.SOFTMAX, x.shape, in_q, options=softmax_options(beta))
        assert np.array_equal(Softmax(*in_q, *OUT_Q, beta=beta)(x), run_reference(interpreter, x))


ABORT_PROBE = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_golden_nonlinear import Op, run_reference, softmax_options, unary
interpreter = unary(Op.SOFTMAX, [1, {n}], (0.1, 0), options=softmax_options(1.0))
run_reference(interpreter, np.zeros((1, {n}), np.int8))
"""


@pytest.mark.parametrize("n, aborts", [(511, False), (512, True)])
def test_softmax_abort_is_reported(n, aborts):
    """n equal inputs sum to n: LiteRT's reference kernel aborts from 512 on, the golden
    model raises ValueError there."""
    golden = Softmax(0.1, 0, *OUT_Q)
    if aborts:
        with pytest.raises(ValueError, match="512"):
            golden(np.zeros((3, n), np.int8))
    else:
        assert np.all(golden(np.zeros((1, n), np.int8)) == -128 + 1)
    probe = ABORT_PROBE.format(tests=str(Path(__file__).parent), n=n)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    assert (result.returncode != 0) == aborts, result.stderr[-500:]


def test_softmax_prepare_parameters():
    s = Softmax(0.1, 0, 1 / 256, -128)
    # beta * scale * 2**26 = 6710886.4 (float32 0.1 widened): 2**22 < M < 2**23.
    assert s.input_left_shift == 23 and 2 ** 30 <= s.input_multiplier < 2 ** 31
    assert s.diff_min == -((31 << 26) >> 23) == -248
    assert Softmax(1.0, 0, 1 / 256, -128).diff_min == -((31 << 26) >> 27) == -15
    assert Softmax(100.0, 0, 1 / 256, -128).diff_min == 0


def test_softmax_rejects_bad_quantization():
    with pytest.raises(ValueError, match="out_zp"):
        Softmax(0.1, 0, 1 / 256, 0)
    with pytest.raises(ValueError, match="out_scale"):
        Softmax(0.1, 0, 1 / 128, -128)
    with pytest.raises(ValueError, match="in_scale"):
        Softmax(0.0, 0, 1 / 256, -128)
    with pytest.raises(ValueError, match="beta"):
        Softmax(0.1, 0, 1 / 256, -128, beta=0.0)
    with pytest.raises(ValueError, match="in_zp"):
        Softmax(0.1, 200, 1 / 256, -128)
    with pytest.raises(TypeError):
        Softmax(0.1, 0, 1 / 256, -128)(np.zeros(4, np.int16))
    # TFLite's NEAR tolerance on the output scale: 0.1 % of 1/256.
    Softmax(0.1, 0, 1 / 256 * 1.0005, -128)


def test_gemmlowp_helpers_against_float():
    a = -np.arange(0, 31 << 26, 997_331, dtype=np.int64)
    exact = np.exp(a / 2.0 ** 26) * 2.0 ** 31
    assert np.max(np.abs(exp_on_negative_values(a) - exact)) < 1000     # ~5e-7 relative
    x = np.arange(0, 1 << 31, 1_000_003, dtype=np.int64)
    exact = 2.0 ** 31 / (1 + x / 2.0 ** 31)
    assert np.max(np.abs(one_over_one_plus_x_for_x_in_0_1(x) - np.minimum(exact, 2 ** 31 - 1))) < 1000


# --- LOGISTIC ------------------------------------------------------------------------------

ALL_INT8 = np.arange(-128, 128, dtype=np.int8)


@pytest.mark.parametrize("in_q", [(0.1, 5), (1 / 16, 0), (0.0390625, -10), (0.2371, 3), (0.0123, -128),
                                  (1.0, 0), (0.5, 127), (0.00390625, 0), (3.5, -3), (0.03125, -128),
                                  (0.08, 127), (0.047058823529, -1)])
def test_logistic_full_int8_range(in_q):
    interpreter = unary(Op.LOGISTIC, [256], in_q)
    assert np.array_equal(Logistic(*in_q, *OUT_Q)(ALL_INT8), run_reference(interpreter, ALL_INT8))


def test_logistic_many_random_scales_and_shapes():
    rng = np.random.default_rng(99)
    scales = np.exp(rng.uniform(np.log(1e-3), np.log(8.0), size=60))
    mismatches = 0
    for scale in scales:
        in_q = (float(scale), int(rng.integers(-128, 128)))
        interpreter = unary(Op.LOGISTIC, [256], in_q)
        mismatches += int(np.count_nonzero(Logistic(*in_q, *OUT_Q)(ALL_INT8)
                                           != run_reference(interpreter, ALL_INT8)))
    assert mismatches == 0
    for shape in ([2, 7, 5, 3], [40, 9]):
        interpreter = unary(Op.LOGISTIC, shape, (0.07, -4))
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        assert np.array_equal(Logistic(0.07, -4, *OUT_Q)(x), run_reference(interpreter, x))


def test_logistic_table_and_validation():
    table = Logistic(0.1, 0, 1 / 256, -128).table
    assert table.shape == (256,) and table[128] == 0      # sigmoid(0) = 0.5 -> 128 - 128
    assert np.all(np.diff(table.astype(int)) >= 0)
    with pytest.raises(ValueError, match="out_scale"):
        Logistic(0.1, 0, 1 / 255, -128)
    with pytest.raises(ValueError, match="out_zp"):
        Logistic(0.1, 0, 1 / 256, 0)
    with pytest.raises(ValueError, match="in_scale"):
        Logistic(-0.1, 0, 1 / 256, -128)
