"""Line memories (hdl/bram.py): the ECP5 DP16KD path and its simulation model. The
collision-freedom the DP16KD path relies on is the window generator's (its formal check is in
tests/test_window.py)."""
import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rasterflow.hdl.bram import DP16KD_MIN_DEPTH, dp16kd_geometry, line_memory
from rasterflow.sim.session import FAMILY_MODELS, MODELS_DIR, FamilyTarget, pipeline_verilog, \
    simulate
from rasterflow.sim.verilator import run_verilog

from conftest import make_pipeline


@pytest.mark.parametrize("width, depth, expected", [
    (8, 640, (18, 1)), (24, 640, (18, 2)), (8, 1024, (18, 1)), (8, 1025, (9, 1)),
    (16, 2048, (9, 2)), (8, 4096, (4, 2)), (3, 16384, (1, 3)),
])
def test_dp16kd_geometry_is_the_widest_configuration_deep_enough(width, depth, expected):
    assert dp16kd_geometry(width, depth) == expected


def test_dp16kd_geometry_rejects_deeper_than_one_block():
    with pytest.raises(ValueError, match="depth must be at most 16384, not 16385"):
        dp16kd_geometry(1, 16385)


def gaussian(width, channels=1, lanes=1, height=9):
    return make_pipeline([{"op": "gaussian", "ksize": 5, "border": "reflect101"}], width,
                         height, channels, lanes=lanes, name="g5")


def test_ecp5_line_buffers_use_dp16kd_with_output_register():
    pipeline = gaussian(640)
    text = pipeline_verilog(pipeline, family="ecp5")
    # 5 rows: 4 lines of 640 x 8 bits, one 18-bit-wide block each.
    assert text.count("DP16KD #(") == 4
    assert text.count(".REGMODE_B(\"OUTREG\")") == 4
    assert "DP16KD" not in pipeline_verilog(pipeline)


def test_short_lines_stay_with_yosys():
    """Lines shorter than DP16KD_MIN_DEPTH transfers keep the inferred memory."""
    assert "DP16KD" not in pipeline_verilog(gaussian(DP16KD_MIN_DEPTH - 1), family="ecp5")


def test_family_must_be_known():
    with pytest.raises(ValueError, match="family must be one of generic, ecp5, not 'ice40'"):
        FamilyTarget("ice40")
    assert all((MODELS_DIR / model).is_file() for models in FAMILY_MODELS.values()
               for model in models)


@pytest.mark.slow
@pytest.mark.parametrize("width, channels, lanes", [(150, 3, 1), (300, 1, 2)])
def test_ecp5_build_is_bit_exact_on_the_dp16kd_model(width, channels, lanes, tmp_path):
    """The ECP5 netlist (DP16KD instances, simulated by sim/models/DP16KD.v, which stops on
    any cross-port collision) is bit-exact with the golden model under stalls, two frames
    back to back; RGB takes two 18-bit blocks side by side per line (24-bit pixels), two
    lanes a 16-bit word in one block."""
    pipeline = gaussian(width, channels, lanes)
    frame = np.random.default_rng(width).integers(0, 256, (9, width, channels), np.uint8)
    result = simulate(pipeline, frame, frames=2, simulator="verilator", stall=0.3,
                      progress=False, family="ecp5", cache_dir=tmp_path)
    assert "error" not in result.extra, result.extra["error"]
    assert result.bit_exact, result.report()


class CollidingDelayLine(wiring.Component):
    """Writes each input word at a counter address and reads that address in the same
    cycle: exactly what ``collision_free`` promises never to do."""
    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        address = Signal(range(DP16KD_MIN_DEPTH))
        m.d.comb += self.i.ready.eq(1)
        with m.If(self.i.valid):
            m.d.sync += address.eq(address + 1)
        data = line_memory(m, "line", 8, DP16KD_MIN_DEPTH, write_en=self.i.valid,
                           write_addr=address, write_data=self.i.payload, read_en=1,
                           read_addr=address, out_en=1, collision_free=True, platform=platform)
        valid = Signal(2)
        m.d.sync += valid.eq(valid << 1 | self.i.valid)
        m.d.comb += [self.o.valid.eq(valid[1]), self.o.payload.eq(data)]
        return m


@pytest.mark.slow
def test_dp16kd_model_scrambles_a_colliding_read(tmp_path):
    """Generic memories return the old word (zero here); the DP16KD model returns garbage,
    so a design that used a colliding read cannot pass a bit-exact test on it."""
    words = list(range(1, 9))
    runs = {}
    for family in ("generic", "ecp5"):
        text = verilog.convert(CollidingDelayLine(), name="top",
                               platform=FamilyTarget(family) if family != "generic" else None)
        text += "".join((MODELS_DIR / model).read_text() for model in FAMILY_MODELS[family])
        runs[family] = run_verilog(text, "top", words, len(words), expected_words=[0] * 8,
                                   progress=False, cache_dir=tmp_path)
    assert runs["generic"].mismatches == 0
    assert runs["ecp5"].mismatches == len(words)
