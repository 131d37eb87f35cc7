"""Every rejected input of the ``rasterflow`` CLI: its message, its exit status, no traceback,
no output left behind.

:data:`CASES` is the one list of rejected inputs: each test below runs one case through the
real entry point (``rasterflow.cli.main``), and :func:`test_docs_table_lists_exactly_the_cases`
holds ``docs/errors.md`` to the same list (regenerate its table with
``python tests/test_bad_input.py``), so the documentation cannot drift from the tool.
"""
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tomli_w
from PIL import Image

from rasterflow.cli import main

DATA = Path(__file__).parent / "data"
DOC = Path(__file__).parent.parent / "docs" / "errors.md"
FIXTURE_MODEL = DATA / "tflite" / "yolo_block_64.tflite"
FIXTURE_OPERATORS = 3   # CONV_2D, LEAKY_RELU, MAX_POOL_2D


@dataclass(frozen=True)
class Rejected:
    """One rejected input: ``what`` is wrong, the ``message`` (or its stable part) printed on
    stderr, the exit ``status``, and ``argv(tmp)`` writing the files it needs into ``tmp``
    and returning the command line."""
    command: str
    what: str
    message: str
    status: int
    argv: Callable[[Path], list]


# -- inputs the cases write ----------------------------------------------------------------

def gray_png(tmp, name="in.png", shape=(4, 4), mode="L"):
    path = tmp / name
    Image.fromarray(np.zeros(shape, np.uint8)).convert(mode).save(path)
    return path


def npy(tmp, array, name="in.npy"):
    path = tmp / name
    np.save(path, array)
    return path


def write_spec(tmp, stages, *, width=4, height=4, channels=1, dtype="uint8", lanes=1, extra=None):
    doc = {"input": {"width": width, "height": height, "channels": channels, "dtype": dtype,
                     "pixels_per_clock": lanes},
           "stage": stages, **(extra or {})}
    path = tmp / "spec.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def write_sidecar(tmp, weights=None, bias=None):
    np.savez(tmp / "w.npz", weights=np.ones((4, 3, 3, 1), np.int8) if weights is None else weights,
             bias=np.zeros(4, np.int32) if bias is None else bias)


CONV = {"op": "conv2d", "weights": "w.npz:weights", "bias": "w.npz:bias", "m0": [1 << 30] * 4,
        "shift": [-8] * 4, "in_zp": 0, "out_zp": 0}
RELU6 = {"op": "relu6", "in_zp": 0, "out_zp": 0, "m0": 1 << 30, "shift": 1}
LEAKY = {"op": "leaky_relu", "in_zp": 0, "out_zp": 0, "identity_m0": 1 << 30,
         "identity_shift": 1, "alpha_m0": 1 << 30, "alpha_shift": -2}


def golden(stages=None, *, image=gray_png, output="out.png", **spec_options):
    """``rasterflow golden spec.toml IMAGE -o OUTPUT`` for a spec with ``stages``."""
    def argv(tmp):
        spec = write_spec(tmp, [{"op": "box"}] if stages is None else stages, **spec_options)
        return ["golden", str(spec), str(image(tmp)), "-o", str(tmp / output)]
    return argv


def cnn(stage, **spec_options):
    def argv(tmp):
        write_sidecar(tmp)
        image = npy(tmp, np.zeros((4, 4, 1), np.int8))
        spec = write_spec(tmp, [stage], dtype="int8", **spec_options)
        return ["golden", str(spec), str(image), "-o", str(tmp / "out.npy")]
    return argv


def cnn_arrays(weights=None, bias=None, stage=CONV):
    def argv(tmp):
        spec = cnn(stage)(tmp)
        write_sidecar(tmp, weights, bias)
        return spec
    return argv


def spec_text(text):
    def argv(tmp):
        (tmp / "spec.toml").write_text(text)
        return ["golden", str(tmp / "spec.toml"), str(gray_png(tmp)), "-o", str(tmp / "out.png")]
    return argv


