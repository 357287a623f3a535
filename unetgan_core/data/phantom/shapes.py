"""Shapes of the phantom and their partial-volume coverage on a pixel grid.

Every shape gives an approximate signed distance ``d`` (mm, negative inside) at pixel
centres. A pixel's partial-volume fraction is ``clip(0.5 - d / pixel_mm, 0, 1)``: the area of
the pixel on the inner side of a locally straight edge crossing it perpendicular to the
pixel axes. This is the limit of supersampling the pixel infinitely finely (tested against
brute-force supersampling), at the cost of one evaluation per pixel instead of s*s.
"""

from __future__ import annotations

import dataclasses

import numpy as np

N_ANGLES = 360  # bins of the angular radius tables of polar shapes (1 degree each)


def wrap_angle(a):
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


@dataclasses.dataclass(frozen=True)
class Ellipse:
    """An ellipse in image millimetres.

    Args:
        cx, cy: centre in mm (x to the right, y down, 0 at the image centre).
        a, b: semi-axes in mm along the rotated x and y axes.
        angle: rotation in radians.
    """

    cx: float
    cy: float
    a: float
    b: float
    angle: float = 0.0

    @property
    def reach_mm(self) -> float:
        return max(self.a, self.b)

    def constants(self, dtype: np.dtype) -> tuple:
        """Centre, cos and sin of the angle, 1/a^2 and 1/b^2 in ``dtype`` (for ``ellipse_distance``)."""
        t = dtype.type
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        return t(self.cx), t(self.cy), t(cos), t(sin), t(1.0 / (self.a * self.a)), t(1.0 / (self.b * self.b))

    def distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ellipse_distance(x, y, *self.constants(np.result_type(x, y)))


def ellipse_distance(x: np.ndarray, y: np.ndarray, cx, cy, cos, sin, ia2, ib2) -> np.ndarray:
    """Approximate signed distance (mm) from pixel centres to ellipses given by ``Ellipse.constants``.

    The constants are scalars for one ellipse ([1, W] and [H, 1] coordinates), or ``[N, 1, 1]``
    arrays for N ellipses at once (``[N, 1, W]``, ``[N, H, 1]``): every pixel gets the same
    correctly rounded operations either way, so the same value as alone.
    """
    dx, dy = x - cx, y - cy
    u = dx * cos + dy * sin  # broadcasting [1, W] and [H, 1] to [H, W]
    v = dy * cos - dx * sin
    ua, vb = u * ia2, v * ib2
    q = np.sqrt(u * ua + v * vb)  # normalised radius, 1 on the outline
    # First-order distance to the level set q = 1: (q - 1) / |grad q|, with
    # |grad q| = |(u / a^2, v / b^2)| / q; exact for circles, close within a pixel elsewhere.
    return (q - 1) * q / (np.sqrt(ua * ua + vb * vb) + q.dtype.type(1e-12))


@dataclasses.dataclass(frozen=True)
class Polar:
    """A star-shaped outline r = radius[theta] around a centre (the LV walls).

    Args:
        cx, cy: centre in mm.
        radius: float ``[N_ANGLES]``, the outline's radius in mm at angle bin i, where bin i
            covers image angles ``rotation - pi + 2 pi i / N_ANGLES`` (atan2(y, x), y down).
        rotation: radians added to the table's angles.
        sector: optional ``(centre_angle, half_width)`` in radians: keep only that wedge.
    """

    cx: float
    cy: float
    radius: np.ndarray
    rotation: float = 0.0
    sector: tuple[float, float] | None = None

    @property
    def reach_mm(self) -> float:
        return float(np.max(self.radius))

    def distance(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.distance_in(polar_frame(x, y, self.cx, self.cy, self.rotation))

    def distance_in(self, frame: PolarFrame) -> np.ndarray:
        """``distance`` from a frame of this shape's centre and rotation (``polar_frame``), e.g. a slice
        of one computed for several outlines around the same centre."""
        d = frame.r - self.radius.astype(np.float64)[frame.bin]
        if self.sector is not None:
            centre, half = self.sector
            # Arc distance to the wedge's straight sides.
            d_side = (np.abs(wrap_angle(frame.theta - np.float64(centre))) - np.float64(half)) * frame.r
            d = np.maximum(d, d_side)
        return d


@dataclasses.dataclass(frozen=True)
class PolarFrame:
    """Polar coordinates of pixel centres around a centre: radius (mm), angle, angle-table bin."""

    r: np.ndarray
    theta: np.ndarray
    bin: np.ndarray

    def __getitem__(self, index) -> PolarFrame:
        return PolarFrame(self.r[index], self.theta[index], self.bin[index])


def polar_frame(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rotation: float) -> PolarFrame:
    """The ``PolarFrame`` of pixel centres ``x``, ``y`` (mm, broadcastable) around (cx, cy).

    Computed per pixel alone (no value depends on its neighbours), so a slice of a frame over a
    larger window equals the frame of the smaller window.
    """
    # float64: an angle on a table-bin edge must fall the same way on every machine.
    dx, dy = x.astype(np.float64) - cx, y.astype(np.float64) - cy
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    # Shift by a whole turn so the value is positive and truncation equals floor.
    rel = (theta - np.float64(rotation - 3.0 * np.pi)) * np.float64(N_ANGLES / (2.0 * np.pi))
    return PolarFrame(r, theta, rel.astype(np.int64) % N_ANGLES)


def coverage(shape, x: np.ndarray, y: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Partial-volume fraction (0-1) of each pixel inside ``shape``.

    Args:
        shape: an ``Ellipse`` or ``Polar``.
        x, y: pixel-centre coordinates in mm (broadcastable).
        pixel_mm: pixel size in mm.
    """
    return partial_volume(shape.distance(x, y), pixel_mm)


def partial_volume(d: np.ndarray, pixel_mm: float) -> np.ndarray:
    """``clip(0.5 - d / pixel_mm, 0, 1)`` of signed distances ``d`` (mm), in place on ``d``."""
    d *= d.dtype.type(-1.0 / pixel_mm)
    d += d.dtype.type(0.5)
    return np.minimum(np.maximum(d, 0, out=d), 1, out=d)
