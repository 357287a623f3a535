"""Rasterise phantom scenes and run the acquisition chain: anatomy seed + style -> images.

These images are synthetic. The vendor styles are inspired by the vendors in Yan et al.
(MICCAI 2019), not measured properties of real scanners.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from unetgan_core.data.normalise import normalise_stored_integers
from unetgan_core.data.phantom.acquisition import acquire
from unetgan_core.data.phantom.anatomy import PHASES, Anatomy, sample_anatomy, slice_positions, slice_scene
from unetgan_core.data.phantom.raster import Grid, Rasteriser
from unetgan_core.data.phantom.styles import VendorStyle, resolve_style
from unetgan_core.data.phantom.tissues import tissue_signals
from unetgan_core.data.sliceset import MYOCARDIUM, SliceSet
from unetgan_core.errors import UserError
from unetgan_core.hashing import derive_seed

FOV_MM = 288.0  # the paper's 192 px at 1.5 mm
# Images per chunk: one vectorised acquisition call and one Rasteriser (bounds memory, not results).
# 16 is one subject of 8 slices x 2 phases (its anatomy's coverage is computed once), and its
# [16, 192, 192] arrays stay closer to cache: 1.07-1.13x faster than 32 on one thread.
BATCH = 16
MAX_THREADS = 8  # rendering threads at most; numpy and pocketfft release the GIL in the heavy loops


def render_threads(n_tasks: int) -> int:
    """Threads to render ``n_tasks`` chunks with: the usable cores, capped by ``OMP_NUM_THREADS`` when set.

    Each image has its own seeds and each chunk is computed exactly as it would be alone, so the
    thread count changes speed only, never the images.

    Args:
        n_tasks: number of independent chunks of work.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) >= 1:
        # A user who limits OpenMP threads means "use this many cores"; honour it here too.
        cores = min(cores, int(limit))
    return max(1, min(cores, MAX_THREADS, n_tasks))


def default_pixel_mm(size_px: int) -> float:
    """The pixel size in mm that keeps the 288 mm field of view at ``size_px``."""
    return FOV_MM / size_px


def _check_geometry(size_px: int, pixel_mm: float) -> None:
    if isinstance(size_px, bool) or not isinstance(size_px, int) or not 16 <= size_px <= 1024:
        raise UserError(f"size_px = {size_px!r}; allowed: an integer 16..1024 (e.g. 64, 96, 192)")
    if not isinstance(pixel_mm, (int, float)) or not 0.1 <= pixel_mm <= 20.0:
        raise UserError(f"pixel_mm = {pixel_mm!r}; allowed: 0.1..20 mm")


@dataclasses.dataclass(frozen=True)
class ImageJob:
    """One image to make: which subject, slice, phase, and its own seeds."""

    anatomy: Anatomy
    slice_index: int
    position: float
    phase: str
    image_seed: int


def _render_chunk(
    jobs: Sequence[ImageJob], style: VendorStyle, grid: Grid, include_rv: bool, normalise: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise and acquire one chunk of at most ``BATCH`` images (see ``render_jobs``)."""
    n = grid.size_px
    signal = np.empty((len(jobs), n, n), dtype=np.float32)
    labels = np.empty((len(jobs), n, n), dtype=np.uint8)
    params, noise_seeds = [], []
    rasterise = Rasteriser(grid, include_rv)  # reuses a subject's anatomy-only coverage between its images
    for i, job in enumerate(jobs):
        anat = job.anatomy
        p = style.sample(np.random.default_rng(derive_seed(job.image_seed, "params")))
        scene = slice_scene(
            anat,
            job.position,
            job.phase,
            slice_seed=derive_seed(anat.seed, "slice", job.slice_index),
            label_seed=derive_seed(anat.seed, "label", job.slice_index, job.phase),
        )
        signals = tissue_signals(p["flip_angle_deg"], p["te_ms"], p["blood_inflow"])
        signal[i], labels[i] = rasterise(scene, signals)
        params.append(p)
        noise_seeds.append(derive_seed(job.image_seed, "noise"))
    raw = acquire(signal, labels == MYOCARDIUM, params, noise_seeds, grid.pixel_mm)
    if normalise:  # the stored integers' percentiles come from a histogram: the same as normalise_images
        raw = normalise_stored_integers(raw, 2 ** max(p["bits"] for p in params))
    return raw, labels


def render_jobs(
    jobs: Sequence[ImageJob], style: VendorStyle, grid: Grid, include_rv: bool, *, normalise: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Render raw (stored-integer) images and labels for ``jobs`` in one style.

    Chunks of ``BATCH`` images run on ``render_threads`` threads. The chunks are the same
    whatever the thread count, and each image has its own seeds, so the result is too.

    Args:
        jobs: the images to make.
        style: the vendor style.
        grid: the pixel grid.
        include_rv: label the RV cavity 3.
        normalise: return ``normalise_images`` of the raw intensities (per image, done in the threads).

    Returns:
        (float32 ``[N, H, W]`` raw intensities, or [0, 1] with ``normalise``; uint8 ``[N, H, W]`` labels).
    """
    n = grid.size_px
    raw = np.empty((len(jobs), n, n), dtype=np.float32)
    labels = np.empty((len(jobs), n, n), dtype=np.uint8)
    starts = range(0, len(jobs), BATCH)

    def run(start: int) -> None:
        raw[start : start + BATCH], labels[start : start + BATCH] = _render_chunk(
            jobs[start : start + BATCH], style, grid, include_rv, normalise
        )

    threads = render_threads(len(starts))
    if threads == 1:
        for start in starts:
            run(start)
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="phantom") as pool:
            for future in [pool.submit(run, start) for start in starts]:
                future.result()  # re-raises a worker's exception here
    return raw, labels