def image_file(content, name):
    def write(tmp):
        (tmp / name).write_bytes(content)
        return tmp / name
    return write


def sim(*options):
    def argv(tmp):
        spec = write_spec(tmp, [{"op": "box"}])
        return ["sim", str(spec), str(gray_png(tmp)), "-o", str(tmp / "out.png"), *options]
    return argv


def model_import(model=lambda tmp: FIXTURE_MODEL, *options, output="spec.toml"):
    def argv(tmp):
        return ["import", str(model(tmp)), "-o", str(tmp / output), *options]
    return argv


def damaged_model(transform):
    def write(tmp):
        path = tmp / "model.tflite"
        path.write_bytes(transform(FIXTURE_MODEL.read_bytes()))
        return path
    return write


def unsupported_model(tmp):
    from test_tflite_import import Op, activation, build_model
    tensors = [activation([1, 4, 4, 2], 0.1, 0), activation([1, 4, 4, 2], 0.1, 0)]
    content = build_model(tensors, [(Op.TANH, [0], [1], None)], [0], [1])
    path = tmp / "model.tflite"
    path.write_bytes(content)
    return path


def board(command, *options, image=None):
    def argv(tmp):
        args = [command]
        if command in ("build", "run"):
            args.append(str(write_spec(tmp, [{"op": "box"}])))
        if image is not None:
            args.append(str(image(tmp)))
        return args + list(options)
    return argv


def flash_existing_bitstream(tmp):
    (tmp / "top.bin").write_bytes(b"\0" * 16)
    return ["flash", "--board", "icebreaker", str(tmp / "top.bin")]


# -- the cases -----------------------------------------------------------------------------

def _op_cases():
    """Out-of-range parameters: one row per parameter kind per op."""
    rows = [
        ("filter2d", "kernel not a list of lists", {"kernel": [1, 2, 1]},
         "stage[0].kernel: must be a list of lists of integers"),
        ("filter2d", "kernel tap out of range", {"kernel": [[70000]]},
         "stage[0].kernel: taps must be integers in -65535..65535"),
        ("filter2d", "kernel rows of different lengths", {"kernel": [[1, 1, 1], [1]]},
         "stage[0].kernel: rows must all have the same length"),
        ("filter2d", "kernel width even", {"kernel": [[1, 1]]},
         "stage[0].kernel: width must be odd and in 1..15, not 2"),
        ("filter2d", "kernel height even", {"kernel": [[1], [1]]},
         "stage[0].kernel: height must be odd and in 1..15, not 2"),
        ("filter2d", "shift out of range", {"kernel": [[1]], "shift": 99},
         "stage[0].shift: must be an integer in 0..32, not 99"),
        ("filter2d", "unknown rounding", {"kernel": [[1]], "rounding": "up"},
         "stage[0].rounding: must be one of"),
        ("filter2d", "unknown border", {"kernel": [[1]], "border": "wrap"},
         "stage[0].border: must be one of"),
        ("filter2d", "unknown output dtype", {"kernel": [[1]], "output": "float32"},
         "stage[0].output: must be one of"),
        ("filter2d", "border_value not an integer", {"kernel": [[1]], "border_value": 0.5},
         "stage[0].border_value: must be an integer, not 0.5"),
        ("filter2d", "border_value outside the input type", {"kernel": [[1]], "border_value": 300},
         "stage[0].border_value: must be in 0..255 for uint8 input, not 300"),
        ("sepfilter2d", "kx length even", {"kx": [1, 1], "ky": [1]},
         "stage[0].kx: width must be odd and in 1..15, not 2"),
        ("sepfilter2d", "ky not a list", {"kx": [1], "ky": 3},
         "stage[0].ky: must be a list of integers, not 3"),
        ("gaussian", "ksize not odd in 1..15", {"ksize": 4},
         "stage[0].ksize: must be one of 1, 3, 5, 7, 9, 11, 13, 15, not 4"),
        ("gaussian", "sigma out of range", {"sigma": -1.0},
         "stage[0].sigma: must be a number in 0..1000"),
        ("box", "normalize not a boolean", {"normalize": "yes"},
         "stage[0].normalize: must be true or false, not 'yes'"),
        ("sobel", "derivative order out of range", {"dx": 3},
         "stage[0].dx: must be an integer in 0..2, not 3"),
        ("sobel", "no derivative", {"dx": 0, "dy": 0},
         "stage[0].dx: dx + dy must be at least 1"),
        ("sobel", "ksize not 1/3/5/7", {"ksize": 9},
         "stage[0].ksize: must be one of 1, 3, 5, 7, not 9"),
        ("scharr", "both derivatives", {"dx": 1, "dy": 1},
         "stage[0].dx: (dx, dy) must be (1, 0) or (0, 1)"),
        ("laplacian", "ksize not 1/3", {"ksize": 5},
         "stage[0].ksize: must be one of 1, 3, not 5"),
        ("gradient_magnitude", "unknown norm", {"norm": "l3"},
         "stage[0].norm: must be one of"),
        ("median", "ksize not 3/5/7", {"ksize": 9},
         "stage[0].ksize: must be one of 3, 5, 7, not 9"),
        ("erode", "ksize not odd in 1..15", {"ksize": 17},
         "stage[0].ksize: must be one of 1, 3, 5, 7, 9, 11, 13, 15, not 17"),
        ("dilate", "unknown shape", {"shape": "disk"},
         "stage[0].shape: must be one of"),
        ("threshold", "level missing", {},
         "stage[0].level: is required"),
        ("threshold", "maxval out of range", {"level": 1, "maxval": 300},
         "stage[0].maxval: must be an integer in 0..255, not 300"),
        ("threshold", "unknown type", {"level": 1, "type": "otsu"},
         "stage[0].type: must be one of"),
    ]
    return [Rejected("golden", f"`{op}`: {what}", message, 2, golden([{"op": op, **params}]))
            for op, what, params, message in rows]


