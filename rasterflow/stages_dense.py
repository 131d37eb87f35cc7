"""The int8 dense stage: ``fully_connected`` (TFLite FULLY_CONNECTED).

Its golden model is :class:`~rasterflow.golden.dense.FullyConnected`, its hardware
:class:`~rasterflow.hdl.dense.DenseUnit` (a folded MAC array and LiteRT's double-precision
output scaling reproduced with integers). The input is a ``1 x 1`` frame of ``Cin`` int8 (a
classifier head after a global average pool or a mean), the output ``1 x 1`` of ``Cout``.

Spec format (TOML; array fields are sidecar references, as for ``conv2d``)::

    [[stage]]
    op = "fully_connected"
    weights = "model.npz:fc.weights"    # int8 [Cout, Cin]
    scale = [3.0517578125e-05]          # double(in_scale) * double(w_scale) / double(out_scale),
                                        #   one for all output channels or one per channel
    in_zp = -128
    out_zp = 5
    bias = "model.npz:fc.bias"          # int32 [Cout]; optional (zeros)
    act_min = -128                      # fused activation clamp
    act_max = 127
    pe = 4                              # output channels in parallel (0: 1)
    simd = 64                           # products per PE per cycle (0: Cin)
"""
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .errors import SpecError
from .golden import dense as golden_dense
from .golden.pixel import PixelFormat
from .hdl.conv import mac_layer_report
from .hdl.dense import DenseUnit, channel_rescales, fold_bias
from .params import SidecarArray, check_int, param
from .stages import Bound, register_stage
from .stages_cnn import (INT8, _check_activation_order, _check_array, _check_input,
                         _clamp_param, _SidecarStage, _zero_point_param, balanced_mac_folding)

__all__ = ["FullyConnectedStage"]


def _check_scale(scale):
    if not isinstance(scale, (list, tuple)) or not scale or \
            not all(isinstance(s, (int, float)) and not isinstance(s, bool) and
                    math.isfinite(s) and s >= 0 for s in scale):
        raise ValueError(f"must be a non-empty list of finite numbers >= 0, not {scale!r}")


