"""Host side: flow-control plan, run_on_board and the `run`/`boards` CLI against the pty
board emulator."""
import argparse
import os
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from rasterflow.boards.emulator import BoardEmulator
from rasterflow.boards.host import (BoardTimeoutError, frame_to_bytes, link_plan,
                                    run_on_board)
from rasterflow.cli_boards import add_board_commands
from test_board_top import fan_out_16, plus_one, random_frame, widen_int16

BAUD = 1_000_000


def test_link_plan_window_and_consumed_bound():
    plan = link_plan(fan_out_16(16, 12))
    assert (plan.in_row_bytes, plan.out_row_bytes, plan.window_rows) == (16, 256, 4)
    assert plan.window == 64 and plan.in_frame_bytes == 192
    assert plan.consumed_lower_bound(0) == 0
    assert plan.consumed_lower_bound(255) == 0          # row 0 not complete yet
    assert plan.consumed_lower_bound(256) == 16         # output row 0 => input row 0 taken
    assert plan.send_limit(0) == 64 and plan.send_limit(10**6) == 192


def test_link_plan_downscaling_pipeline():
    # A 2:1 downscale with one line of latency: output row k depends on input row 2k.
    fmt = plus_one().input_format
    downscale = SimpleNamespace(input_format=fmt, output_format=fmt, width=8, height=8,
                                out_width=4, out_height=4, latency_lines=1)
    plan = link_plan(downscale)
    assert plan.window_rows == 1 + 2 + 2 * 2
    assert plan.consumed_lower_bound(4) == 8            # out row 0 => in row 0
    assert plan.consumed_lower_bound(8) == 3 * 8        # out row 1 => in rows 0..2


def test_frame_bytes_are_little_endian_channel_first():
    fmt = widen_int16().output_format
    assert frame_to_bytes(fmt, np.array([[[-2]]], dtype=np.int16)) == b"\xfe\xff"
    with pytest.raises(ValueError, match="do not fit"):
        frame_to_bytes(fmt, np.array([[[70000]]]))


@pytest.mark.parametrize("make_pipeline", [plus_one, widen_int16, fan_out_16],
                         ids=lambda f: f.__name__)
def test_run_on_board_bit_exact_within_window(make_pipeline):
    pipeline = make_pipeline(16, 12)
    frame = random_frame(pipeline, seed=5)
    with BoardEmulator(pipeline) as board:
        got = run_on_board(pipeline, frame, board.port, BAUD, timeout=2)
        # A second frame on the same link.
        got2 = run_on_board(pipeline, frame[::-1].copy(), board.port, BAUD, timeout=2)
    np.testing.assert_array_equal(got, pipeline.golden(frame))
    np.testing.assert_array_equal(got2, pipeline.golden(frame[::-1]))
    assert board.window_violations == 0


def test_emulator_flags_a_host_that_ignores_the_window():
    pipeline = fan_out_16(16, 12)
    plan = link_plan(pipeline)
    with BoardEmulator(pipeline) as board:
        fd = os.open(board.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, frame_to_bytes(pipeline.input_format, random_frame(pipeline)))
            # The emulator reads what was written before it stops.
            deadline = 200
            while board.input_bytes < plan.in_frame_bytes and deadline:
                os.read(fd, 4096)
                deadline -= 1
        finally:
            os.close(fd)
    assert board.window_violations > 0


def test_run_on_board_timeout_names_byte_counts():
    pipeline = widen_int16(16, 12)
    with BoardEmulator(pipeline, stop_after=100) as board:
        with pytest.raises(BoardTimeoutError, match=r"received 100 of 384 output bytes"):
            run_on_board(pipeline, random_frame(pipeline), board.port, BAUD, timeout=0.5)


def test_run_on_board_rejects_wrong_frame_shape():
    pipeline = plus_one(16, 12)
    with pytest.raises(ValueError, match=r"\(12, 16, 1\)"):
        run_on_board(pipeline, np.zeros((16, 12), np.uint8), "/dev/null", BAUD)