def _cnn_cases():
    rows = [
        ("conv2d", "array field not a sidecar reference", {**CONV, "weights": "w.npz"},
         'stage[0].weights: must be a sidecar reference "FILE.npz:KEY"'),
        ("conv2d", "m0 list of the wrong length", {**CONV, "m0": [1]},
         "stage[0].m0: must be a list of 4 integers"),
        ("conv2d", "m0 entry out of range", {**CONV, "m0": [-1] * 4},
         "stage[0].m0: must hold integers in 0..2147483647, not -1"),
        ("conv2d", "shift entry out of range", {**CONV, "shift": [40] * 4},
         "stage[0].shift: must hold integers in -31..31, not 40"),
        ("conv2d", "zero point out of range", {**CONV, "in_zp": 200},
         "stage[0].in_zp: must be an integer in -128..127, not 200"),
        ("conv2d", "stride out of range", {**CONV, "stride": 0},
         "stage[0].stride: must be an integer in 1..15, not 0"),
        ("conv2d", "unknown padding", {**CONV, "padding": "full"},
         "stage[0].padding: must be one of 'same', 'valid', not 'full'"),
        ("conv2d", "act_min above act_max", {**CONV, "act_min": 10, "act_max": 0},
         "stage[0].act_max: must be at least act_min (10), not 0"),
        ("conv2d", "pe above the output channels", {**CONV, "pe": 5},
         "stage[0].pe: must be an integer in 0..4, not 5"),
        ("conv2d", "simd above the window's products", {**CONV, "simd": 10},
         "stage[0].simd: must be an integer in 0..9, not 10"),
        ("depthwise_conv2d", "weights not [K, K, C]", {**CONV, "op": "depthwise_conv2d"},
         "stage[0].weights: must be an int8 array [K, K, C], not int8 of shape [4, 3, 3, 1]"),
        ("leaky_relu", "multiplier out of range", {**LEAKY, "alpha_m0": 1 << 31},
         "stage[0].alpha_m0: must be an integer in 0..2147483647"),
        ("leaky_relu", "shift out of range", {**LEAKY, "identity_shift": 32},
         "stage[0].identity_shift: must be an integer in -31..31, not 32"),
        ("relu6", "zero point out of range", {**RELU6, "out_zp": -129},
         "stage[0].out_zp: must be an integer in -128..127, not -129"),
        ("relu", "multiplier out of range", {**RELU6, "op": "relu", "m0": -1},
         "stage[0].m0: must be an integer in 0..2147483647, not -1"),
        ("relu_n1_to_1", "clamp out of int8", {**RELU6, "op": "relu_n1_to_1", "act_min": -200},
         "stage[0].act_min: must be an integer in -128..127, not -200"),
        ("max_pool", "window size out of range", {"op": "max_pool", "size": 9},
         "stage[0].size: must be an integer in 1..8, not 9"),
        ("max_pool", "stride out of range", {"op": "max_pool", "stride": 0},
         "stage[0].stride: must be an integer in 1..8, not 0"),
    ]
    cases = [Rejected("golden", f"`{op}`: {what}", message, 2, cnn(stage))
             for op, what, stage, message in rows]
    return cases + [
        Rejected("golden", "`conv2d`: kernel not odd and square",
                 "stage[0].weights: kernel must be square with an odd size in 1..15", 2,
                 cnn_arrays(weights=np.ones((4, 3, 2, 1), np.int8))),
        Rejected("golden", "`conv2d`: weights not int8",
                 "stage[0].weights: must be an int8 array [Cout, K, K, Cin], not float32", 2,
                 cnn_arrays(weights=np.ones((4, 3, 3, 1), np.float32))),
        Rejected("golden", "`conv2d`: bias length not the output channels",
                 "stage[0].bias: must have 4 entries (one per output channel), not 3", 2,
                 cnn_arrays(bias=np.zeros(3, np.int32))),
        Rejected("golden", "`conv2d`: input channels differ from the weights'",
                 "stage[0].op: conv2d expects 1 input channels; its input has 2", 2,
                 cnn(CONV, channels=2)),
        Rejected("golden", "`conv2d` on uint8 pixels",
                 "stage[0].op: conv2d takes int8 pixels; its input is 1xuint8", 2,
                 lambda tmp: write_sidecar(tmp) or golden([CONV])(tmp)),
        Rejected("golden", "`conv2d` with `pixels_per_clock` > 1",
                 "input.pixels_per_clock: must be 1 for stage[0] (conv2d)", 2,
                 cnn(CONV, lanes=2)),
    ]


