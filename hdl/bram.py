"""Line memories: simple dual-port block RAM with a registered read, per device.

:func:`line_memory` is what the window generator keeps its lines in. Generic code lets Yosys
infer the block RAM, which gives every device a correct memory but on ECP5 leaves the
``DP16KD``'s output register unused: Yosys maps the memory's read register into the block
and puts the second register in the fabric, so the block's slow clock-to-out (5.8 ns in
nextpnr's model) starts every read path, capping a design at about 138 MHz. On ECP5 a
collision-free line memory is therefore built from ``DP16KD`` primitives with
``REGMODE_B = "OUTREG"``: the second register is the block's own.

The primitive leaves a read of one port and a write of the other at the same address in the
same cycle undefined, which is why only ``collision_free`` memories take that path (the
caller guarantees that it never *uses* such a read: the tests check that formally for the
window generator, and the ``DP16KD`` model in ``sim/models`` returns a scrambled word on a
collision, so a design that used one would fail its bit-exact simulations).

*Which primitive:* the elaboration ``platform`` says, as ``platform.line_memory_primitive``
(one of :data:`LINE_MEMORY_PRIMITIVES`; :class:`LineMemoryTarget` spells out that protocol);
``platform=None``, as in Amaranth's simulator, is ``"generic"``. Hardware stays below the
board code: it never learns which FPGA family or board it is built for, only this one fact,
which whoever makes the platform sets from the family (board platforms from
``rasterflow.boards.platforms.Board.make_platform``, simulation targets from
``rasterflow.sim.session.FamilyTarget``). A named attribute of our own, rather than Amaranth's
``platform.family``, because that one is not ours to define: it is ``"ecp5"`` on ECP5 but
``"iCE40"`` on iCE40 and absent from a simulation stand-in.
"""
from typing import Protocol

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Shape, Signal
from amaranth.lib.memory import Memory

__all__ = ["LINE_MEMORY_PRIMITIVES", "LineMemoryTarget", "line_memory", "dp16kd_geometry",
           "DP16KD_MIN_DEPTH"]

#: What line memories can be built from: ``"generic"`` (Yosys infers the block RAM) or
#: ``"dp16kd"`` (ECP5 ``DP16KD`` blocks with their output register).
LINE_MEMORY_PRIMITIVES = ("generic", "dp16kd")

