"""Int8 CNN stages: ``conv2d``, ``depthwise_conv2d``, ``leaky_relu``, ``relu``, ``relu6``,
``relu_n1_to_1``, ``max_pool``.

Each stage is the integer form of one TFLite int8 operator (what
:mod:`rasterflow.tflite_import` resolves), so its golden model is the matching layer of
:mod:`rasterflow.golden.cnn` and its hardware is in ``hdl/conv.py``, ``hdl/activation.py`` and
``hdl/pool.py``. Pixels are ``C x int8`` (``[input] dtype = "int8"``).

Spec format (TOML; ``rasterflow import`` writes it)::

    [[stage]]
    op = "conv2d"                       # or "depthwise_conv2d" (depth_multiplier = M)
    weights = "model.npz:layer0.weights"  # int8 [Cout, K, K, Cin] (depthwise [K, K, C * M])
    bias = "model.npz:layer0.bias"        # int32 [Cout]
    m0 = [1234567890, ...]              # per output channel, TFLite QuantizeMultiplier
    shift = [-8, ...]                   # per output channel, TFLite's signed exponent
    in_zp = -128
    out_zp = 11
    stride = 1
    padding = "same"                    # or "valid"
    act_min = -128                      # fused activation clamp (RELU/RELU6 in int8)
    act_max = 127
    pe = 4                              # output channels in parallel (0: 1)
    simd = 27                           # products per PE per cycle (0: K*K*Cin, depthwise K*K)

    [[stage]]
    op = "leaky_relu"
    in_zp = 11
    out_zp = -101
    identity_m0 = 2103461248
    identity_shift = 1
    alpha_m0 = 1682769024
    alpha_shift = -2

    [[stage]]
    op = "relu6"                        # also "relu", "relu_n1_to_1": requantize + clamp
    in_zp = -128
    out_zp = -128
    m0 = 1073741824
    shift = 1
    act_min = -128
    act_max = 127

    [[stage]]
    op = "max_pool"
    size = 2
    stride = 2
    padding = "same"
    act_min = -128
    act_max = 127

Array fields are references ``"FILE.npz:KEY"`` into a sidecar ``.npz`` (resolved relative to
the spec's directory); a missing file, key, or an array of the wrong dtype or shape is a
:class:`SpecError` naming the field. Python code may pass arrays directly (``arrays=``).

Each golden layer class has exactly one stage class made from it, which declares it as
``layer_type`` and says how (``from_layer``) and how it folds (``balanced_folding``,
``output_size``); :data:`LAYER_STAGES` collects them for :func:`stage_from_layer` and
:func:`plan_folding`.
"""
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from .errors import SpecError
from .golden import cnn as golden_cnn
from .golden.cnn import INT8_MAX, INT8_MIN
from .golden.pixel import PixelFormat
from .hdl.activation import RequantActivation
from .hdl.conv import Conv2DUnit, conv_geometry, mac_layer_report
from .hdl.pool import MaxPoolUnit, pool_taps
from .params import SidecarArray, check_int, from_table, param, params_of
from .stages import Bound, Stage, check_window_fits, fixed_timing, register_stage

__all__ = ["Conv2DStage", "DepthwiseConv2DStage", "LeakyReluStage", "ReluStage",
           "Relu6Stage", "ReluN1To1Stage", "MaxPoolStage", "LAYER_STAGES", "stage_from_layer",
           "plan_folding", "fold_for_budget", "balanced_mac_folding", "resolve_array"]

INT8 = "int8"
PADDINGS = ("same", "valid")
MAX_CHANNELS = 1024
MAX_M0 = (1 << 31) - 1
MAX_SHIFT = 31