def _graph_cases():
    """Stages that do not form a graph, or join streams that do not match."""
    blur = {"name": "blur", "op": "gaussian"}
    blend = {"name": "sharp", "op": "add_weighted", "alpha": 1.5, "beta": -0.5,
             "inputs": ["input", "blur"]}
    rows = [
        ("unknown input name", [blur, {**blend, "inputs": ["input", "blurr"]}],
         "stage[1].inputs: unknown stage 'blurr'; known: input, blur, sharp", None),
        ("duplicate stage name", [blur, {**blur, "ksize": 5}],
         "stage[1].name: duplicate name 'blur' (also stage[0])", None),
        ("cycle", [{**blur, "inputs": ["sharp"]}, blend],
         "stage[0].inputs: the graph has a cycle: blur -> sharp -> blur", None),
        ("stage nobody reads", [blur, {"op": "threshold", "level": 9, "inputs": ["input"]}],
         "stage[0]: 'blur' is read by no stage and is not in outputs (stage1)", None),
        ("wrong input count", [blur, {**blend, "inputs": ["blur"]}],
         "stage[1].inputs: add_weighted takes 2 inputs, not 1", None),
        ("join of mismatched formats", [{"name": "blur", "op": "sobel"}, blend],
         "stage[1].inputs: add_weighted needs two 4x4x1 uint8 inputs of one format, got "
         "4x4x1 uint8 and 4x4x1 int16", None),
        ("unknown output", [blur], "outputs: unknown stage 'edges'; stages: blur", ["edges"]),
    ]
    return [Rejected("golden", f"graph: {what}", message, 2,
                     golden(stages, extra=None if outputs is None else {"outputs": outputs}))
            for what, stages, message, outputs in rows]