#: ``(data width, words)`` configurations of one ``DP16KD`` port (18 Kbit with parity bits).
DP16KD_CONFIGS = ((18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
#: Address bits below the word address in each configuration (``AD[13:low]`` is the word).
DP16KD_LOW_ADDRESS_BITS = {18: 4, 9: 3, 4: 2, 2: 1, 1: 0}
#: Shallower memories stay with Yosys (it maps them to LUT RAM, which has no slow read).
DP16KD_MIN_DEPTH = 128


class LineMemoryTarget(Protocol):
    """What :func:`line_memory` reads from a non-``None`` elaboration platform."""
    #: One of :data:`LINE_MEMORY_PRIMITIVES`.
    line_memory_primitive: str


def dp16kd_geometry(width, depth):
    """``(data width per block, blocks)`` for a ``width x depth`` memory: the widest port
    configuration deep enough, as many blocks side by side as the word needs."""
    for bits, words in DP16KD_CONFIGS:
        if depth <= words:
            return bits, -(-width // bits)
    raise ValueError(f"depth must be at most {DP16KD_CONFIGS[-1][1]}, not {depth!r}")


def line_memory(m, name, shape, depth, *, write_en, write_addr, write_data, read_en,
                read_addr, out_en, collision_free=False, platform=None):
    """A simple dual-port line memory with a *registered* read: two register stages.

    ``read_addr`` is sampled when ``read_en`` (the memory's own read register), and the read
    word moves into an output register when ``out_en``; the returned value is that output
    register, so block RAM clock-to-out never adds to the logic behind it.

    A read of the address written in the same cycle returns the old word. Block RAMs leave
    that collision undefined, so Yosys adds bypass logic to keep the guarantee, on the read
    data path. ``collision_free=True`` states that the caller never uses the word of a read
    made while the same address is written; the memory then maps to bare block RAM
    (Yosys's ``no_rw_check``),
    and on a ``platform`` (a :class:`LineMemoryTarget`) whose ``line_memory_primitive`` is
    ``"dp16kd"`` to ``DP16KD`` blocks with their output register when
    ``depth >= DP16KD_MIN_DEPTH``.
    """
    width = Shape.cast(shape).width
    if (collision_free and platform is not None
            and platform.line_memory_primitive == "dp16kd" and depth >= DP16KD_MIN_DEPTH):
        return _dp16kd_line_memory(m, name, shape, width, depth, write_en=write_en,
                                   write_addr=write_addr, write_data=write_data,
                                   read_en=read_en, read_addr=read_addr, out_en=out_en)
    # Unlike other payload registers this one keeps its reset: without one, Yosys maps it
    # with the block RAM differently and the bare block RAM -> register reference design
    # drops from 92 to 80 MHz on iCE40 (nextpnr, bench_fmax_reference.py).
    out = Signal(shape, name=f"{name}_q")
    mem = Memory(shape=shape, depth=depth, init=[],
                 attrs={"no_rw_check": 1} if collision_free else None)
    m.submodules[name] = mem
    wp = mem.write_port()
    rp = mem.read_port(transparent_for=())
    m.d.comb += [wp.addr.eq(write_addr), wp.data.eq(write_data), wp.en.eq(write_en),
                 rp.addr.eq(read_addr), rp.en.eq(read_en)]
    with m.If(out_en):
        m.d.sync += out.eq(rp.data)
    return out


def _port_address(address, bits, write):
    """The 14 ``AD`` pins of a port for a word address in a ``bits``-wide configuration.
    In the 18-bit configuration ``AD0``/``AD1`` are a write port's byte enables."""
    low = DP16KD_LOW_ADDRESS_BITS[bits]
    pins = [Const(int(write and bits == 18 and k < 2), 1) for k in range(low)]
    pins += [address[k - low] if k - low < len(address) else Const(0, 1)
             for k in range(low, 14)]
    return pins


def _dp16kd_line_memory(m, name, shape, width, depth, *, write_en, write_addr, write_data,
                        read_en, read_addr, out_en):
    bits, blocks = dp16kd_geometry(width, depth)
    out = Signal(shape, name=f"{name}_q")
    data_in = Cat(write_data, Const(0, bits * blocks - width))
    data_out = []
    for b in range(blocks):
        dout = Signal(18, name=f"{name}_do{b}")
        din = data_in[b * bits:(b + 1) * bits]
        ports = {
            "i_CLKA": ClockSignal(), "i_CEA": Const(1, 1), "i_OCEA": Const(1, 1),
            "i_WEA": write_en, "i_RSTA": Const(0, 1),
            "i_CLKB": ClockSignal(), "i_CEB": read_en, "i_OCEB": out_en,
            "i_WEB": Const(0, 1), "i_RSTB": Const(0, 1),
        }
        for port, address, write in (("A", write_addr, True), ("B", read_addr, False)):
            for k, pin in enumerate(_port_address(address, bits, write)):
                ports[f"i_AD{port}{k}"] = pin
            for k in range(3):
                ports[f"i_CS{port}{k}"] = Const(0, 1)
        for k in range(18):
            ports[f"i_DIA{k}"] = din[k] if k < bits else Const(0, 1)
            ports[f"i_DIB{k}"] = Const(0, 1)
            ports[f"o_DOB{k}"] = dout[k]
        m.submodules[f"{name}_bram{b}"] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=bits, p_DATA_WIDTH_B=bits,
            p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
            p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
            p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_GSR="DISABLED",
            **ports)
        data_out.append(dout[:bits])
    m.d.comb += out.eq(Cat(*data_out)[:width])
    return out