def resolve_array(ref, field_name, base_dir):
    """Load the array a ``"FILE.npz:KEY"`` reference names (relative to ``base_dir``)."""
    if not isinstance(ref, str) or ":" not in ref:
        raise SpecError(field_name, f'must be a sidecar reference "FILE.npz:KEY", not {ref!r}')
    name, key = ref.rsplit(":", 1)
    if not name or not key:
        raise SpecError(field_name, f'must be a sidecar reference "FILE.npz:KEY", not {ref!r}')
    path = Path(base_dir if base_dir is not None else ".") / name
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):
            raise SpecError(field_name, f"{path} is a .npy array, not an .npz archive")
        with archive:
            if key not in archive.files:
                raise SpecError(field_name, f"{path} has no array {key!r} (it has: "
                                            f"{', '.join(sorted(archive.files)) or 'none'})")
            return np.array(archive[key])
    except FileNotFoundError:
        raise SpecError(field_name, f"sidecar {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise SpecError(field_name, f"cannot read sidecar {path}: {error}") from None


def _check_count(field_name, value, count):
    if len(value) != count:
        raise SpecError(field_name, f"must be a list of {count} integers, not {value!r}")


def _check_array(field_name, array, dtype, ndim, what):
    array = np.asarray(array)
    if array.dtype != np.dtype(dtype) or array.ndim != ndim:
        raise SpecError(field_name, f"must be an {np.dtype(dtype).name} array {what}, not {array.dtype} "
                                    f"of shape {list(array.shape)}")
    return array


def _check_activation_order(stage):
    if stage.act_min > stage.act_max:
        raise SpecError("act_max", f"must be at least act_min ({stage.act_min}), not {stage.act_max}")


def _check_input(stage, in_format, channels):
    if in_format.dtype != INT8:
        raise SpecError("op", f"{stage.op} takes int8 pixels; its input is {in_format}")
    if channels is not None and in_format.channels != channels:
        raise SpecError("op", f"{stage.op} expects {channels} input channels; its input has "
                              f"{in_format.channels}")


def _window_output_size(width, height, kernel, stride, padding):
    """``(out_width, out_height)`` of a ``kernel``-tap window sliding over the frame."""
    return (conv_geometry(width, kernel, stride, padding)[0],
            conv_geometry(height, kernel, stride, padding)[0])


def divisors(n):
    """The divisors of ``n`` in increasing order (the foldings a MAC array can take)."""
    return [d for d in range(1, n + 1) if n % d == 0]


def balanced_mac_folding(channels, terms, pixels, budget):
    """The ``(pe, simd)`` of a MAC array of ``channels`` outputs, each a sum of ``terms``
    products: the fewest multipliers ``pe * simd`` (``pe`` dividing ``channels``, ``simd``
    dividing ``terms``) whose ``II = (terms/simd) * (channels/pe)`` satisfies ``pixels * II
    <= budget``; ties go to the smaller ``II``. Without one, the full array (``II = 1``)."""
    best = None
    for pe in divisors(channels):
        for simd in divisors(terms):
            ii = (terms // simd) * (channels // pe)
            if pixels * ii <= budget:
                key = (pe * simd, ii, -simd)
                if best is None or key < best[0]:
                    best = (key, pe, simd)
    return (best[1], best[2]) if best else (channels, terms)


def _geometry(width, height, kernel, stride, padding):
    try:
        out_w, out_h = _window_output_size(width, height, kernel, stride, padding)
    except ValueError as error:
        raise SpecError("input.width", str(error)) from None
    check_window_fits(width, height, kernel, kernel)
    return out_w, out_h


# Parameters several layers share, declared once (functions: see params.param).

def _zero_point_param(which):
    return param(lo=INT8_MIN, hi=INT8_MAX, doc=f"zero point of the {which}")


def _clamp_param(default, end):
    return param(default, lo=INT8_MIN, hi=INT8_MAX, doc=f"{end} output (fused activation clamp)")


def _m0_param(doc):
    return param(lo=0, hi=MAX_M0, doc=f"{doc} (TFLite QuantizeMultiplier, Q0.31)")


def _shift_param(doc):
    return param(lo=-MAX_SHIFT, hi=MAX_SHIFT, doc=f"{doc} (TFLite's signed exponent)")


def _padding_param(default):
    return param(default, choices=PADDINGS, doc="TFLite padding")


def _array_params(cls):
    return [name for name, p in params_of(cls).items() if p.type is SidecarArray]


_LAYER_STAGES = {}
#: ``{golden layer class: the stage class made from it}``; read-only, filled by the
#: :class:`_LayerStage` subclasses that declare ``layer_type``.
LAYER_STAGES = MappingProxyType(_LAYER_STAGES)


class _LayerStage(Stage):
    """A stage whose golden model is its TFLite ``layer``.

    A subclass that sets ``layer_type`` (a registered :mod:`~rasterflow.golden.cnn` class) is
    the stage made from that layer type, entered in :data:`LAYER_STAGES`; its subclasses
    inherit the role without registering again.
    """
    layer_type: ClassVar[type] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "layer_type" in vars(cls):
            _register_layer_stage(cls)

    @classmethod
    def from_layer(cls, layer, *, op_name, refs, pe, simd):
        """The stage for golden ``layer`` (see :func:`stage_from_layer` for the options)."""
        raise NotImplementedError

    @staticmethod
    def output_size(layer, width, height):
        """``(width, height)`` of the layer's output; the default keeps the frame size."""
        return width, height

    @classmethod
    def balanced_folding(cls, layer, pixels, budget):
        """``(pe, simd)`` that computes ``pixels`` output pixels within ``budget`` cycles, or
        None for a stage without a MAC array (the default)."""
        return None

    def golden(self, frame, bound):
        return self.layer(np.asarray(frame))


class _SidecarStage(_LayerStage):
    """A layer stage with array parameters (``SidecarArray`` fields): ndarrays, or sidecar
    references whose arrays its ``arrays`` field holds (``from_spec`` resolves them)."""

    @classmethod
    def from_spec(cls, table, where, *, base_dir=None):
        try:
            arrays = {name: resolve_array(table[name], name, base_dir)
                      for name in _array_params(cls) if name in table}
        except SpecError as error:
            raise error.within(where) from None
        return from_table(cls, table, where, arrays=arrays)

    def _given_arrays(self, optional=()):
        """``{name: ndarray}`` of the array fields: from ``arrays``, else the field's own
        ndarray; a field named in ``optional`` may be None (then it has none). A field
        without its array is a SpecError naming it."""
        arrays = dict(self.arrays or {})
        for name in _array_params(type(self)):
            value = getattr(self, name)
            if name in arrays or (name in optional and value is None):
                continue
            if not isinstance(value, np.ndarray):
                raise SpecError(name, "needs its array (a sidecar reference resolved by "
                                      "from_spec, or an ndarray)")
            arrays[name] = value
        return arrays


def _register_layer_stage(cls):
    layer_type = cls.layer_type
    if golden_cnn.LAYER_TYPES.get(layer_type.__name__) is not layer_type:
        raise TypeError(f"{cls.__name__}: layer_type {layer_type!r} is not a registered "
                        "golden layer class")
    if layer_type in _LAYER_STAGES:
        raise TypeError(f"{cls.__name__}: golden {layer_type.__name__} already makes "
                        f"{_LAYER_STAGES[layer_type].__name__}; a layer type has one stage class")
    _LAYER_STAGES[layer_type] = cls


@dataclass(frozen=True)
class _ConvBase(_SidecarStage):
    """A convolution. Its array parameters are ndarrays or sidecar references with the
    arrays in ``arrays`` (``from_spec`` resolves them)."""
    weights: SidecarArray = param(doc="int8 weights [Cout, K, K, Cin] (depthwise_conv2d: "
                                      "[K, K, C * M]), K odd in 1..15")
    bias: SidecarArray = param(doc="int32 bias [Cout]")
    m0: list = _m0_param("requantization multiplier per output channel")
    shift: list = _shift_param("requantization shift per output channel")
    in_zp: int = _zero_point_param("input")
    out_zp: int = _zero_point_param("output")
    stride: int = param(1, lo=1, hi=15, doc="stride on both axes")
    padding: str = _padding_param("same")
    act_min: int = _clamp_param(-128, "lowest")
    act_max: int = _clamp_param(127, "highest")
    pe: int = param(0, doc="output channels computed in parallel, 0..Cout (0: 1)")
    simd: int = param(0, doc="products per PE per cycle, 0..K*K*Cin (depthwise K*K; 0: all)")
    arrays: dict = field(default=None, repr=False, compare=False)
    DEPTHWISE: ClassVar[bool] = False

    def __post_init__(self):
        super().__post_init__()
        arrays = self._given_arrays()
        if self.DEPTHWISE:
            weights = _check_array("weights", arrays["weights"], np.int8, 3, "[K, K, C]")
            channels = weights.shape[2]
        else:
            weights = _check_array("weights", arrays["weights"], np.int8, 4, "[Cout, K, K, Cin]")
            channels = weights.shape[0]
        kernel = weights.shape[0] if self.DEPTHWISE else weights.shape[1]
        if weights.shape[self.DEPTHWISE and 1 or 2] != kernel or kernel % 2 == 0 or \
                not 1 <= kernel <= 15:
            raise SpecError("weights", f"kernel must be square with an odd size in 1..15, got "
                                       f"shape {list(weights.shape)}")
        bias = _check_array("bias", arrays["bias"], np.int32, 1, f"[{channels}]")
        if bias.shape != (channels,):
            raise SpecError("bias", f"must have {channels} entries (one per output channel), "
                                    f"not {bias.shape[0]}")
        _check_count("m0", self.m0, channels)
        _check_count("shift", self.shift, channels)
        _check_activation_order(self)
        terms = kernel * kernel * (1 if self.DEPTHWISE else weights.shape[3])
        check_int("pe", self.pe, 0, channels)
        check_int("simd", self.simd, 0, terms)
        try:
            layer = self.layer_type(
                weights, bias, self.stride, self.padding, self.in_zp, self.out_zp,
                np.array(self.m0, dtype=np.int64), np.array(self.shift, dtype=np.int64),
                self.act_min, self.act_max)
        except ValueError as error:
            raise SpecError("weights", str(error)) from None
        object.__setattr__(self, "arrays", {"weights": weights, "bias": bias})
        object.__setattr__(self, "layer", layer)
        object.__setattr__(self, "kernel", kernel)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "in_channels", weights.shape[2 if self.DEPTHWISE else 3])
        object.__setattr__(self, "out_channels", channels)

    @classmethod
    def from_layer(cls, layer, *, refs, pe, simd, **_):
        # With refs, to_table writes the references; the checks and hardware use the
        # layer's own arrays either way.
        refs = refs or {}
        return cls(weights=refs.get("weights", layer.weights), bias=refs.get("bias", layer.bias),
                   m0=[int(v) for v in layer.m0], shift=[int(v) for v in layer.shift],
                   in_zp=layer.in_zp, out_zp=layer.out_zp, stride=layer.stride,
                   padding=layer.padding, act_min=layer.act_min, act_max=layer.act_max,
                   pe=pe, simd=simd,
                   arrays={"weights": np.asarray(layer.weights), "bias": np.asarray(layer.bias)})

    @staticmethod
    def output_size(layer, width, height):
        return _window_output_size(width, height, layer.kernel, layer.stride, layer.padding)

    @classmethod
    def balanced_folding(cls, layer, pixels, budget):
        """:func:`balanced_mac_folding` of the ``Cout`` output channels, each a sum of
        ``T = K*K*Cin`` products (depthwise ``K*K``)."""
        channels = layer.channels if cls.DEPTHWISE else layer.out_channels
        terms = layer.kernel ** 2 * (1 if cls.DEPTHWISE else layer.in_channels)
        return balanced_mac_folding(channels, terms, pixels, budget)

    @property
    def folding(self):
        """``(pe, simd)`` in effect (0 means the default: ``pe = 1``, ``simd = T``)."""
        return self.pe or 1, self.simd or self.terms

    def bind(self, in_format, width, height):
        _check_input(self, in_format, self.in_channels)
        out_w, out_h = _geometry(width, height, self.kernel, self.stride, self.padding)
        return Bound(self, in_format, width, height, PixelFormat(self.out_channels, INT8),
                     out_w, out_h)

    def hardware(self, bound):
        pe, simd = self.folding
        return Conv2DUnit(bound.width, bound.height, self.arrays["weights"], self.arrays["bias"],
                          self.m0, self.shift, in_zp=self.in_zp, out_zp=self.out_zp,
                          stride=self.stride, padding=self.padding, act_min=self.act_min,
                          act_max=self.act_max, pe=pe, simd=simd, depthwise=self.DEPTHWISE)

    def timing(self, bound):
        pe, simd = self.folding
        return Conv2DUnit.timing(bound.width, bound.height, kernel=self.kernel,
                                 terms=self.terms, out_channels=self.out_channels,
                                 stride=self.stride, padding=self.padding, pe=pe, simd=simd)

    def sim_report(self, bound, frames, cycles):
        return mac_layer_report(self.op, *self.folding, self.timing(bound),
                                frames * bound.out_width * bound.out_height, cycles)


@register_stage
@dataclass(frozen=True)
class Conv2DStage(_ConvBase):
    """``conv2d``: TFLite CONV_2D int8 (per-channel), odd square kernel, any stride."""
    op: ClassVar[str] = "conv2d"
    layer_type: ClassVar[type] = golden_cnn.Conv2D


@register_stage
@dataclass(frozen=True)
class DepthwiseConv2DStage(_ConvBase):
    """``depthwise_conv2d``: TFLite DEPTHWISE_CONV_2D int8, any depth multiplier ``M``: ``C``
    input channels, ``C * M`` output channels, output channel ``oc`` reading input channel
    ``oc // M``."""
    op: ClassVar[str] = "depthwise_conv2d"
    layer_type: ClassVar[type] = golden_cnn.DepthwiseConv2D
    DEPTHWISE: ClassVar[bool] = True
    depth_multiplier: int = param(1, lo=1, hi=MAX_CHANNELS,
                                  doc="output channels per input channel (TFLite's depth "
                                      "multiplier M): weights [K, K, C * M] for C input "
                                      "channels")

    def __post_init__(self):
        # The base checks the weights [K, K, C * M] against the bias and multipliers of the
        # C * M output channels, and builds the layer for M = 1; M then splits the channels.
        super().__post_init__()
        if self.out_channels % self.depth_multiplier:
            raise SpecError("depth_multiplier", f"must divide the {self.out_channels} weight "
                                                f"channels, not {self.depth_multiplier}")
        object.__setattr__(self, "layer",
                           replace(self.layer, depth_multiplier=self.depth_multiplier))
        object.__setattr__(self, "in_channels", self.out_channels // self.depth_multiplier)

    @classmethod
    def from_layer(cls, layer, **options):
        return replace(super().from_layer(layer, **options),
                       depth_multiplier=layer.depth_multiplier)

    @classmethod
    def balanced_folding(cls, layer, pixels, budget):
        # The base folds ``layer.channels`` output channels: with M = 1, all C * M of them.
        return super().balanced_folding(replace(layer, depth_multiplier=1), pixels, budget)

    def hardware(self, bound):
        pe, simd = self.folding
        return Conv2DUnit(bound.width, bound.height, self.arrays["weights"], self.arrays["bias"],
                          self.m0, self.shift, in_zp=self.in_zp, out_zp=self.out_zp,
                          stride=self.stride, padding=self.padding, act_min=self.act_min,
                          act_max=self.act_max, pe=pe, simd=simd, depthwise=True,
                          depth_multiplier=self.depth_multiplier)


@register_stage
@dataclass(frozen=True)
class LeakyReluStage(_LayerStage):
    """``leaky_relu``: TFLite LEAKY_RELU int8 (identity and alpha multipliers)."""
    op: ClassVar[str] = "leaky_relu"
    layer_type: ClassVar[type] = golden_cnn.LeakyRelu
    in_zp: int = _zero_point_param("input")
    out_zp: int = _zero_point_param("output")
    identity_m0: int = _m0_param("multiplier of inputs >= the zero point")
    identity_shift: int = _shift_param("shift of inputs >= the zero point")
    alpha_m0: int = _m0_param("multiplier of inputs below the zero point (times alpha)")
    alpha_shift: int = _shift_param("shift of inputs below the zero point")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "layer", golden_cnn.LeakyRelu(
            self.in_zp, self.out_zp, self.identity_m0, self.identity_shift, self.alpha_m0,
            self.alpha_shift))

    @classmethod
    def from_layer(cls, layer, **_):
        return cls(layer.in_zp, layer.out_zp, layer.identity_m0, layer.identity_shift,
                   layer.alpha_m0, layer.alpha_shift)

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        return Bound(self, in_format, width, height, in_format, width, height)

    def hardware(self, bound):
        return RequantActivation(bound.in_format, in_zp=self.in_zp, out_zp=self.out_zp,
                                 multipliers=[(self.identity_m0, self.identity_shift),
                                              (self.alpha_m0, self.alpha_shift)])

    def timing(self, bound):
        return fixed_timing(RequantActivation)


@dataclass(frozen=True)
class _ReluBase(_LayerStage):
    layer_type: ClassVar[type] = golden_cnn.Relu
    in_zp: int = _zero_point_param("input")
    out_zp: int = _zero_point_param("output")
    m0: int = _m0_param("requantization multiplier")
    shift: int = _shift_param("requantization shift")
    act_min: int = _clamp_param(-128, "lowest")
    act_max: int = _clamp_param(127, "highest")

    def __post_init__(self):
        super().__post_init__()
        _check_activation_order(self)
        object.__setattr__(self, "layer", golden_cnn.Relu(
            self.in_zp, self.out_zp, self.m0, self.shift, self.act_min, self.act_max))

    @classmethod
    def from_layer(cls, layer, *, op_name, **_):
        # One golden Relu, one spec op per TFLite operator (the op is its name in lower
        # case), so the operator's name picks the subclass; without one it is ``relu``.
        by_operator = {stage.op.upper(): stage for stage in _ReluBase.__subclasses__()}
        stage = by_operator.get(op_name or "RELU", ReluStage)
        return stage(layer.in_zp, layer.out_zp, layer.m0, layer.shift, layer.act_min,
                     layer.act_max)

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        return Bound(self, in_format, width, height, in_format, width, height)

    def hardware(self, bound):
        return RequantActivation(bound.in_format, in_zp=self.in_zp, out_zp=self.out_zp,
                                 multipliers=[(self.m0, self.shift)], act_min=self.act_min,
                                 act_max=self.act_max)

    def timing(self, bound):
        return fixed_timing(RequantActivation)


@register_stage
@dataclass(frozen=True)
class ReluStage(_ReluBase):
    """``relu``: TFLite RELU int8 (requantize, clamp at the quantized 0)."""
    op: ClassVar[str] = "relu"


@register_stage
@dataclass(frozen=True)
class Relu6Stage(_ReluBase):
    """``relu6``: TFLite RELU6 int8 (requantize, clamp at the quantized 0 and 6)."""
    op: ClassVar[str] = "relu6"


@register_stage
@dataclass(frozen=True)
class ReluN1To1Stage(_ReluBase):
    """``relu_n1_to_1``: TFLite RELU_N1_TO_1 int8."""
    op: ClassVar[str] = "relu_n1_to_1"


@register_stage
@dataclass(frozen=True)
class MaxPoolStage(_LayerStage):
    """``max_pool``: TFLite MAX_POOL_2D int8 (window clipped to the image)."""
    op: ClassVar[str] = "max_pool"
    layer_type: ClassVar[type] = golden_cnn.MaxPool2D
    size: int = param(2, lo=1, hi=8, doc="window side")
    stride: int = param(2, lo=1, hi=8, doc="stride on both axes")
    padding: str = _padding_param("valid")
    act_min: int = _clamp_param(-128, "lowest")
    act_max: int = _clamp_param(127, "highest")

    def __post_init__(self):
        super().__post_init__()
        _check_activation_order(self)
        object.__setattr__(self, "layer", golden_cnn.MaxPool2D(
            self.size, self.stride, self.padding, self.act_min, self.act_max))

    @classmethod
    def from_layer(cls, layer, **_):
        return cls(layer.size, layer.stride, layer.padding, layer.act_min, layer.act_max)

    @staticmethod
    def output_size(layer, width, height):
        return _window_output_size(width, height, layer.size, layer.stride, layer.padding)

    def bind(self, in_format, width, height):
        _check_input(self, in_format, None)
        try:
            out_w, pad_x, _ = conv_geometry(width, self.size, self.stride, self.padding)
            out_h, pad_y, _ = conv_geometry(height, self.size, self.stride, self.padding)
        except ValueError as error:
            raise SpecError("input.width", str(error)) from None
        kernel = max(pool_taps(self.size, pad_x)[0], pool_taps(self.size, pad_y)[0])
        _geometry(width, height, kernel, 1, "same")
        return Bound(self, in_format, width, height, in_format, out_w, out_h)

    def hardware(self, bound):
        return MaxPoolUnit(bound.in_format, bound.width, bound.height, size=self.size,
                           stride=self.stride, padding=self.padding, act_min=self.act_min,
                           act_max=self.act_max)

    def timing(self, bound):
        return MaxPoolUnit.timing(bound.width, bound.height, size=self.size,
                                  stride=self.stride, padding=self.padding)


# -- golden layers -> stages ---------------------------------------------------------------------

def _stage_class(layer):
    try:
        return _LAYER_STAGES[type(layer)]
    except KeyError:
        raise TypeError(f"no stage for {type(layer).__name__}") from None


def stage_from_layer(layer, *, op_name=None, refs=None, pe=0, simd=0):
    """The stage for a golden layer. ``op_name`` is its TFLite operator (it picks among the
    stages of one layer type, e.g. ``relu6``); ``refs`` maps array fields to sidecar
    references (the stage then writes them in ``to_table``; the arrays are taken from the
    layer itself); ``pe``/``simd`` fold a MAC array."""
    return _stage_class(layer).from_layer(layer, op_name=op_name, refs=refs, pe=pe, simd=simd)


def fold_for_budget(layer_pixels, budget):
    """Rate-balanced ``(pe, simd)`` for each ``(layer, output pixels)`` (``None`` for layers
    without a MAC array): each layer's stage class picks its folding to compute its output
    pixels within ``budget`` cycles (``balanced_folding``: for a convolution the fewest
    multipliers with ``P * II <= budget``), so every layer needs about the same cycles per
    frame, and none waits long for another."""
    return [_stage_class(layer).balanced_folding(layer, int(pixels), budget)
            for layer, pixels in layer_pixels]


def plan_folding(layers, height, width, cycles_per_pixel=4):
    """:func:`fold_for_budget` for a chain of ``layers`` on ``height x width`` frames taking
    one input pixel every ``cycles_per_pixel`` cycles (a frame's budget is
    ``cycles_per_pixel * H * W`` cycles)."""
    sizes = []
    size = (width, height)
    for layer in layers:
        size = _stage_class(layer).output_size(layer, *size)
        sizes.append(size[0] * size[1])
    return fold_for_budget(list(zip(layers, sizes)), cycles_per_pixel * height * width)