def _sidecar_cases():
    def missing(tmp):
        argv = cnn(CONV)(tmp)
        (tmp / "w.npz").unlink()
        return argv

    def npy_instead(tmp):
        argv = cnn({**CONV, "weights": "w.npy:weights"})(tmp)
        np.save(tmp / "w.npy", np.ones(3, np.int8))
        return argv

    def corrupt(tmp):
        argv = cnn(CONV)(tmp)
        (tmp / "w.npz").write_bytes(b"PK\3\4 not a zip")
        return argv

    return [
        Rejected("golden", "sidecar file missing", "stage[0].weights: sidecar", 2, missing),
        Rejected("golden", "sidecar key missing", "has no array 'nope' (it has: bias, weights)", 2,
                 cnn({**CONV, "bias": "w.npz:nope"})),
        Rejected("golden", "sidecar is a .npy, not an .npz", "is a .npy array, not an .npz archive",
                 2, npy_instead),
        Rejected("golden", "sidecar unreadable", "stage[0].weights: cannot read sidecar", 2,
                 corrupt),
    ]


EXAMPLE_MODEL = Path(__file__).parent.parent / "examples" / "yolov3_tiny_block1.toml"


def model_golden(write_input, edit=None):
    """``rasterflow golden`` on a copy of the imported example model spec (``edit`` changes
    its TOML text) with the input ``write_input(tmp)`` writes."""
    def argv(tmp):
        text = EXAMPLE_MODEL.read_text()
        (tmp / "model.toml").write_text(edit(text) if edit else text)
        shutil.copy(EXAMPLE_MODEL.with_suffix(".npz"), tmp / EXAMPLE_MODEL.with_suffix(".npz").name)
        return ["golden", str(tmp / "model.toml"), str(write_input(tmp)), "-o", str(tmp / "o.npy")]
    return argv


def _model_cases():
    tensor = np.zeros((64, 64, 3), np.int8)
    return [
        Rejected("golden", "model input not a .npy", "a model spec takes its input tensor as a "
                 ".npy array", 2, model_golden(gray_png)),
        Rejected("golden", "model input of the wrong shape", "shape [4, 4, 3] is neither the "
                 "model input [64, 64, 3] nor a batch of them [N, 64, 64, 3]", 2,
                 model_golden(lambda tmp: npy(tmp, np.zeros((4, 4, 3), np.int8)))),
        Rejected("golden", "model input of the wrong dtype", "dtype float32; the model takes "
                 "int8", 2, model_golden(lambda tmp: npy(tmp, tensor.astype(np.float32)))),
        Rejected("golden", "`[model]` input shape not the stream", "model.input.shape: [1, 64, 64, "
                 "4] (nhwc) does not describe the input stream 64x64x3 int8", 2,
                 model_golden(lambda tmp: npy(tmp, tensor),
                              lambda text: text.replace("    64,\n    3,\n]\nscale",
                                                        "    64,\n    4,\n]\nscale", 1))),
        Rejected("golden", "`[model]` output of another stage", "model.output[0].node: must be "
                 "one of the outputs (op2_max_pool_2d), not 'op0_conv_2d'", 2,
                 model_golden(lambda tmp: npy(tmp, tensor),
                              lambda text: text.replace('node = "op2_max_pool_2d"',
                                                        'node = "op0_conv_2d"'))),
    ]


