"""Host side: flow-control plan, framed run_on_board with retries and the `run`/`boards` CLI
against the pty board emulator."""
import argparse
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from rasterflow.boards.emulator import BoardEmulator
from rasterflow.boards.host import (BoardTimeoutError, FrameCheckError, OutputLayout,
                                    frame_to_bytes, input_stream, link_plan, run_on_board)
from rasterflow.cli_boards import add_board_commands
from rasterflow.cli_import import import_model
from rasterflow.files import LABEL_HEIGHT
from rasterflow.golden.pixel import PixelFormat
from rasterflow.spec import load_spec
from test_board_top import (blur_and_edges, blur_and_edges_bytes, fan_out_16, plus_one,
                            random_frame, widen_int16)
from test_outputs import slow_conv, two_sizes

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
    out = SimpleNamespace(out_width=4, out_height=4)
    downscale = SimpleNamespace(input_format=fmt, outputs=["out"], output_formats={"out": fmt},
                                output=lambda name: out, width=8, height=8, latency_lines=1)
    plan = link_plan(downscale)
    assert plan.window_rows == 1 + 2 + 2 * 2
    assert plan.consumed_lower_bound(4) == 8            # out row 0 => in row 0
    assert plan.consumed_lower_bound(8) == 3 * 8        # out row 1 => in rows 0..2


def test_output_layout_interleaves_the_outputs_per_pixel():
    layout = OutputLayout({"blur": PixelFormat(1, "uint8"), "edges": PixelFormat(1, "int16")},
                          height=1, width=2)
    outputs = {"blur": np.array([[[1], [3]]], np.uint8),
               "edges": np.array([[[-2], [0x0102]]], np.int16)}
    assert layout.bytes_per_pixel == 3
    assert layout.to_bytes(outputs) == b"\x01\xfe\xff\x03\x02\x01"
    assert layout.to_bytes(outputs) == blur_and_edges_bytes(outputs["blur"], outputs["edges"])
    back = layout.from_bytes(layout.to_bytes(outputs))
    assert list(back) == ["blur", "edges"] and back["edges"].dtype == np.int16
    for name in outputs:
        np.testing.assert_array_equal(back[name], outputs[name])
    assert layout.result(back) is back and layout.named(back) is back


def test_output_layout_of_one_output_is_its_frame_bytes():
    pipeline = widen_int16(4, 3)
    layout = link_plan(pipeline).output
    out = pipeline.golden(random_frame(pipeline))
    assert layout.to_bytes({"widen_int16": out}) == frame_to_bytes(pipeline.output_format, out)
    got = layout.result(layout.from_bytes(layout.to_bytes({"widen_int16": out})))
    np.testing.assert_array_equal(got, out)
    assert list(layout.named(got)) == ["widen_int16"]


def test_link_plan_counts_every_output():
    plan = link_plan(blur_and_edges(16, 12))
    assert (plan.out_bytes_per_pixel, plan.out_row_bytes) == (3, 48)
    assert plan.out_stream_bytes == 12 * 48 + 9
    assert plan.output.stream_formats == blur_and_edges().output_formats


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


def test_run_on_board_returns_every_output():
    pipeline = blur_and_edges(16, 12)
    frame = random_frame(pipeline, seed=12)
    with BoardEmulator(pipeline) as board:
        got = run_on_board(pipeline, frame, board.port, BAUD, timeout=2)
    assert list(got) == ["blur", "edges"]
    for name, expected in pipeline.golden_outputs(frame).items():
        np.testing.assert_array_equal(got[name], expected)
        assert got[name].dtype == expected.dtype
    assert board.window_violations == 0


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


def grey_image(tmp_path, pipeline, seed):
    """``(pipeline, frame, PNG path)``: a random grey frame for ``pipeline``, saved."""
    frame = random_frame(pipeline, seed=seed)
    image = tmp_path / "in.png"
    Image.fromarray(frame[:, :, 0]).save(image)
    return pipeline, frame, image


@pytest.fixture
def camera_like(tmp_path):
    return grey_image(tmp_path, plus_one(16, 12), seed=7)


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


# --- CLI with a pipeline of several outputs ------------------------------------------------

@pytest.fixture
def graph_camera(tmp_path):
    return grey_image(tmp_path, blur_and_edges(16, 12), seed=13)


