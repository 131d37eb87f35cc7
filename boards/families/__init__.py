"""FPGA families: everything that differs between families, one module per family.

A family module (``ice40.py``, ``ecp5.py``) subclasses :class:`Family`, fills in its facts
(toolchain, resource report, DSP mapping, block RAM, line-memory primitive, simulation models)
and implements its behaviour (synthesis overrides, the LUT-multiplier script, the PLL), then
registers one instance with :func:`register`. Every module in this package is imported when
the package is, so adding a family is adding its module; boards name their family by
:attr:`Family.name` (see :mod:`rasterflow.boards.platforms`).
"""
import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ...hdl.bram import LINE_MEMORY_PRIMITIVES

__all__ = ["Family", "FAMILIES", "PLL_MAX_ERROR", "register", "get_family", "check_pll"]

#: Largest relative error accepted between the requested and the PLL's clock frequency.
PLL_MAX_ERROR = 0.01

#: Registered families by name, filled by the family modules as they are imported.
FAMILIES = {}


@dataclass(frozen=True)
class Family(ABC):
    """Facts and behaviour shared by every device of an FPGA family.

    Attributes
    ----------
    name : str
        Key in :data:`FAMILIES`, and what :attr:`Board.family` names.
    bitstream_suffix : str
        Suffix of the bitstream the build script writes (``top.<suffix>``).
    placed_suffix : str
        Suffix of the placed-and-routed design nextpnr hands to the packer: its appearance
        means place and route has finished.
    tools : dict
        Amaranth's tool env vars -> the YoWASP commands used when the user has not set them.
        The packer's env var ends in ``PACK``.
    nextpnr_cells : dict
        Report resource key (``logic``, ``ff``, ``bram``, ``dsp``) -> nextpnr's utilisation
        cell type.
    yosys_cells : dict
        Report resource key -> the cell-name prefixes counted in Yosys' post-synthesis
        statistics (used to refuse a design before place and route).
    dsp_operand_bits, dsp_min_product_bits : int
        What Yosys' ``mul2dsp`` does for the family: a multiplier is split into
        ``ceil(A / dsp_operand_bits) * ceil(B / dsp_operand_bits)`` DSP blocks, and is left
        in LUTs when an operand is narrower than 2 bits or the product narrower than
        ``dsp_min_product_bits``.
    synth_opts : str
        The ``synth_<family>`` options of every build.
    bram_bits : int
        Bits in one block RAM (for the memory report).
    line_memory_primitive : str
        What line memories are built from, one of
        :data:`rasterflow.hdl.bram.LINE_MEMORY_PRIMITIVES`; elaboration platforms carry it
        as ``platform.line_memory_primitive``.
    simulation_models : tuple
        File names, in ``sim/models``, of the Verilog models of the primitives the family's
        netlists instantiate (empty when they instantiate none).
    """
    name: str
    bitstream_suffix: str
    placed_suffix: str
    tools: dict
    nextpnr_cells: dict
    yosys_cells: dict
    dsp_operand_bits: int
    dsp_min_product_bits: int
    synth_opts: str
    bram_bits: int
    line_memory_primitive: str
    simulation_models: tuple = ()

    def synth_overrides(self, top_name):
        """Amaranth build overrides that run the family's synthesis of ``top_name`` (the
        multiplier script itself is read by the caller right after the design)."""
        return {"synth_opts": self.synth_opts}

    @abstractmethod
    def multiplier_script(self, selection):
        """Yosys commands, run right after reading the design, that keep the ``$mul`` cells
        of the Yosys ``selection`` (non-empty) out of DSP blocks."""

    def yosys_usage(self, counts):
        """Report resource key -> cells used, from Yosys' cell type -> count."""
        return {key: sum(n for cell, n in counts.items() if cell.startswith(prefixes))
                for key, prefixes in self.yosys_cells.items()}

    @abstractmethod
    def pll_config(self, f_in, f_out):
        """PLL settings closest to ``f_out`` from ``f_in`` Hz: ``(params, achieved_hz)``.

        Raises
        ------
        ValueError
            When nothing within :data:`PLL_MAX_ERROR` of ``f_out`` can be made.
        """

    @abstractmethod
    def add_pll(self, m, clock_pin, config, *, f_in, f_out, clk, locked):
        """Add the PLL to module ``m``.

        Parameters
        ----------
        m : Module
        clock_pin : amaranth.lib.io.PortLike
            The oscillator's pin, as requested from the platform with ``dir="-"``.
        config : dict
            Settings from :meth:`pll_config`.
        f_in, f_out : float
            Oscillator and achieved output frequencies in Hz.
        clk, locked : Signal
            Driven with the output clock and the PLL's lock flag.
        """


def register(family):
    """Add ``family`` to :data:`FAMILIES` and return it."""
    if family.name in FAMILIES:
        raise ValueError(f"FPGA family {family.name!r} is registered twice")
    if family.line_memory_primitive not in LINE_MEMORY_PRIMITIVES:
        raise ValueError(f"family {family.name!r}: line_memory_primitive must be one of "
                         f"{', '.join(LINE_MEMORY_PRIMITIVES)}, not "
                         f"{family.line_memory_primitive!r}")
    FAMILIES[family.name] = family
    return family


def get_family(name):
    """The registered family called ``name``."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown FPGA family {name!r}; supported families: "
                         f"{', '.join(sorted(FAMILIES))}") from None


def check_pll(label, f_in, f_out, achieved):
    """Refuse a PLL search result ``achieved`` (``None``: nothing in the PLL's limits) that
    is not within :data:`PLL_MAX_ERROR` of ``f_out``; ``label`` names the PLL's family."""
    if achieved is None or abs(achieved - f_out) / f_out > PLL_MAX_ERROR:
        got = "nothing" if achieved is None else f"{achieved / 1e6:.3f} MHz"
        raise ValueError(f"{label} PLL cannot make {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz (closest: {got})")


# Import every family module so that each registers itself.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
