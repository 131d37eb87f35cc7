#!/usr/bin/env python3
"""Board table: each example pipeline built for each board, next to the same pipeline on
this CPU.

For every (spec, board): Fmax (nextpnr's estimate), LUTs, FFs, BRAMs, DSPs, bitstream build
time, and the throughput they imply (Mpixel/s at Fmax, one pixel per clock); beside it the
same pipeline in OpenCV and in the numpy golden model on this CPU, in Mpixel/s measured in
the same run.

Usage: ``python bench/bench_boards.py [--specs a.toml,b.toml] [--boards icebreaker,ulx3s-85f]
[--json OUT] [--markdown OUT]``
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rasterflow.boards.build import DesignDoesNotFit, build
from rasterflow.files import atomic_write_text, write_json
from rasterflow.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPECS = ["rasterflow/data/demo.toml", "examples/edges.toml",
                 "examples/dark_channel.toml", "examples/denoise.toml"]


def cv2_stage(stage):
    """The OpenCV call equal to ``stage`` on a uint8 image, or None if there is none."""
    import cv2

    border = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE,
              "reflect": cv2.BORDER_REFLECT, "reflect101": cv2.BORDER_REFLECT_101}
    op = stage.op
    b = border.get(getattr(stage, "border", "reflect101"))
    if op == "filter2d":
        k = np.asarray(stage.kernel, np.float32) / (1 << stage.shift)
        return lambda img: cv2.filter2D(img, -1, k, borderType=b)
    if op == "sepfilter2d":
        kx = np.asarray(stage.kx, np.float32) / (1 << stage.shift)
        ky = np.asarray(stage.ky, np.float32)
        return lambda img: cv2.sepFilter2D(img, -1, kx, ky, borderType=b)
    if op == "gaussian":
        return lambda img: cv2.GaussianBlur(img, (stage.ksize, stage.ksize), stage.sigma,
                                            borderType=b)
    if op == "median":
        return lambda img: cv2.medianBlur(img, stage.ksize)
    if op in ("erode", "dilate"):
        shapes = {"rect": cv2.MORPH_RECT, "cross": cv2.MORPH_CROSS,
                  "ellipse": cv2.MORPH_ELLIPSE}
        element = cv2.getStructuringElement(shapes[stage.shape], (stage.ksize, stage.ksize))
        fn = cv2.erode if op == "erode" else cv2.dilate
        return lambda img: fn(img, element)
    if op == "rgb2gray":
        return lambda img: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if op == "channel_min":
        return lambda img: img.min(axis=2)
    if op == "threshold":
        types = {"binary": cv2.THRESH_BINARY, "binary_inv": cv2.THRESH_BINARY_INV,
                 "trunc": cv2.THRESH_TRUNC, "tozero": cv2.THRESH_TOZERO,
                 "tozero_inv": cv2.THRESH_TOZERO_INV}
        return lambda img: cv2.threshold(img, stage.level, stage.maxval, types[stage.type])[1]
    if op == "gradient_magnitude":
        def magnitude(img):
            gx = cv2.Sobel(img, cv2.CV_16S, 1, 0, ksize=stage.ksize, borderType=b)
            gy = cv2.Sobel(img, cv2.CV_16S, 0, 1, ksize=stage.ksize, borderType=b)
            if stage.norm == "l1":
                return cv2.convertScaleAbs(cv2.add(cv2.absdiff(gx, 0), cv2.absdiff(gy, 0),
                                                   dtype=cv2.CV_32S))
            return np.minimum(255, np.sqrt(gx.astype(np.float32) ** 2 + gy ** 2) + 0.5)
        return magnitude
    return None


def megapixels_per_second(fn, frame, pixels, repeat=5):
    fn(frame)
    start = time.perf_counter()
    for _ in range(repeat):
        fn(frame)
    return pixels * repeat / (time.perf_counter() - start) / 1e6


def cpu_rates(pipeline):
    rng = np.random.default_rng(0)
    fmt = pipeline.input_format
    frame = rng.integers(fmt.min, fmt.max + 1, (pipeline.height, pipeline.width, fmt.channels))
    frame = frame.astype(fmt.np_dtype)
    pixels = pipeline.width * pipeline.height
    golden = megapixels_per_second(pipeline.golden, frame, pixels, repeat=2)
    calls = [cv2_stage(b.stage) for b in pipeline.bound]
    if any(c is None for c in calls):
        return golden, None

    def opencv(img):
        img = img[:, :, 0] if img.shape[2] == 1 else img
        for call in calls:
            img = call(img)
        return img
    return golden, megapixels_per_second(opencv, frame, pixels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default=",".join(DEFAULT_SPECS))
    parser.add_argument("--boards", default="icebreaker,ulx3s-85f")
    parser.add_argument("--build-dir", help="keep the builds here (default: a temp folder)")
    parser.add_argument("--json", help="write the rows as JSON")
    parser.add_argument("--markdown", help="write the table as markdown")
    args = parser.parse_args(argv)
    rows = []
    build_root = Path(args.build_dir or tempfile.mkdtemp(prefix="rasterflow-bench-"))
    for spec in args.specs.split(","):
        path = ROOT / spec if not Path(spec).is_absolute() else Path(spec)
        if not path.exists():
            print(f"skip {spec}: not found")
            continue
        pipeline = load_spec(path)
        golden_rate, opencv_rate = cpu_rates(pipeline)
        for board in args.boards.split(","):
            row = {"spec": spec, "board": board, "width": pipeline.width,
                   "height": pipeline.height, "golden_mpix_s": golden_rate,
                   "opencv_mpix_s": opencv_rate}
            try:
                report = build(pipeline, board, build_root / f"{path.stem}-{board}",
                               progress=False)
            except DesignDoesNotFit as error:
                row["error"] = str(error)
            else:
                row.update({key: report[key] for key in
                            ("device", "fmax_mhz", "luts", "ffs", "brams", "dsps",
                             "build_seconds")})
                row["fpga_mpix_s"] = report["fmax_mhz"]  # one pixel per clock
            rows.append(row)
            print(format_row(row), flush=True)
    table = markdown(rows)
    print(table)
    if args.json:
        write_json(args.json, {"boards": rows})
    if args.markdown:
        atomic_write_text(args.markdown, table)
    return 0


def format_row(row):
    if "error" in row:
        return f"{row['spec']} on {row['board']}: {row['error']}"
    return (f"{row['spec']} on {row['board']}: Fmax {row['fmax_mhz']:.1f} MHz, "
            f"{row['luts']} LUTs, {row['brams']} BRAMs, {row['dsps']} DSPs")


def markdown(rows):
    lines = ["| pipeline | board | Fmax MHz | LUTs | FFs | BRAMs | DSPs | FPGA Mpix/s | "
             "OpenCV Mpix/s | golden Mpix/s | build s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['spec']} | {r['board']} | does not fit: {r['error']} "
                         f"||||||||")
            continue
        cv = f"{r['opencv_mpix_s']:.0f}" if r["opencv_mpix_s"] else "n/a"
        lines.append(f"| {r['spec']} | {r['board']} | {r['fmax_mhz']:.1f} | {r['luts']} | "
                     f"{r['ffs']} | {r['brams']} | {r['dsps']} | {r['fpga_mpix_s']:.1f} | "
                     f"{cv} | {r['golden_mpix_s']:.1f} | {r['build_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
