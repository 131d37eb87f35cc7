"""Host side: flow-control plan, framed run_on_board with retries and the `run`/`boards` CLI
against the pty board emulator."""
import argparse
import os
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from rasterflow.boards.emulator import BoardEmulator
from rasterflow.boards.host import (BoardTimeoutError, FrameCheckError, frame_to_bytes,
                                    input_stream, link_plan, run_on_board)
from rasterflow.cli_boards import add_board_commands
from test_board_top import fan_out_16, plus_one, random_frame, widen_int16

BAUD = 1_000_000


def test_link_plan_window_and_consumed_bound():
    plan = link_plan(fan_out_16(16, 12))
    assert (plan.in_row_bytes, plan.out_row_bytes, plan.window_rows) == (16, 256, 4)
    assert plan.window == 64 + 4 and plan.in_frame_bytes == 192      # rows + input trailer
    assert (plan.in_stream_bytes, plan.out_stream_bytes) == (196, 12 * 256 + 9)
    assert plan.consumed_lower_bound(0) == 0
    assert plan.consumed_lower_bound(255) == 0          # row 0 not complete yet
    assert plan.consumed_lower_bound(256) == 16         # output row 0 => input row 0 taken
    assert plan.consumed_lower_bound(12 * 256 + 5) == 192     # trailer bytes are no rows
    assert plan.send_limit(0) == 68 and plan.send_limit(10**6) == 196


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
            os.write(fd, input_stream(frame_to_bytes(pipeline.input_format,
                                                     random_frame(pipeline))))
            # The emulator reads what was written before it stops.
            deadline = 200
            while board.input_bytes < plan.in_stream_bytes and deadline:
                os.read(fd, 4096)
                deadline -= 1
        finally:
            os.close(fd)
    assert board.window_violations > 0


def test_run_on_board_timeout_names_byte_counts():
    pipeline = widen_int16(16, 12)
    reports = []
    with BoardEmulator(pipeline, stop_after=100) as board:
        with pytest.raises(BoardTimeoutError, match=r"attempt 2 of 2: stopped answering: "
                                                    r"received 0 of 393 bytes \(384 output \+ "
                                                    r"9 trailer\) after sending 68 of 196"):
            run_on_board(pipeline, random_frame(pipeline), board.port, BAUD, timeout=0.3,
                         retries=1, report=reports.append)
    assert len(reports) == 1 and "received 100 of 393 bytes" in reports[0]
    assert board.resyncs == 2          # the board dropped both half-done frames


@pytest.mark.parametrize("fault", ["corrupt_output_every", "corrupt_input_every"])
def test_run_on_board_retries_a_transient_fault(fault):
    """One corrupted frame each way is detected by the CRC (not by comparing with the golden
    model), reported as such and sent again; the second attempt is exact."""
    pipeline = plus_one(16, 12)
    frame = random_frame(pipeline, seed=2)
    reports = []
    with BoardEmulator(pipeline, faulty_frames=1, **{fault: 50}) as board:
        got = run_on_board(pipeline, frame, board.port, BAUD, timeout=1,
                           report=reports.append)
    np.testing.assert_array_equal(got, pipeline.golden(frame))
    assert len(reports) == 1 and reports[0].startswith("attempt 1 of 3 failed: ")
    assert ("output corrupted on the way back: CRC-32" if fault == "corrupt_output_every"
            else "input CRC bad (the host's bytes were corrupted on the way in)") in reports[0]
    assert board.frames == 2 and board.resyncs == 0


def test_run_on_board_gives_up_on_a_persistent_fault():
    pipeline = plus_one(16, 12)
    reports = []
    with BoardEmulator(pipeline, corrupt_input_every=50) as board:
        with pytest.raises(FrameCheckError, match=r"attempt 3 of 3: board status 0x01: input "
                                                  r"CRC bad"):
            run_on_board(pipeline, random_frame(pipeline), board.port, BAUD, timeout=1,
                         report=reports.append)
    assert len(reports) == 2 and board.frames == 3


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


def test_cli_run_dropped_bytes_fail_cleanly(tmp_path, camera_like, capsys):
    pipeline, _, image = camera_like
    with BoardEmulator(pipeline, drop_input_every=50) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "--timeout", "0.3", "--retries", "1", "-o", str(tmp_path / "out.png")],
                     pipeline)
    assert status == 1
    err = capsys.readouterr().err
    assert "warning: attempt 1 of 2 failed: stopped answering: received" in err
    assert "error: board on" in err and "attempt 2 of 2: stopped answering" in err
    assert "of 201 bytes (192 output + 9 trailer)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]   # no output, no temp


def test_cli_run_retries_transient_output_corruption(tmp_path, camera_like, capsys):
    pipeline, frame, image = camera_like
    with BoardEmulator(pipeline, corrupt_output_every=37, faulty_frames=1) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "-o", str(tmp_path / "out.png")], pipeline)
    assert status == 0
    captured = capsys.readouterr()
    assert "warning: attempt 1 of 3 failed: output corrupted on the way back" in captured.err
    assert "bit-exact" in captured.out
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")),
                                  pipeline.golden(frame)[:, :, 0])


def test_cli_run_persistent_output_corruption_fails_without_output(tmp_path, camera_like,
                                                                  capsys):
    """Corruption on the way back is caught by the CRC before any comparison with the golden
    model: no output and no diff image from bytes that were not verified."""
    pipeline, _, image = camera_like
    with BoardEmulator(pipeline, corrupt_output_every=37) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "--retries", "1", "-o", str(tmp_path / "out.png")], pipeline)
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("output corrupted on the way back: CRC-32 of the 197 received bytes") == 2
    assert "MISMATCH" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_cli_run_rejects_negative_retries(camera_like, capsys):
    pipeline, _, image = camera_like
    with pytest.raises(SystemExit):
        cli(["run", "s", str(image), "--board", "icebreaker", "--retries", "-1"], pipeline)
    assert "must be >= 0, not -1" in capsys.readouterr().err


def test_cli_run_refuses_png_for_int16_output(tmp_path, capsys):
    pipeline = widen_int16(16, 12)
    Image.fromarray(random_frame(pipeline)[:, :, 0]).save(tmp_path / "in.png")
    status = cli(["run", "s", str(tmp_path / "in.png"), "--board", "icebreaker",
                  "--port", "/dev/null", "-o", str(tmp_path / "out.png")], pipeline)
    assert status == 1
    assert "use a .npy output path" in capsys.readouterr().err