CASES = [
    # -- the spec file ---------------------------------------------------------------------
    Rejected("golden", "spec file missing", "error: spec: cannot read", 2,
             lambda tmp: ["golden", str(tmp / "nope.toml"), "in.png", "-o", str(tmp / "o.png")]),
    Rejected("golden", "spec not valid TOML", "is not valid TOML", 2, spec_text("[input\n")),
    Rejected("golden", "unknown top-level key", "colour: unknown key; allowed keys: input, model, name, "
             "outputs, stage", 2, golden(extra={"colour": 1})),
    Rejected("golden", "module name not an identifier",
             "name: must be an identifier (letters, digits, _)", 2, golden(extra={"name": "9x"})),
    Rejected("golden", "`[input]` missing", "input: is required", 2,
             spec_text('[[stage]]\nop = "box"\n')),
    Rejected("golden", "frame size out of range", "input.width: must be an integer in 1..4096, "
             "not 5000", 2, golden(width=5000)),
    Rejected("golden", "channels out of range", "input.channels: must be an integer in 1..1024",
             2, golden(channels=0)),
    Rejected("golden", "unknown input dtype", "input.dtype: must be one of", 2,
             golden(dtype="float32")),
    Rejected("golden", "pixels_per_clock not 1/2/4/8",
             "input.pixels_per_clock: must be one of 1, 2, 4, 8, not 3", 2,
             golden(lanes=3)),
    Rejected("golden", "no stages", "stage: must be a non-empty array of tables", 2,
             golden(stages=[])),
    Rejected("golden", "stage without `op`", "stage[0].op: is required; one of", 2,
             golden([{"ksize": 3}])),
    Rejected("golden", "unknown op", "stage[0].op: must be one of absdiff, add, add_weighted, average_pool, bitwise_and", 2,
             golden([{"op": "blur"}])),
    Rejected("golden", "unknown stage key", "stage[0].sigma: unknown key; allowed keys: border, "
             "ksize, normalize", 2, golden([{"op": "box", "sigma": 1}])),
    Rejected("golden", "required stage key missing", "stage[0].kernel: is required", 2,
             golden([{"op": "filter2d"}])),
    *_op_cases(),
    *_graph_cases(),
    *_cnn_cases(),
    *_sidecar_cases(),
    *_model_cases(),
    # -- stages chained / frame size -------------------------------------------------------
    Rejected("golden", "stage input of the wrong type (int16 into a uint8 op)",
             "stage[1].op: gradient_magnitude needs uint8 input", 2,
             golden([{"op": "sobel"}, {"op": "gradient_magnitude"}], output="out.npy")),
    Rejected("golden", "stage input with the wrong channels",
             "stage[0].op: rgb2gray needs uint8 input with 3 channels, not 1xuint8", 2,
             golden([{"op": "rgb2gray"}])),
    Rejected("golden", "frame smaller than the window", "input.width: must be at least 3 for a "
             "5-tap window, not 2", 2, golden([{"op": "gaussian", "ksize": 5}], width=2)),
    # -- the image -------------------------------------------------------------------------
    Rejected("golden", "image missing", ": no such file", 2,
             golden(image=lambda tmp: tmp / "missing.png")),
    Rejected("golden", "image unreadable", "not a readable image", 2,
             golden(image=image_file(b"not a png", "in.png"))),
    Rejected("golden", "image a palette PNG", "mode P is not supported; use an 8-bit gray (L) "
             "or RGB image", 2, golden(image=lambda tmp: gray_png(tmp, mode="P"))),
    Rejected("golden", "image a 16-bit PNG", "mode I;16 is not supported", 2,
             golden(image=lambda tmp: _png16(tmp))),
    Rejected("golden", ".npy unreadable", "not a readable .npy array", 2,
             golden(image=image_file(b"\x93NUMPY garbage", "in.npy"))),
    Rejected("golden", ".npy of the wrong rank", "expected an H x W, H x W x C or N x H x W x C "
             "array, got shape (16,)", 2, golden(image=lambda tmp: npy(tmp, np.zeros(16, np.uint8)))),
    Rejected("golden", "image size differs from the spec",
             "is 5x4x1 (H x W x C), but the spec's input is 4x4x1", 2,
             golden(image=lambda tmp: gray_png(tmp, shape=(5, 4)))),
    Rejected("golden", "image channels differ from the spec",
             "is 4x4x3 (H x W x C), but the spec's input is 4x4x1", 2,
             golden(image=lambda tmp: gray_png(tmp, mode="RGB"))),
    Rejected("golden", "image dtype differs from the spec",
             "has dtype float32, but the spec's input.dtype is uint8", 2,
             golden(image=lambda tmp: npy(tmp, np.zeros((4, 4, 1), np.float32)))),
    Rejected("golden", "NHWC batch with a frame of the wrong shape",
             "frame 0 is 4x5x1 (H x W x C), but the spec's input is 4x4x1", 2,
             golden(image=lambda tmp: npy(tmp, np.zeros((2, 4, 5, 1), np.uint8)))),
    # -- the output ------------------------------------------------------------------------
    Rejected("golden", "output neither .png nor .npy", ": use a .png or .npy file name", 2,
             golden(output="out.jpg")),
    Rejected("golden", "PNG output for an int16 result",
             "which a PNG cannot hold; name the output .npy", 2, golden([{"op": "sobel"}])),
    Rejected("golden", "output directory not writable", ": cannot write (", 2,
             golden(output="spec.toml/out.png")),
    Rejected("verilog", "Verilog output not writable", ": cannot write (", 2,
             lambda tmp: ["verilog", str(write_spec(tmp, [{"op": "box"}])), "-o",
                          str(tmp / "spec.toml" / "top.v")]),
    # -- sim options -----------------------------------------------------------------------
    Rejected("sim", "`--stall` outside [0, 1)", "--stall must be in [0, 1), not 1.5", 2,
             sim("--stall", "1.5")),
    Rejected("sim", "`--frames` below 1", "--frames must be at least 1, not 0", 2,
             sim("--frames", "0")),
    Rejected("sim", "`--frames` not an integer", "argument --frames: invalid int value: 'two'",
             2, sim("--frames", "two")),
    # -- import ----------------------------------------------------------------------------
    Rejected("import", "model missing", "error: model", 2,
             model_import(lambda tmp: tmp / "missing.tflite")),
    Rejected("import", "model not a .tflite file", "not a TFLite flatbuffer (no 'TFL3' file "
             "identifier)", 2, model_import(damaged_model(lambda data: b"\0" * 64))),
    Rejected("import", "model truncated", "corrupt or truncated TFLite flatbuffer", 2,
             model_import(damaged_model(lambda data: data[:200]))),
    Rejected("import", "unsupported operator", "operator 0 (TANH): unsupported "
             "operator (supported: CONV_2D,", 2, model_import(unsupported_model)),
    Rejected("import", "`--layers` not A:B", "--layers must be A:B (operators A..B-1), not '2'", 2,
             model_import(lambda tmp: FIXTURE_MODEL, "--layers", "2")),
    Rejected("import", "`--layers` not integers", "--layers must be A:B with integers, not "
             "'a:b'", 2, model_import(lambda tmp: FIXTURE_MODEL, "--layers", "a:b")),
    Rejected("import", "`--layers` outside the model",
             f"layers 2:9 is not a non-empty range of the operators 0..{FIXTURE_OPERATORS - 1}", 2,
             model_import(lambda tmp: FIXTURE_MODEL, "--layers", "2:9")),
    Rejected("import", "spec output not .toml", ": the spec must be a .toml file", 2,
             model_import(lambda tmp: FIXTURE_MODEL, output="spec.yaml")),
    Rejected("import", "`--cycles-per-pixel` below 1", "--cycles-per-pixel must be at least 1, "
             "not 0", 2, model_import(lambda tmp: FIXTURE_MODEL, "--cycles-per-pixel", "0")),
    # -- boards ----------------------------------------------------------------------------
    Rejected("build", "unknown board", "argument --board: invalid choice: 'nexys'", 2,
             board("build", "--board", "nexys")),
    Rejected("build", "design does not fit the board",
             "design does not fit icebreaker (iCE40UP5K), per Yosys cell counts: dsp 9/8 "
             "(1 over, 112%)", 1, board("build", "--board", "icebreaker")),
    Rejected("flash", "bitstream missing", "bitstream", 1,
             lambda tmp: ["flash", "--board", "icebreaker", str(tmp / "top.bin")]),
    Rejected("flash", "programmer not installed", "programmer 'iceprog' for icebreaker not "
             "found", 1, flash_existing_bitstream),
    Rejected("run", "image of the wrong size for the board run",
             "is (5, 4, 1) (H x W x C); the pipeline takes (4, 4, 1)", 1,
             board("run", "--board", "icebreaker", "--port", "/dev/null",
                   image=lambda tmp: gray_png(tmp, shape=(5, 4)))),
    Rejected("run", "no serial port given or found", "cannot pick the serial port of "
             "icebreaker", 1, board("run", "--board", "icebreaker", image=gray_png)),
]