def test_cli_run_writes_every_output(tmp_path, graph_camera, capsys):
    pipeline, frame, image = graph_camera
    with BoardEmulator(pipeline) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "-o", str(tmp_path / "out.npy")], pipeline)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "bit-exact: outputs blur (12x16x1 uint8), edges (12x16x1 int16) match" in captured.out
    golden = pipeline.golden_outputs(frame)
    for name in ("blur", "edges"):
        np.testing.assert_array_equal(np.load(tmp_path / f"out_{name}.npy"), golden[name][:, :, 0])
        # A labelled golden | board | diff comparison, nothing marked red.
        picture = np.asarray(Image.open(tmp_path / f"out_{name}.diff.png"))
        assert picture.shape[0] == 12 + LABEL_HEIGHT
        assert not np.all(picture[LABEL_HEIGHT:] == (255, 0, 0), axis=2).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.png", "out_blur.diff.png", "out_blur.npy", "out_edges.diff.png", "out_edges.npy"]


def test_cli_run_every_output_into_one_npz(tmp_path, graph_camera, capsys):
    pipeline, frame, image = graph_camera
    with BoardEmulator(pipeline) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "-o", str(tmp_path / "out.npz")], pipeline)
    assert status == 0, capsys.readouterr().err
    with np.load(tmp_path / "out.npz") as saved:
        for name, expected in pipeline.golden_outputs(frame).items():
            np.testing.assert_array_equal(saved[name], expected[:, :, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.png", "out.npz", "out_blur.diff.png", "out_edges.diff.png"]


class WrongGoldenEdges:
    """``pipeline`` whose golden edges differ from the board's in one pixel."""
    def __init__(self, pipeline):
        self._pipeline = pipeline

    def __getattr__(self, name):
        return getattr(self._pipeline, name)

    def golden_outputs(self, frame):
        outputs = self._pipeline.golden_outputs(frame)
        outputs["edges"] = outputs["edges"].copy()
        outputs["edges"][2, 3] += 1
        return outputs


def test_cli_run_names_the_output_that_differs(tmp_path, graph_camera, capsys):
    pipeline, _, image = graph_camera
    with BoardEmulator(pipeline) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "-o", str(tmp_path / "out.npy")], WrongGoldenEdges(pipeline))
    assert status == 1
    err = capsys.readouterr().err
    assert "MISMATCH: output 'edges': 1 of 192 output pixels differ from the golden model " \
           "(first at row 2, column 3" in err
    assert "'blur'" not in err
    red = np.all(np.asarray(Image.open(tmp_path / "out_edges.diff.png")) == (255, 0, 0), axis=2)
    assert red.sum() == 1
    assert not np.all(np.asarray(Image.open(tmp_path / "out_blur.diff.png")) == (255, 0, 0),
                      axis=2).any()


def test_cli_run_graph_retries_transient_input_corruption(tmp_path, graph_camera, capsys):
    pipeline, frame, image = graph_camera
    with BoardEmulator(pipeline, corrupt_input_every=41, faulty_frames=1) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "-o", str(tmp_path / "out.npy")], pipeline)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "warning: attempt 1 of 3 failed: board status 0x01: input CRC bad" in captured.err
    np.testing.assert_array_equal(np.load(tmp_path / "out_edges.npy"),
                                  pipeline.golden_outputs(frame)["edges"][:, :, 0])


def test_cli_run_graph_persistent_output_corruption_fails_without_output(tmp_path,
                                                                        graph_camera, capsys):
    pipeline, _, image = graph_camera
    with BoardEmulator(pipeline, corrupt_output_every=37) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "--retries", "1", "-o", str(tmp_path / "out.npy")], pipeline)
    assert status == 1
    err = capsys.readouterr().err
    # 16 x 12 pixels of 3 bytes and the 5 bytes of length and status before the CRC.
    assert err.count("output corrupted on the way back: CRC-32 of the 581 received bytes") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_cli_run_refuses_png_for_an_int16_output_of_several(tmp_path, graph_camera, capsys):
    pipeline, _, image = graph_camera
    status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", "/dev/null",
                  "-o", str(tmp_path / "out.png")], pipeline)
    assert status == 1
    assert "output 'edges' (" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


# --- outputs of different frame sizes, in sequence ------------------------------------------

def int8_frame_file(tmp_path, pipeline, seed):
    """``(frame, .npy path)``: a random int8 input frame for ``pipeline``, saved."""
    shape = (pipeline.height, pipeline.width, pipeline.input_format.channels)
    frame = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
    np.save(tmp_path / "in.npy", frame)
    return frame, tmp_path / "in.npy"


