"""Reusing coverage between images and polar frames within one changes no pixel (bit for bit)."""

import numpy as np

from unetgan_core.data.phantom import raster
from unetgan_core.data.phantom.anatomy import sample_anatomy, slice_positions, slice_scene
from unetgan_core.data.phantom.raster import Grid, Rasteriser, rasterise
from unetgan_core.data.phantom.shapes import Polar, polar_frame
from unetgan_core.data.phantom.tissues import tissue_signals


def test_a_shared_rasteriser_paints_what_a_fresh_one_does():
    grid = Grid(64, 4.5)
    shared = Rasteriser(grid, include_rv=True)
    anat = sample_anatomy(11)
    painted = 0
    for k, position in enumerate(slice_positions(4)):
        for phase, flip in (("ED", 50.0), ("ES", 62.0)):
            scene = slice_scene(anat, float(position), phase, slice_seed=k, label_seed=k + 7)
            signals = tissue_signals(flip, 1.5, 1.2)  # signals differ between images; coverage does not
            image, labels = shared(scene, signals)
            fresh_image, fresh_labels = rasterise(scene, signals, grid, include_rv=True)
            np.testing.assert_array_equal(image, fresh_image)
            np.testing.assert_array_equal(labels, fresh_labels)
            painted += len(scene.layers)
    assert 0 < len(shared._layers) < painted / 2  # the anatomy's ellipses were computed once


def test_a_slice_of_a_larger_polar_frame_gives_the_same_distances():
    coords = ((np.arange(40) - 19.5) * 1.5).astype(np.float32)
    radius = 9.0 + np.cos(np.linspace(0, 6 * np.pi, 360))
    shape = Polar(1.2, -0.7, radius, rotation=0.3, sector=(1.0, 0.4))
    big = polar_frame(coords[None, :], coords[:, None], 1.2, -0.7, 0.3)
    rows, cols = slice(8, 30), slice(5, 33)
    direct = shape.distance(coords[None, cols], coords[rows, None])
    np.testing.assert_array_equal(shape.distance_in(big[rows, cols]), direct)


def test_windows_equal_searchsorted_on_the_coordinates():
    grid = Grid(33, 3.0)
    rng = np.random.default_rng(0)
    edges = grid.coords.astype(np.float64)
    # Random centres, and centres whose window edges fall exactly on (or one ulp off) pixel centres.
    centres = [(float(x), float(y), float(r)) for x, y, r in rng.uniform([-60, -60, 0], [60, 60, 40], (200, 3))]
    centres += [(float(np.nextafter(e, d)) + 2 * 3.0 + 1.0, 0.0, 1.0) for e in edges for d in (-np.inf, 0, np.inf)]
    for cx, cy, reach in centres:
        pad = reach + 2.0 * 3.0
        c0, c1, r0, r1 = np.searchsorted(grid.coords, [cx - pad, cx + pad, cy - pad, cy + pad]).tolist()
        assert grid.window(cx, cy, reach) == (slice(r0, r1), slice(c0, c1))


def test_small_ellipses_computed_together_equal_one_by_one(monkeypatch):
    scene = slice_scene(sample_anatomy(5), 0.5, "ES", slice_seed=1, label_seed=2)
    signals = tissue_signals(45.0, 1.2, 1.0)
    for size in (64, 192):
        grid = Grid(size, 288.0 / size)
        together = rasterise(scene, signals, grid, include_rv=False)
        monkeypatch.setattr(raster, "SMALL_PX", 0)
        alone = rasterise(scene, signals, grid, include_rv=False)
        monkeypatch.undo()
        np.testing.assert_array_equal(together[0], alone[0])
        np.testing.assert_array_equal(together[1], alone[1])
