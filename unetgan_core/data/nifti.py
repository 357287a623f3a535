"""Reading NIfTI volumes for the M&Ms, ACDC and manifest sources, with one-line errors.

NIfTI stores a short-axis volume as ``(x, y, slice[, time])``. Slices are returned as
``[H, W, slice]`` with ``H`` the NIfTI ``y`` axis and ``W`` the ``x`` axis (rows and columns the
way DICOM-converted volumes are laid out), together with the patient directions of those rows and
columns from the affine (``inplane_directions``), from which ``preprocess`` brings every slice to
one canonical in-plane arrangement (``orientation.py``) whatever affine the file was written with.

Importing this module also registers the NIfTI-based data sources (``mnms``, ``acdc``,
``manifest``), which live in their own modules.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from unetgan_core.data.filecheck import check_stored_size
from unetgan_core.data.preprocess import check_finite, check_spacing
from unetgan_core.errors import DataError

# What nibabel raises on a truncated, corrupt or non-NIfTI file.
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, ImageFileError)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _check_ndims(path: Path, shape: tuple[int, ...], ndims: tuple[int, ...]) -> None:
    if len(shape) not in ndims:
        raise DataError(f"{path}: expected a {' or '.join(f'{n}D' for n in ndims)} volume, got shape {shape}")


def read_nifti(
    path: Path, ndims: tuple[int, ...], is_label: bool = False
) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """Read a whole NIfTI volume, its voxel size and its affine.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        ndims: accepted numbers of dimensions (e.g. ``(4,)`` for cine, ``(3,)`` for one frame).
        is_label: labels keep their stored values (no float conversion, no finiteness check here;
            ``preprocess.map_labels`` checks them).

    Returns:
        ``(array, zooms, affine)``: images as float32, labels as stored; ``zooms`` in millimetres
        (and seconds for time) per axis; the 4 x 4 voxel-to-RAS affine (millimetres).

    Raises:
        DataError: missing, truncated or unreadable file, wrong dimensionality, bad spacing or
            (images) non-finite voxels; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        img = nib.load(str(path))
        # Reading the whole array (not a slice of it) is what detects a truncated .gz.
        data = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
        affine = np.asarray(img.affine, dtype=np.float64)
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read NIfTI ({_one_line(exc)})") from None
    _check_ndims(path, data.shape, ndims)
    check_spacing(zooms[:2], str(path))
    if not is_label:
        data = data.astype(np.float32)
        check_finite(data, str(path))
    return data, zooms, affine


def inplane_directions(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patient directions (LPS) of the rows and columns of ``frame_slices``' output, from a NIfTI affine.

    Rows follow the NIfTI ``y`` axis and columns its ``x`` axis; the affine's columns give those axes in
    RAS, and negating the first two components turns RAS into DICOM's LPS.

    Args:
        affine: 4 x 4 voxel-to-world matrix (``img.affine``).

    Returns:
        ``(row_dir, col_dir)``, unnormalised 3-vectors.
    """
    ras_to_lps = np.array([-1.0, -1.0, 1.0])
    return affine[:3, 1] * ras_to_lps, affine[:3, 0] * ras_to_lps


def check_nifti_header(path: Path, ndims: tuple[int, ...]) -> tuple[int, ...]:
    """Open a NIfTI header and check the file holds every voxel it promises, without decoding them.

    The cheap counterpart of ``read_nifti`` for ``validate`` (see ``data/filecheck.py``).

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        ndims: accepted numbers of dimensions.

    Returns:
        The volume's shape.

    Raises:
        DataError: missing file, unreadable header, wrong dimensionality, or fewer bytes than the
            header needs (a truncated file); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        proxy = nib.load(str(path)).dataobj  # the header is read; the voxels stay on disk
        shape = tuple(int(n) for n in proxy.shape)
        needed = int(proxy.offset) + int(np.prod(shape)) * np.dtype(proxy.dtype).itemsize
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read NIfTI header ({_one_line(exc)})") from None
    _check_ndims(path, shape, ndims)
    check_stored_size(path, needed, "NIfTI")
    return shape


def frame_slices(volume: np.ndarray, zooms: tuple[float, ...], frame: int | None) -> tuple[np.ndarray, tuple]:
    """One frame of a volume as ``[H, W, slices]`` plus its in-plane spacing ``(H mm, W mm)``.

    Args:
        volume: ``(x, y, slice)`` or ``(x, y, slice, time)`` array as stored.
        zooms: voxel sizes from the header, millimetres.
        frame: 0-based time index for a 4D volume; None for a 3D one.
    """
    if frame is not None:
        volume = volume[:, :, :, frame]
    if volume.ndim == 2:
        volume = volume[:, :, None]
    return np.transpose(volume, (1, 0, 2)), (zooms[1], zooms[0])
