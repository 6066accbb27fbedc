"""Oriented boxes (vehicle footprints): corners and the overlap test, vectorised.

Shared by the planner (collision checks of candidate trajectories), the cameras (occlusion),
prediction, the driving metrics and the renderer, so that all of them agree on what a
footprint is and when two touch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from robotaxi.core.types import FloatArray

ArrayLike = npt.ArrayLike

_CORNER_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


def box_corners(
    x: ArrayLike, y: ArrayLike, heading: ArrayLike, length: ArrayLike, width: ArrayLike
) -> FloatArray:
    """Corners (…×4×2, m) of boxes centred at (x, y) with `heading` (rad), counter-clockwise
    from front-left."""
    h = np.asarray(heading, dtype=np.float64)
    c, s = np.cos(h), np.sin(h)
    hl = 0.5 * np.asarray(length, dtype=np.float64)
    hw = 0.5 * np.asarray(width, dtype=np.float64)
    lx = _CORNER_SIGNS[:, 0] * hl[..., None]
    ly = _CORNER_SIGNS[:, 1] * hw[..., None]
    cx = np.asarray(x, dtype=np.float64)[..., None] + lx * c[..., None] - ly * s[..., None]
    cy = np.asarray(y, dtype=np.float64)[..., None] + lx * s[..., None] + ly * c[..., None]
    return np.stack([cx, cy], axis=-1)


def boxes_overlap(
    c1: FloatArray,
    h1: ArrayLike,
    l1: ArrayLike,
    w1: ArrayLike,
    c2: FloatArray,
    h2: ArrayLike,
    l2: ArrayLike,
    w2: ArrayLike,
) -> npt.NDArray[np.bool_]:
    """Separating-axis test for pairs of oriented boxes (centres …×2, headings, lengths,
    widths in m/rad, broadcast together): True where the boxes overlap."""
    h1a, h2a = np.asarray(h1, dtype=np.float64), np.asarray(h2, dtype=np.float64)
    dx = c2[..., 0] - c1[..., 0]
    dy = c2[..., 1] - c1[..., 1]
    cos_d, sin_d = np.abs(np.cos(h2a - h1a)), np.abs(np.sin(h2a - h1a))
    a1, b1 = 0.5 * np.asarray(l1), 0.5 * np.asarray(w1)
    a2, b2 = 0.5 * np.asarray(l2), 0.5 * np.asarray(w2)
    c, s = np.cos(h1a), np.sin(h1a)
    sep = np.abs(dx * c + dy * s) > a1 + a2 * cos_d + b2 * sin_d
    sep |= np.abs(-dx * s + dy * c) > b1 + a2 * sin_d + b2 * cos_d
    c, s = np.cos(h2a), np.sin(h2a)
    sep |= np.abs(dx * c + dy * s) > a2 + a1 * cos_d + b1 * sin_d
    sep |= np.abs(-dx * s + dy * c) > b2 + a1 * sin_d + b1 * cos_d
    return np.asarray(~sep)
