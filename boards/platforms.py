"""Supported boards, as data.

Each :class:`Board` names an amaranth-boards platform class and the few facts the board top,
the build and the host need that the platform does not carry: which resources the UART bridge
and the status LEDs use, how the board's USB-UART shows up on the host, how it is programmed,
and the device budget. Everything about the board's FPGA family lives in that family's module
(:mod:`rasterflow.boards.families`). Adding another amaranth-boards board of a supported family
is one more entry in :data:`BOARDS`; a new family is one more module in ``boards/families``.
"""
import copy
import importlib
from dataclasses import dataclass, field

from amaranth.build import Clock

from .families import Family, get_family

__all__ = ["Programmer", "Board", "BOARDS", "get_board"]


@dataclass(frozen=True)
class Programmer:
    """How to load a bitstream: ``command`` (found via ``env_var`` or ``PATH``) followed by
    ``args``, where ``{bitstream}`` is replaced by the bitstream path."""
    command: str
    env_var: str
    args: tuple


@dataclass(frozen=True)
class Board:
    """One supported board; ``family_info`` is the registered family ``family`` names
    (a board naming no registered family is refused)."""
    name: str
    platform: str                 # "module:Class" in amaranth_boards
    family: str                   # name of a registered Family (boards/families)
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
        try:
            family = get_family(self.family)
        except ValueError as error:
            raise ValueError(f"board {self.name!r}: {error}") from None
        object.__setattr__(self, "family_info", family)

    def platform_class(self):
        module_name, class_name = self.platform.split(":")
        return getattr(importlib.import_module(module_name), class_name)

    def make_platform(self, *, clock_constraint_hz=None):
        """A new platform instance. ``clock_constraint_hz`` replaces the timing constraint on
        the board clock (the oscillator is unchanged): nextpnr's timing-driven placement and
        routing only work as hard as the constraint asks, so an Fmax measurement constrains
        the clock at its target instead of at the oscillator's frequency.

        The platform carries ``line_memory_primitive``, the family's, for the hardware
        elaborated on it (see :mod:`rasterflow.hdl.bram`)."""
        platform = self.platform_class()()
        platform.line_memory_primitive = self.family_info.line_memory_primitive
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