@register_stage
@dataclass(frozen=True)
class FullyConnectedStage(_SidecarStage):
    """``fully_connected``: TFLite FULLY_CONNECTED int8 (per-tensor or per-channel weights)
    on a 1x1 frame of Cin channels, giving a 1x1 frame of Cout."""
    op: ClassVar[str] = "fully_connected"
    layer_type: ClassVar[type] = golden_dense.FullyConnected
    weights: SidecarArray = param(doc="int8 weights [Cout, Cin]")
    scale: list = param(check=_check_scale,
                        doc="output scaling, one number or one per output channel: "
                            "double(in_scale) * double(w_scale) / double(out_scale)")
    in_zp: int = _zero_point_param("input")
    out_zp: int = _zero_point_param("output")
    bias: SidecarArray = param(None, doc="int32 bias [Cout] (absent: zeros)")
    act_min: int = _clamp_param(-128, "lowest")
    act_max: int = _clamp_param(127, "highest")
    keep_num_dims: bool = param(False, doc="TFLite keep_num_dims (the stream is 1x1xCout "
                                           "either way)")
    pe: int = param(0, doc="output channels computed in parallel, 0..Cout (0: 1)")
    simd: int = param(0, doc="products per PE per cycle, 0..Cin (0: all)")
    arrays: dict = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        super().__post_init__()
        arrays = self._given_arrays(optional=("bias",))
        weights = _check_array("weights", arrays["weights"], np.int8, 2, "[Cout, Cin]")
        out_channels, in_channels = weights.shape
        for what, n in (("output", out_channels), ("input", in_channels)):
            if not 1 <= n <= 1024:
                raise SpecError("weights", f"must have 1..1024 {what} channels, not {n}")
        bias = arrays.get("bias")
        bias = np.zeros(out_channels, np.int32) if bias is None else \
            _check_array("bias", bias, np.int32, 1, f"[{out_channels}]")
        if bias.shape != (out_channels,):
            raise SpecError("bias", f"must have {out_channels} entries (one per output "
                                    f"channel), not {bias.shape[0]}")
        if len(self.scale) not in (1, out_channels):
            raise SpecError("scale", f"must hold 1 number (per tensor) or {out_channels} (per "
                                     f"output channel), not {len(self.scale)}")
        _check_activation_order(self)
        check_int("pe", self.pe, 0, out_channels)
        check_int("simd", self.simd, 0, in_channels)
        layer = golden_dense.FullyConnected(
            weights, bias, np.array(self.scale, dtype=np.float64), self.in_zp, self.out_zp,
            self.act_min, self.act_max, self.keep_num_dims)
        object.__setattr__(self, "arrays", {"weights": weights, "bias": bias})
        object.__setattr__(self, "layer", layer)
        object.__setattr__(self, "in_channels", in_channels)
        object.__setattr__(self, "out_channels", out_channels)

    def to_table(self):
        table = super().to_table()
        if table["bias"] is None:
            del table["bias"]
        return table

    @classmethod
    def from_layer(cls, layer, *, refs, pe, simd, **_):
        # With refs, to_table writes the references; the checks and hardware use the
        # layer's own arrays either way.
        refs = refs or {}
        return cls(weights=refs.get("weights", layer.weights), bias=refs.get("bias", layer.bias),
                   scale=[float(s) for s in layer.scale], in_zp=layer.in_zp,
                   out_zp=layer.out_zp, act_min=layer.act_min, act_max=layer.act_max,
                   keep_num_dims=layer.keep_num_dims, pe=pe, simd=simd,
                   arrays={"weights": np.asarray(layer.weights), "bias": np.asarray(layer.bias)})

    @staticmethod
    def output_size(layer, width, height):
        return 1, 1

    @classmethod
    def balanced_folding(cls, layer, pixels, budget):
        """:func:`~rasterflow.stages_cnn.balanced_mac_folding` of the ``Cout`` outputs, each
        a sum of ``Cin`` products."""
        return balanced_mac_folding(layer.out_channels, layer.in_channels, pixels, budget)

    @property
    def folding(self):
        """``(pe, simd)`` in effect (0 means the default: ``pe = 1``, ``simd = Cin``)."""
        return self.pe or 1, self.simd or self.in_channels

    def bind(self, in_format, width, height):
        if (width, height) != (1, 1):
            raise SpecError("input.width", f"must be a 1x1 frame (a global average pool's or "
                                           f"mean's output), not {width}x{height}: "
                                           f"{self.op} over a flattened feature map runs in "
                                           f"the golden model only")
        _check_input(self, in_format, self.in_channels)
        try:
            channel_rescales(self.arrays["weights"],
                             fold_bias(self.arrays["weights"], self.arrays["bias"], self.in_zp),
                             self.layer.scale, out_zp=self.out_zp, act_min=self.act_min,
                             act_max=self.act_max)
        except ValueError as error:
            raise SpecError("scale", f"{error}; the hardware cannot reproduce it (the golden "
                                     f"model can)") from None
        return Bound(self, in_format, 1, 1, PixelFormat(self.out_channels, INT8), 1, 1)

    def golden(self, frame, bound):
        return self.layer(np.asarray(frame)).reshape(bound.out_height, bound.out_width, -1)

    def hardware(self, bound):
        pe, simd = self.folding
        return DenseUnit(self.arrays["weights"], self.arrays["bias"], self.layer.scale,
                         in_zp=self.in_zp, out_zp=self.out_zp, act_min=self.act_min,
                         act_max=self.act_max, pe=pe, simd=simd)

    def timing(self, bound):
        return DenseUnit.timing(self.in_channels, self.out_channels, *self.folding)

    def sim_report(self, bound, frames, cycles):
        return mac_layer_report(self.op, *self.folding, self.timing(bound),
                                frames * bound.out_width * bound.out_height, cycles)
