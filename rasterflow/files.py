"""Reading inputs and writing outputs: images, arrays, reports, comparison pictures.

Every output is written atomically: to a temporary file beside the target, then renamed, so
an interrupted run leaves either the old file or the complete new one, never half of one.
"""
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from .errors import InputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "read_image", "write_image",
           "write_outputs", "output_paths", "write_json", "comparison_image", "encode_png"]

PNG_SUFFIXES = (".png",)


def _default_mode():
    """The permissions a newly created file gets from the process umask (mkstemp's 0600 is
    only right for the temporary file's private life)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path, data: bytes):
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise InputError(f"output {path}: cannot write ({error.strerror or error})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), _default_mode())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode())


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_image(path):
    """Read a PNG (or other Pillow image) or a ``.npy`` array as ``H x W x C``.

    PNGs give ``uint8`` (gray: 1 channel, RGB: 3); ``.npy`` arrays keep their dtype and may be
    ``H x W``, ``H x W x C``, or a batch ``N x H x W x C`` (NHWC, as TFLite models take).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path}: no such file")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise InputError(f"image {path}: not a readable .npy array ({error})") from None
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim not in (3, 4) or 0 in array.shape:
            raise InputError(f"image {path}: expected an H x W, H x W x C or N x H x W x C "
                             f"array, got shape {array.shape}")
        return array
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("L", "RGB"):
                array = np.asarray(image)
            elif mode in ("P", "RGBA", "LA", "1"):
                raise InputError(f"image {path}: mode {mode} is not supported; use an 8-bit "
                                 f"gray (L) or RGB image")
            else:
                raise InputError(f"image {path}: mode {mode} is not supported; use an 8-bit "
                                 f"gray (L) or RGB image, or a .npy array")
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"image {path}: not a readable image ({error})") from None
    return array[:, :, None] if array.ndim == 2 else array


def encode_png(frame):
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _numpy_convention(frame):
    """A one-channel frame (or batch) without its channel axis: ``H x W`` like numpy and
    OpenCV hold grey images; several channels stay ``H x W x C``."""
    return frame[..., 0] if frame.ndim in (3, 4) and frame.shape[-1] == 1 else frame


def write_image(path, frame):
    """Write ``frame`` as PNG if it is 1- or 3-channel ``uint8`` and the name ends in .png;
    otherwise as ``.npy`` (a PNG name for a non-uint8 frame is an error). A one-channel
    frame is written to ``.npy`` as ``H x W`` (a batch as ``N x H x W``)."""
    path = Path(path)
    frame = np.asarray(frame)
    if path.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, _numpy_convention(frame))
        atomic_write_bytes(path, buf.getvalue())
        return path
    if path.suffix.lower() not in PNG_SUFFIXES:
        raise InputError(f"output {path}: use a .png or .npy file name")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (1, 3):
        raise InputError(f"output {path}: a {frame.dtype} frame with "
                         f"{frame.shape[-1]} channel(s) cannot be a PNG; use a .npy name")
    atomic_write_bytes(path, encode_png(frame))
    return path


def output_paths(path, names):
    """Where each output of a pipeline goes for ``-o path``: the path itself for one output
    (or an ``.npz`` holding every output); ``<stem>_<name><suffix>`` per output otherwise."""
    path = Path(path)
    if len(names) == 1 or path.suffix.lower() == ".npz":
        return {name: path for name in names}
    return {name: path.with_name(f"{path.stem}_{name}{path.suffix}") for name in names}


def write_outputs(path, outputs):
    """Write a pipeline's outputs (``{name: frame or batch}``) for ``-o path`` (see
    :func:`output_paths`); returns the paths written."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        buf = io.BytesIO()
        np.savez(buf, **{name: _numpy_convention(np.asarray(f)) for name, f in outputs.items()})
        atomic_write_bytes(path, buf.getvalue())
        return [path]
    paths = output_paths(path, list(outputs))
    return [write_image(paths[name], frame) for name, frame in outputs.items()]


def _to_display(frame):
    """Map any frame to 8-bit RGB for viewing: signed data is offset, wide data scaled."""
    frame = np.asarray(frame).astype(np.int64)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.shape[2] not in (1, 3):
        frame = frame[:, :, :1]
    lo, hi = frame.min(), frame.max()
    if lo < 0 or hi > 255:
        span = max(hi - lo, 1)
        frame = (frame - lo) * 255 // span
    frame = frame.astype(np.uint8)
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame


COMPARISON_PANELS = ("golden", "hardware", "diff")
LABEL_HEIGHT = 14


def comparison_image(expected, actual, title=None):
    """Side by side, labelled: golden | hardware | diff map (mismatching pixels red, others
    dim gray), with ``title`` (e.g. the output's name) before the first label."""
    exp, act = _to_display(expected), _to_display(actual)
    differs = np.any(np.asarray(expected) != np.asarray(actual), axis=-1) \
        if np.asarray(expected).ndim == 3 else np.asarray(expected) != np.asarray(actual)
    diff = exp // 4
    diff[differs] = (255, 0, 0)
    gap = np.full((exp.shape[0], 4, 3), 255, np.uint8)
    panels = np.concatenate([exp, gap, act, gap, diff], axis=1)
    return np.concatenate([_labels(panels.shape[1], exp.shape[1] + 4, title), panels])


def _labels(width, pitch, title):
    strip = Image.new("RGB", (width, LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, label in enumerate(COMPARISON_PANELS):
        text = f"{title}: {label}" if title and k == 0 else label
        draw.text((k * pitch + 2, 1), text, fill=(0, 0, 0))
    return np.asarray(strip)