# --- CLI -------------------------------------------------------------------------------

def cli(argv, pipeline):
    parser = argparse.ArgumentParser(prog="rasterflow")
    subparsers = parser.add_subparsers(dest="command", required=True)
    loaded = []
    add_board_commands(subparsers, lambda spec: loaded.append(spec) or pipeline)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_boards_lists_devices_and_pins(capsys):
    assert cli(["boards"], None) == 0
    out = capsys.readouterr().out
    assert "icebreaker" in out and "iCE40UP5K" in out and "12 MHz" in out and "6 / 9" in out
    assert "ulx3s-85f" in out and "LFE5U-85F" in out and "25 MHz" in out and "M1 / L4" in out


@pytest.fixture
def camera_like(tmp_path):
    pipeline = plus_one(16, 12)
    frame = random_frame(pipeline, seed=7)
    image = tmp_path / "in.png"
    Image.fromarray(frame[:, :, 0]).save(image)
    return pipeline, frame, image


def test_cli_run_bit_exact(tmp_path, camera_like, capsys):
    pipeline, frame, image = camera_like
    out = tmp_path / "out.png"
    with BoardEmulator(pipeline) as board:
        status = cli(["run", "spec.toml", str(image), "--board", "icebreaker",
                      "--port", board.port, "-o", str(out)], pipeline)
    assert status == 0, capsys.readouterr().err
    assert "bit-exact" in capsys.readouterr().out
    np.testing.assert_array_equal(np.asarray(Image.open(out)), pipeline.golden(frame)[:, :, 0])
    assert not np.asarray(Image.open(tmp_path / "out.diff.png")).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.diff.png", "out.png"]


def test_cli_run_npy_output_for_wide_format(tmp_path, capsys):
    pipeline = fan_out_16(16, 12)
    frame = random_frame(pipeline, seed=8)
    Image.fromarray(frame[:, :, 0]).save(tmp_path / "in.png")
    with BoardEmulator(pipeline) as board:
        status = cli(["run", "s", str(tmp_path / "in.png"), "--board", "ulx3s-85f",
                      "--port", board.port, "-o", str(tmp_path / "out.npy")], pipeline)
    assert status == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), pipeline.golden(frame))


def test_cli_run_dropped_bytes_times_out(tmp_path, camera_like, capsys):
    pipeline, _, image = camera_like
    with BoardEmulator(pipeline, drop_input_every=50) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "--timeout", "0.5", "-o", str(tmp_path / "out.png")], pipeline)
    assert status == 1
    err = capsys.readouterr().err
    assert "stopped answering: received" in err and "of 192 output bytes" in err
    assert not (tmp_path / "out.png").exists()


def test_cli_run_corruption_reports_mismatch_and_writes_diff(tmp_path, camera_like, capsys):
    pipeline, frame, image = camera_like
    with BoardEmulator(pipeline, corrupt_output_every=37) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "-o", str(tmp_path / "out.png")], pipeline)
    assert status == 1
    err = capsys.readouterr().err
    corrupted = {i - 1 for i in range(37, 193, 37)}          # byte = pixel for 1 x uint8
    assert f"MISMATCH: {len(corrupted)} of 192 output pixels" in err
    diff = np.asarray(Image.open(tmp_path / "out.diff.png")).reshape(-1)
    assert set(np.nonzero(diff)[0]) == corrupted


def test_cli_run_refuses_png_for_int16_output(tmp_path, capsys):
    pipeline = widen_int16(16, 12)
    Image.fromarray(random_frame(pipeline)[:, :, 0]).save(tmp_path / "in.png")
    status = cli(["run", "s", str(tmp_path / "in.png"), "--board", "icebreaker",
                  "--port", "/dev/null", "-o", str(tmp_path / "out.png")], pipeline)
    assert status == 1
    assert "use a .npy output path" in capsys.readouterr().err
