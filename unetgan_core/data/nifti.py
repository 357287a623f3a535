"""Reading NIfTI volumes for the M&Ms, ACDC and manifest sources, with one-line errors.

NIfTI stores a short-axis volume as ``(x, y, slice[, time])``. Slices are returned as
``[H, W, slice]`` with ``H`` the NIfTI ``y`` axis and ``W`` the ``x`` axis, i.e. rows and columns
the way the scanner's DICOM images are laid out, so real-data sources agree on orientation.

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


def read_nifti(path: Path, ndims: tuple[int, ...], is_label: bool = False) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a whole NIfTI volume and its voxel size.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        ndims: accepted numbers of dimensions (e.g. ``(4,)`` for cine, ``(3,)`` for one frame).
        is_label: labels keep their stored values (no float conversion, no finiteness check here;
            ``preprocess.map_labels`` checks them).

    Returns:
        ``(array, zooms)``: images as float32, labels as stored; ``zooms`` in millimetres
        (and seconds for time) per axis.

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
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read NIfTI ({_one_line(exc)})") from None
    _check_ndims(path, data.shape, ndims)
    check_spacing(zooms[:2], str(path))
    if not is_label:
        data = data.astype(np.float32)
        check_finite(data, str(path))
    return data, zooms


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

