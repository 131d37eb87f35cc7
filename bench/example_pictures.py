"""Run the graph examples through the generated Verilog (cocotb + Verilator) on their shared
images and draw what the hardware produced: ``docs/images/<example>.png`` is the input beside
every output, each panel labelled, under a line with the verdict and the cycle count.

    python bench/example_pictures.py [--out docs/images] [NAME ...]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rasterflow.files import _to_display, read_image, write_image
from rasterflow.sim.session import simulate
from rasterflow.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
#: example -> image in tests/data
EXAMPLES = {"unsharp": "camera.png", "dog": "camera.png", "sobel_xy": "astronaut.png"}
CAPTION_HEIGHT = 14
GAP = 6


def labelled(frame, label):
    """``frame`` as 8-bit RGB (signed data offset, wide data scaled) under ``label``."""
    panel = _to_display(frame)
    strip = Image.new("RGB", (panel.shape[1], CAPTION_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(strip).text((2, 1), label, fill=(0, 0, 0))
    return np.concatenate([np.asarray(strip), panel])


def picture(image, outputs, verdict):
    panels = [labelled(image, "input")] + [labelled(frame, name)
                                           for name, frame in outputs.items()]
    gap = np.full((panels[0].shape[0], GAP, 3), 255, np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    title = Image.new("RGB", (row.shape[1], CAPTION_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(title).text((2, 1), verdict, fill=(0, 0, 0))
    return np.concatenate([np.asarray(title), row])


def run(name, out_dir):
    pipeline = load_spec(ROOT / "examples" / f"{name}.toml")
    image = pipeline.check_frame(read_image(ROOT / "tests" / "data" / EXAMPLES[name]))
    result = simulate(pipeline, image, simulator="verilator")
    outputs = result.outputs[0] if len(pipeline.outputs) > 1 else \
        {pipeline.outputs[0]: result.outputs[0]}
    verdict = (f"{name}: {'BIT-EXACT' if result.bit_exact else 'MISMATCH'} in Verilator, "
               f"{result.mismatches} mismatching values, {result.cycles} cycles for "
               f"{pipeline.width}x{pipeline.height} (latency {result.latency_cycles})")
    print(verdict)
    write_image(out_dir / f"{name}.png", picture(image, outputs, verdict))
    return result.bit_exact


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(EXAMPLES),
                        help=f"examples to run (default: {', '.join(EXAMPLES)})")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(EXAMPLES))
    if unknown:
        parser.error(f"unknown example(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(EXAMPLES)}")
    return 0 if all([run(name, args.out) for name in args.names]) else 1


if __name__ == "__main__":
    sys.exit(main())