def render_subjects(
    subjects: Sequence[str],
    anatomy_seeds: Sequence[int],
    image_seeds: Sequence[int],
    style: VendorStyle,
    size_px: int = 192,
    pixel_mm: float | None = None,
    slices: int = 8,
    phases: Sequence[str] = PHASES,
    include_rv: bool = False,
) -> SliceSet:
    """Render every slice and phase of several subjects in one style, as a ``SliceSet``.

    Args:
        subjects: subject ids, one per anatomy.
        anatomy_seeds: the anatomy seed of each subject (vendor-independent geometry).
        image_seeds: the acquisition seed of each subject (style parameters and noise).
        style: the vendor style.
        size_px: image side in pixels.
        pixel_mm: pixel size in mm; default keeps the 288 mm field of view.
        slices: slices per subject, apex to base.
        phases: cardiac phases, from ``"ED"`` and ``"ES"``.
        include_rv: label the RV cavity 3 (pictures); default leaves it background.

    Returns:
        Images normalised to [0, 1] (``normalise_images``), ``synthetic=True``, ordered by
        subject, slice, phase.
    """
    pixel_mm = default_pixel_mm(size_px) if pixel_mm is None else pixel_mm
    _check_geometry(size_px, pixel_mm)
    phases = list(phases)
    if not phases or any(p not in PHASES for p in phases) or len(set(phases)) != len(phases):
        raise UserError(f"phases = {phases!r}; allowed: distinct values from {', '.join(PHASES)}")
    positions = slice_positions(slices)
    jobs = [
        ImageJob(anat, k, float(positions[k]), phase, derive_seed(image_seed, k, phase))
        for anat, image_seed in zip((sample_anatomy(s) for s in anatomy_seeds), image_seeds, strict=True)
        for k in range(slices)
        for phase in phases
    ]
    images, labels = render_jobs(jobs, style, Grid(size_px, pixel_mm), include_rv, normalise=True)
    per_subject = slices * len(phases)
    n = len(jobs)
    return SliceSet(
        images=images,
        labels=labels,
        subjects=np.repeat(np.asarray(list(subjects), dtype=str), per_subject),
        vendor=style.name,
        pixel_mm=float(pixel_mm),
        labelled=np.ones(n, dtype=bool),
        myo_labelled=np.ones(n, dtype=bool),
        slice_index=np.array([j.slice_index for j in jobs], dtype=np.int64),
        phase=np.array([j.phase for j in jobs], dtype=str),
        synthetic=True,
    )


def render_anatomy(
    anatomy_seed: int,
    style: str | VendorStyle,
    size_px: int = 192,
    pixel_mm: float | None = None,
    slices: int = 8,
    phases: Sequence[str] = PHASES,
    image_seed: int = 0,
    include_rv: bool = False,
) -> SliceSet:
    """One anatomy (heart) rendered in one style, e.g. to show the same heart in every style.

    Args:
        anatomy_seed: seed of the geometry; the labels depend only on it (and the geometry).
        style: a style name from ``STYLES`` or a ``VendorStyle``.
        size_px: image side in pixels (64, 96, 192, ...).
        pixel_mm: pixel size in mm; default keeps the 288 mm field of view.
        slices: number of slices, apex to base.
        phases: phases to render, from ``"ED"``, ``"ES"``.
        image_seed: seed of the acquisition parameters and noise.
        include_rv: label the RV cavity 3.

    Returns:
        A ``SliceSet`` whose subject id is ``"anatomy-<seed>"``.
    """
    style = resolve_style(style)
    return render_subjects(
        [f"anatomy-{anatomy_seed}"], [anatomy_seed], [image_seed], style, size_px, pixel_mm, slices, phases, include_rv
    )
