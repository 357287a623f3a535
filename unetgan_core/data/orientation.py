"""One canonical in-plane orientation for real short-axis slices, decided from the image geometry.

Scanners and converters store a short-axis slice in any of the eight arrangements of its pixel grid
(rotations by 90 degrees, mirror images, transposes): the same heart can appear with the right
ventricle left, right, above or below the left ventricle. A network trained on one arrangement does
not find the heart in another, so every real-data source brings its slices to one arrangement.

Geometry comes as two unit vectors in patient coordinates (DICOM's LPS: +x patient left, +y
posterior, +z superior): ``row_dir``, the direction in which the row index grows (down the image),
and ``col_dir``, the direction in which the column index grows (across the image). DICOM's
ImageOrientationPatient holds ``(col_dir, row_dir)``; a NIfTI affine holds them in its columns (in
RAS, see ``nifti.py``).

Canonical arrangement (the conventional cardiac view: patient left on the image's right, the
inferior and posterior wall at the bottom): of the eight arrangements, the one whose columns point
most toward patient left and whose rows point most toward posterior-inferior, i.e. the largest
``col . L + row . (P + I) / sqrt(2)``. The choice depends only on the physical directions, so any
stored arrangement of the same slice gives the same output array. Exact ties (only for planes that
contain a reference axis, never in a short-axis stack) are broken by ``row . I`` then
``col . P``, and otherwise by the order of ``ARRANGEMENTS``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unetgan_core.errors import DataError

_LEFT = np.array([1.0, 0.0, 0.0])
_POSTERIOR = np.array([0.0, 1.0, 0.0])
_INFERIOR = np.array([0.0, 0.0, -1.0])
_DOWN = (_POSTERIOR + _INFERIOR) / np.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class Arrangement:
    """A change of a slice's pixel grid: optional transpose first, then flips of the (new) axes.

    Args:
        transpose: swap rows and columns.
        flip_rows: reverse the row order (upside down).
        flip_cols: reverse the column order (mirror left-right).
    """

    transpose: bool
    flip_rows: bool
    flip_cols: bool

    def directions(self, row_dir: np.ndarray, col_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The patient directions of the rows and columns after this change."""
        if self.transpose:
            row_dir, col_dir = col_dir, row_dir
        return (-row_dir if self.flip_rows else row_dir), (-col_dir if self.flip_cols else col_dir)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """``array`` ``[H, W, ...]`` rearranged (a copy); trailing axes (slices) keep their order."""
        if self.transpose:
            array = np.swapaxes(array, 0, 1)
        if self.flip_rows:
            array = array[::-1]
        if self.flip_cols:
            array = array[:, ::-1]
        return np.ascontiguousarray(array)

    def spacing(self, spacing_mm: tuple[float, float]) -> tuple[float, float]:
        """Pixel size ``(along rows, along columns)`` in millimetres after this change."""
        return (spacing_mm[1], spacing_mm[0]) if self.transpose else tuple(spacing_mm)


# Identity first, so exact ties keep the stored arrangement.
ARRANGEMENTS = tuple(Arrangement(t, fr, fc) for t in (False, True) for fr in (False, True) for fc in (False, True))


def _unit(vector, what: str, where: str) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v)) if v.shape == (3,) and np.isfinite(v).all() else 0.0
    if norm < 1e-6:
        raise DataError(f"{where}: {what} direction {list(np.ravel(vector))} is not a finite non-zero 3-vector")
    return v / norm


def canonical_arrangement(row_dir, col_dir, where: str = "image") -> Arrangement:
    """The change that brings a slice with these patient directions to the canonical arrangement.

    Args:
        row_dir: patient direction (LPS) in which the row index grows, any length.
        col_dir: patient direction (LPS) in which the column index grows.
        where: the file, for error messages.

    Raises:
        DataError: a zero, non-finite or parallel pair of directions.
    """
    row, col = _unit(row_dir, "row", where), _unit(col_dir, "column", where)
    if np.linalg.norm(np.cross(row, col)) < 1e-3:
        raise DataError(f"{where}: row and column directions {row.round(3)} and {col.round(3)} are parallel")

    def key(arrangement: Arrangement) -> tuple[float, float, float]:
        r, c = arrangement.directions(row, col)
        return (round(float(c @ _LEFT + r @ _DOWN), 6), round(float(r @ _INFERIOR), 6), round(float(c @ _POSTERIOR), 6))

    # max keeps the first of equal keys, i.e. the earliest in ARRANGEMENTS.
    return max(ARRANGEMENTS, key=key)