def test_output_layout_sequences_outputs_of_different_sizes():
    """Each output's whole frame in turn, every pixel in the most channels (4, the
    convolution's): the 3-channel pool's fourth byte is zero."""
    pipeline = two_sizes(["pool", "big"], larger=slow_conv())
    layout = link_plan(pipeline).output
    assert layout.sequenced and layout.stream_formats == PixelFormat(4, "int8")
    assert layout.parts == [(4, 4 * 4), (8, 8 * 4)] and layout.frame_bytes == 4 * 16 + 4 * 64
    golden = pipeline.golden_outputs(random_frame(pipeline, seed=1))
    data = layout.to_bytes(golden)
    pool = np.frombuffer(data[:64], np.int8).reshape(4, 4, 4)
    np.testing.assert_array_equal(pool[:, :, :3], golden["pool"])
    assert not pool[:, :, 3].any()
    assert data[64:] == frame_to_bytes(PixelFormat(4, "int8"), golden["big"])
    back = layout.from_bytes(data)
    assert list(back) == ["pool", "big"]
    for name, frame in golden.items():
        np.testing.assert_array_equal(back[name], frame)
        assert back[name].dtype == np.int8


def test_link_plan_of_outputs_in_sequence_counts_the_first_outputs_rows():
    plan = link_plan(two_sizes(["big", "pool"], width=8, height=8))
    assert (plan.out_height, plan.out_row_bytes) == (8, 8 * 3)
    assert plan.out_frame_bytes == 8 * 8 * 3 + 4 * 4 * 3
    assert plan.consumed_lower_bound(24) == 24                  # big's row 0: input row 0
    assert plan.consumed_lower_bound(8 * 24) == 8 * 24          # big whole: every input row
    assert plan.consumed_lower_bound(plan.out_frame_bytes) == 8 * 24
    plan = link_plan(two_sizes(["pool", "big"], width=8, height=8))
    assert (plan.out_height, plan.out_row_bytes) == (4, 4 * 3)
    assert plan.consumed_lower_bound(2 * 12) == 3 * 24          # pool's row 1: input rows 0..2
    assert plan.consumed_lower_bound(4 * 12 + 5 * 24) == 7 * 24  # big's rows add nothing


@pytest.mark.parametrize("outputs", [["pool", "big"], ["big", "pool"]])
def test_run_on_board_returns_outputs_of_different_sizes(outputs):
    pipeline = two_sizes(outputs, width=16, height=12)
    frame = random_frame(pipeline, seed=21)
    with BoardEmulator(pipeline) as board:
        got = run_on_board(pipeline, frame, board.port, BAUD, timeout=2)
        got2 = run_on_board(pipeline, frame[::-1].copy(), board.port, BAUD, timeout=2)
    for result, source in ((got, frame), (got2, frame[::-1])):
        assert list(result) == outputs
        for name, expected in pipeline.golden_outputs(source).items():
            np.testing.assert_array_equal(result[name], expected)
    assert board.window_violations == 0 and board.resyncs == 0


def test_cli_run_writes_outputs_of_different_sizes(tmp_path, capsys):
    pipeline = two_sizes(["big", "pool"], width=16, height=12)
    frame, image = int8_frame_file(tmp_path, pipeline, seed=22)
    with BoardEmulator(pipeline) as board:
        status = cli(["run", "s", str(image), "--board", "icebreaker", "--port", board.port,
                      "-o", str(tmp_path / "out.npz")], pipeline)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "bit-exact: outputs big (12x16x3 int8), pool (6x8x3 int8) match" in captured.out
    with np.load(tmp_path / "out.npz") as saved:
        for name, expected in pipeline.golden_outputs(frame).items():
            np.testing.assert_array_equal(saved[name], expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.npy", "out.npz", "out_big.diff.png", "out_pool.diff.png"]


def test_cli_run_a_model_takes_its_input_tensor_and_writes_its_output_tensor(tmp_path, capsys):
    """``rasterflow run`` on an imported model spec: the input is one tensor as LiteRT takes
    it (no batch axis), the output the tensor LiteRT returned for it."""
    data = Path(__file__).parent / "data" / "tflite"
    spec = tmp_path / "model.toml"
    import_model(data / "yolo_pool_s1_26.tflite", spec)
    pipeline = load_spec(spec)
    sample = tmp_path / "x.npy"
    np.save(sample, np.load(data / "yolo_pool_s1_26_input.npy")[1])
    out = tmp_path / "y.npy"
    with BoardEmulator(pipeline) as board:
        status = cli(["run", str(spec), str(sample), "--board", "ulx3s-85f",
                      "--port", board.port, "-o", str(out)], pipeline)
    assert status == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(out),
                                  np.load(data / "yolo_pool_s1_26_expected.npy")[1])
    np.save(sample, np.load(data / "yolo_pool_s1_26_input.npy"))   # a batch: refused
    with BoardEmulator(pipeline) as board:
        status = cli(["run", str(spec), str(sample), "--board", "ulx3s-85f",
                      "--port", board.port, "-o", str(out)], pipeline)
    assert status == 1 and "run sends one input tensor [26, 26, 3]" in capsys.readouterr().err
