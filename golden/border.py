"""Border extrapolation, exactly as OpenCV's ``borderInterpolate`` / ``copyMakeBorder``.

For an axis ``abcdefgh`` (length n = 8) the virtual pixels outside it are:

==============  ===================  =========================
name            OpenCV               left | row | right
==============  ===================  =========================
``constant``    BORDER_CONSTANT      ``iii|abcdefgh|iii`` (i = value)
``replicate``   BORDER_REPLICATE     ``aaa|abcdefgh|hhh``
``reflect``     BORDER_REFLECT       ``cba|abcdefgh|hgf``
``reflect101``  BORDER_REFLECT_101   ``dcb|abcdefgh|gfe``
==============  ===================  =========================

Images are numpy arrays H x W x C or H x W; :func:`pad` returns the rank it was given.
"""
import numpy as np

__all__ = ["BORDERS", "border_index", "pad"]

BORDERS = ("constant", "replicate", "reflect", "reflect101")


def _check_border(border):
    if border not in BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, not {border!r}")


def border_index(i, n, border):
    """Source index for virtual coordinate ``i`` on an axis of length ``n``.

    ``i`` is an int or an integer array (any shape; the result has the same shape). Indices
    inside ``0..n-1`` map to themselves. Outside:

    * ``constant``: -1 (the caller substitutes the border value);
    * ``replicate``: clamp to ``0..n-1``;
    * ``reflect``: OpenCV folds the coordinate at the edges (``p -> -p - 1`` below 0,
      ``p -> 2n - 1 - p`` above n - 1) and *repeats the fold* until it lands inside, so a
      distance beyond n keeps bouncing between the edges. Repeated folding is periodic with
      period 2n: ``m = i mod 2n``, index ``m`` if ``m < n`` else ``2n - 1 - m``;
    * ``reflect101``: the same with the edge pixel not repeated (``p -> -p``,
      ``p -> 2n - 2 - p``), period 2n - 2: ``m = i mod (2n - 2)``, index ``m`` if
      ``m < n`` else ``2n - 2 - m``. For ``n == 1`` OpenCV returns 0 for both reflections.

    Filters here only need ``|offset| <= n - 1`` (one fold), but any ``i`` is exact.
    """
    _check_border(border)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, not {n!r}")
    scalar = np.ndim(i) == 0
    idx = np.asarray(i, dtype=np.int64)
    if border == "constant":
        out = np.where((idx >= 0) & (idx < n), idx, -1)
    elif border == "replicate":
        out = np.clip(idx, 0, n - 1)
    elif n == 1:
        out = np.zeros_like(idx)
    else:
        period = 2 * n if border == "reflect" else 2 * n - 2
        m = np.mod(idx, period)
        out = np.where(m < n, m, period - 1 - m if border == "reflect" else period - m)
    return int(out) if scalar else out


def pad(img, top, bottom, left, right, border, value=0):
    """Pad an H x W (x C) image like ``cv2.copyMakeBorder(img, top, bottom, left, right, ...)``.

    Every output pixel is ``img[border_index(y), border_index(x)]``, or ``value`` (cast to
    the image dtype, which must hold it) where either index is -1 (``constant``).
    Returns an array of the same rank and dtype as ``img``.
    """
    _check_border(border)
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"img must be H x W or H x W x C, not shape {img.shape}")
    for name, amount in (("top", top), ("bottom", bottom), ("left", left), ("right", right)):
        if not isinstance(amount, (int, np.integer)) or amount < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {amount!r}")
    h, w = img.shape[:2]
    rows = border_index(np.arange(-top, h + bottom), h, border)
    cols = border_index(np.arange(-left, w + right), w, border)
    out = img[np.ix_(np.maximum(rows, 0), np.maximum(cols, 0))]
    if border == "constant":
        info = np.iinfo(img.dtype) if img.dtype.kind in "iu" else None
        if info is not None and not info.min <= value <= info.max:
            raise ValueError(f"value must fit {img.dtype} ({info.min}..{info.max}), not {value!r}")
        outside = (rows < 0)[:, None] | (cols < 0)[None, :]
        out[outside] = value
    return out