def _png16(tmp):
    path = tmp / "in.png"
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(path)
    return path


# -- environment of the board cases --------------------------------------------------------

@pytest.fixture
def no_board_tools(monkeypatch, tmp_path_factory):
    """No programmer on PATH or beside Python, no serial ports, and a build step that reports
    an iCE40 design one DSP over budget (as :func:`boards.build.build` does after Yosys)."""
    from rasterflow.boards import build as board_build
    from rasterflow.boards.platforms import get_board
    from serial.tools import list_ports

    def build_too_big(pipeline, board_name, build_dir, **options):
        board = get_board(board_name)
        usage = dict(board.budget, dsp=board.budget["dsp"] + 1)
        raise board_build._over_budget(board, usage, "Yosys cell counts")

    monkeypatch.setattr(board_build, "build", build_too_big)
    monkeypatch.setattr(board_build, "_find_command", lambda name: None)
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.setattr(list_ports, "comports", lambda: [])


def run_cli(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as exit_:   # argparse's own usage errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}: {c.what}" for c in CASES])
def test_rejected_input(case, tmp_path, capsys, no_board_tools):
    argv = case.argv(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    status, out, err = run_cli(argv, capsys)
    assert status == case.status, err
    assert case.message in err, err
    assert "Traceback" not in out + err
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before, "a rejected command wrote or changed a file"


# -- the documentation ---------------------------------------------------------------------

TABLE_HEADER = ["| command | rejected input | message (stable part, on stderr) | exit |",
                "|---|---|---|---|"]


def table_rows(cases=CASES):
    return [f"| `{c.command}` | {c.what} | `{c.message}` | {c.status} |" for c in cases]


def doc_rows(text):
    lines = text.splitlines()
    start = lines.index(TABLE_HEADER[0])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_docs_table_lists_exactly_the_cases():
    assert doc_rows(DOC.read_text()) == table_rows(), \
        "docs/errors.md is out of date: run python tests/test_bad_input.py"


def test_doc_rows_are_parsed_from_the_table():
    text = "intro\n\n" + "\n".join(TABLE_HEADER + table_rows(CASES[:2])) + "\n\nafter | x |\n"
    assert doc_rows(text) == table_rows(CASES[:2])


if __name__ == "__main__":
    text = DOC.read_text()
    old = "\n".join(TABLE_HEADER + doc_rows(text))
    DOC.write_text(text.replace(old, "\n".join(TABLE_HEADER + table_rows())))
    print(f"{DOC}: {len(CASES)} rows", file=sys.stderr)
