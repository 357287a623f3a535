"""Vendor-independent anatomy of the short-axis phantom, in millimetres.

A subject (``Anatomy``) is sampled once from its anatomy seed. ``slice_scene`` turns it into
the painted layers and the label outlines of one slice position (apex to base) and cardiac
phase (ED or ES). Nothing here depends on the vendor style, so one anatomy seed gives the same
labels in every style.

Image frame: x to the right, y down, 0 at the image centre; anterior is up, the patient's
right is on the image left (radiological convention), so the RV lies left of the LV.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from unetgan_core.data.phantom.shapes import N_ANGLES, Ellipse, Polar, wrap_angle
from unetgan_core.data.sliceset import BLOOD_POOL, MYOCARDIUM, RIGHT_VENTRICLE
from unetgan_core.errors import UserError

PHASES = ("ED", "ES")
# RMS of the smooth random shift of the annotated LV outlines (mm); it keeps the best
# possible Dice below 1, as between human annotators.
ANNOTATOR_RMS_MM = 0.8
_THETA = np.linspace(-np.pi, np.pi, N_ANGLES, endpoint=False) + np.pi / N_ANGLES


@dataclasses.dataclass(frozen=True)
class Layer:
    """One painted structure: ``shape`` filled with ``tissue``, only where ``clip`` covers."""

    shape: Ellipse | Polar
    tissue: str
    clip: Ellipse | None = None


@dataclasses.dataclass(frozen=True)
class Scene:
    """What to paint (back to front) and which label each annotated outline gets (in order)."""

    layers: list[Layer]
    labels: list[tuple[Ellipse | Polar, int]]


def _harmonics(rng: np.random.Generator, orders: range, amplitude: float, decay: float = 1.0) -> np.ndarray:
    """A smooth periodic table over ``_THETA``: random Fourier series with 1/k**decay amplitudes.

    Per order, an amplitude factor uniform in [0.3, 1) then a phase uniform in [0, 2 pi) are drawn,
    as ``rng.uniform`` draws them (``low + (high - low) * random()``), all in one call; the terms are
    summed in order of k.
    """
    draws = rng.random((len(orders), 2))
    weights = [
        amplitude * (0.3 + (1.0 - 0.3) * a) / k**decay for k, a in zip(orders, draws[:, 0].tolist(), strict=True)
    ]
    phases = (2 * np.pi) * draws[:, 1]
    terms = np.cos(np.asarray(orders, dtype=np.float64)[:, None] * _THETA + phases[:, None])
    out = np.zeros(N_ANGLES)
    for weight, term in zip(weights, terms, strict=True):
        term *= weight
        out += term
    return out


def _bumps(rng: np.random.Generator, count: int, width_rad: float) -> np.ndarray:
    """``count`` random non-negative bumps (0-1) around the circle, e.g. trabeculae."""
    out = np.zeros(N_ANGLES)
    for centre, height in zip(rng.uniform(-np.pi, np.pi, count), rng.uniform(0.4, 1.0, count), strict=True):
        out = np.maximum(out, height * np.exp(-0.5 * (wrap_angle(_THETA - centre) / width_rad) ** 2))
    return out


@dataclasses.dataclass(frozen=True)
class Anatomy:
    """One synthetic subject; lengths in mm, angles in radians, positions relative to the LV.

    Build with ``sample_anatomy``; fields are documented where they are drawn.
    """

    seed: int
    rotation: float
    lv_offset: tuple[float, float]
    body_offset: tuple[float, float]
    body_axes: tuple[float, float]
    fat_mm: float
    muscle_mm: float
    liver: tuple[float, float, float, float, float] | None
    spine_offset: tuple[float, float]
    spine_radius: float
    aorta_offset: tuple[float, float]
    aorta_radius: float
    endo_mid_mm: float
    wall_mm: float
    ejection_fraction: float
    endo_shape: np.ndarray
    epi_shape: np.ndarray
    trabeculae: np.ndarray
    trabecular_mm: float
    papillary: tuple[float, float, float]
    outflow: tuple[float, float]
    rv: tuple[float, float, float, float, float, float]
    fat_margin: np.ndarray
    groove_fat_mm: float

    @functools.cached_property
    def area_factors(self) -> tuple[float, float]:
        """``_shape_area_factor`` of the endocardial and epicardial shapes (every slice uses them)."""
        return _shape_area_factor(self.endo_shape), _shape_area_factor(self.epi_shape)


def sample_anatomy(seed: int) -> Anatomy:
    """Draw one subject's anatomy from its seed (independent of any vendor style).

    Args:
        seed: the anatomy seed (e.g. ``derive_seed(seed, "anatomy", i, vendor)``).
    """
    rng = np.random.default_rng(seed)
    u = rng.uniform
    return Anatomy(
        seed=int(seed),
        rotation=u(-0.25, 0.25),
        lv_offset=(u(-10, 10), u(-10, 10)),  # the paper cropped around the heart
        body_offset=(u(-35, -15), u(22, 40)),  # body centre: left of and below the LV
        body_axes=(u(170, 210), u(112, 138)),  # wider than the 288 mm field of view
        fat_mm=u(6, 22),
        muscle_mm=u(10, 22),
        # (x, y offset from the body centre, semi-axes, angle) or no liver in this slab.
        liver=(u(-70, -45), u(20, 45), u(75, 100), u(50, 70), u(-0.4, 0.2)) if rng.random() < 0.6 else None,
        spine_offset=(u(-8, 8), u(-38, -28)),  # from the posterior inner body wall
        spine_radius=u(14, 18),
        aorta_offset=(u(16, 26), u(-28, -20)),  # from the vertebra: image right and anterior
        aorta_radius=u(10, 13),
        endo_mid_mm=u(20, 27),
        wall_mm=u(6, 11),  # end-diastolic myocardial thickness
        ejection_fraction=u(0.45, 0.70),
        endo_shape=_harmonics(rng, range(2, 5), 0.05),
        epi_shape=_harmonics(rng, range(2, 4), 0.03),
        trabeculae=_bumps(rng, int(rng.integers(10, 18)), 0.06),
        trabecular_mm=u(1.5, 3.0),
        papillary=(u(-1.0, -0.4), u(1.6, 2.2), u(4.0, 6.0)),  # two angles, radius in mm
        outflow=(u(-2.7, -2.2), u(0.35, 0.6)),  # gap angle (up-left) and its largest half-width
        # RV: direction, centre distance, tangential and radial semi-axes (x LV epi radius),
        # free-wall thickness (mm), RV ejection fraction.
        rv=(u(-2.9, -2.6), u(0.1, 0.35), u(1.2, 1.45), u(0.45, 0.6), u(2.5, 4.0), u(0.40, 0.60)),
        fat_margin=np.abs(_harmonics(rng, range(1, 6), 2.5)) + 0.5,
        groove_fat_mm=u(4, 8),
    )


def slice_positions(count: int) -> np.ndarray:
    """Relative long-axis positions of ``count`` slices, 0 = apex ... 1 = base."""
    if count < 1:
        raise UserError(f"slices per subject must be >= 1, got {count}")
    if count == 1:
        return np.array([0.55])
    return np.linspace(0.1, 0.95, count)


def _profile(u: float) -> float:
    """LV radius relative to mid-ventricle along the long axis (a half ellipsoid)."""
    return float(np.sqrt(max(0.05, 1.0 - ((1.0 - u) / 1.08) ** 2)) / np.sqrt(1.0 - (0.45 / 1.08) ** 2))


def _shape_area_factor(shape: np.ndarray) -> float:
    """Area of r = R (1 + shape(theta)) divided by R**2."""
    return float(0.5 * np.mean((1.0 + shape) ** 2) * 2.0 * np.pi)


def lv_radii(anat: Anatomy, position: float, phase: str) -> tuple[float, float]:
    """Mean endocardial and epicardial radii (mm) at a slice position and phase.

    End-systole shrinks the blood-pool area by (1 - EF) and keeps the myocardial area of
    the same slice, so the wall thickens.
    """
    if phase not in PHASES:
        raise UserError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    k_endo, k_epi = anat.area_factors
    endo_ed = anat.endo_mid_mm * _profile(position)
    epi_ed = endo_ed + anat.wall_mm * (0.8 + 0.2 * position)  # the apex is a little thinner
    if phase == "ED":
        return endo_ed, epi_ed
    myo_area = k_epi * epi_ed**2 - k_endo * endo_ed**2
    endo_es = endo_ed * np.sqrt(1.0 - anat.ejection_fraction)
    return float(endo_es), float(np.sqrt((k_endo * endo_es**2 + myo_area) / k_epi))


def slice_scene(anat: Anatomy, position: float, phase: str, slice_seed: int, label_seed: int) -> Scene:
    """The layers and label outlines of one slice of ``anat``.

    Args:
        anat: the subject.
        position: long-axis position, 0 = apex ... 1 = base.
        phase: ``"ED"`` or ``"ES"``.
        slice_seed: seed of the slice's own small structures (lung vessels), shared by phases.
        label_seed: seed of the annotator's outline displacement for this slice and phase.
    """
    endo, epi = lv_radii(anat, position, phase)
    endo_ed, epi_ed = lv_radii(anat, position, "ED")
    rot = anat.rotation
    c, s = float(np.cos(rot)), float(np.sin(rot))  # Python floats: the same values, faster scalar maths
    ox, oy = anat.lv_offset

    def place(x: float, y: float) -> tuple[float, float]:
        """Anatomical (LV-centred, unrotated) mm to image mm."""
        return ox + c * x - s * y, oy + s * x + c * y

    def ellipse(x: float, y: float, a: float, b: float, angle: float = 0.0) -> Ellipse:
        return Ellipse(*place(x, y), a, b, angle + rot)

    bx, by = anat.body_offset
    ba, bb = anat.body_axes
    inner = anat.fat_mm + anat.muscle_mm
    body = ellipse(bx, by, ba, bb)
    body_muscle = ellipse(bx, by, ba - anat.fat_mm, bb - anat.fat_mm)
    cavity = ellipse(bx, by, ba - inner, bb - inner)
    layers = [Layer(body, "fat"), Layer(body_muscle, "muscle"), Layer(cavity, "lung")]

    vessels = np.random.default_rng(slice_seed)
    count = int(vessels.integers(8, 18))
    # Per vessel x, y in [-0.9, 0.9) and radius in [1, 2.5), drawn in one call as uniform() draws
    # them in turn (low + (high - low) * random()).
    for fx, fy, fr in vessels.random((count, 3)).tolist():
        vx = bx + (-0.9 + (0.9 - -0.9) * fx) * (ba - inner)
        vy = by + (-0.9 + (0.9 - -0.9) * fy) * (bb - inner)
        r = 1.0 + (2.5 - 1.0) * fr
        layers.append(Layer(ellipse(vx, vy, r, r), "blood", clip=cavity))

    if anat.liver is not None:
        lx, ly, la, lb, langle = anat.liver
        extent = float(np.clip(1.25 - position, 0.3, 1.0))  # the liver dome shows most near the apex
        layers.append(Layer(ellipse(bx + lx, by + ly, la * extent, lb * extent, langle), "liver", clip=cavity))

    sx, sy = bx + anat.spine_offset[0], by + (bb - inner) + anat.spine_offset[1]
    mediastinum_len = 0.5 * float(np.hypot(sx, sy))
    angle_to_spine = float(np.arctan2(sy, sx))
    layers += [
        Layer(ellipse(sx / 2, sy / 2, mediastinum_len, 22.0, angle_to_spine), "muscle", clip=cavity),
        Layer(ellipse(sx, sy + 22.0, 55.0, 38.0), "muscle", clip=body_muscle),  # paraspinal muscles
        Layer(ellipse(sx, sy, anat.spine_radius, anat.spine_radius), "bone"),
        Layer(ellipse(sx, sy, anat.spine_radius - 2.0, anat.spine_radius - 2.0), "marrow"),
        Layer(
            ellipse(sx + anat.aorta_offset[0], sy + anat.aorta_offset[1], anat.aorta_radius, anat.aorta_radius), "blood"
        ),
    ]

    # Right ventricle: an ellipse wrapped around the LV, which later covers its inner part,
    # leaving a crescent. It is absent at the apex and empties by its own EF at ES.
    rv_dir, rv_dist, rv_a, rv_b, rv_wall, rv_ef = anat.rv
    rv_extent = float(np.clip((position - 0.05) / 0.5, 0.25, 1.0))
    rv_scale = epi_ed * rv_extent * (np.sqrt(1.0 - rv_ef) if phase == "ES" else 1.0)
    rv_centre = (epi + rv_dist * rv_b * rv_scale) * np.cos(rv_dir), (epi + rv_dist * rv_b * rv_scale) * np.sin(rv_dir)
    rv_tangential, rv_radial = rv_a * rv_scale, rv_b * rv_scale
    rv_angle = rv_dir + np.pi / 2  # the ellipse's a axis runs along the LV wall
    rv_cavity = ellipse(*rv_centre, rv_tangential, rv_radial, rv_angle)
    rv_outer = ellipse(*rv_centre, rv_tangential + rv_wall, rv_radial + rv_wall, rv_angle)
    fat_margin = anat.fat_margin * (0.6 if phase == "ES" else 1.0)
    lv_x, lv_y = place(0.0, 0.0)
    epi_table = epi * (1.0 + anat.epi_shape)
    layers += [
        Layer(Polar(lv_x, lv_y, epi_table + fat_margin, rot), "fat"),
        Layer(ellipse(*rv_centre, rv_tangential + rv_wall + 2.0, rv_radial + rv_wall + 2.0, rv_angle), "fat"),
    ]
    for side in (-1.0, 1.0):  # fat in the interventricular grooves, where the RV meets the LV
        gx, gy = epi * np.cos(rv_dir + side * 1.1), epi * np.sin(rv_dir + side * 1.1)
        layers.append(Layer(ellipse(gx, gy, anat.groove_fat_mm, anat.groove_fat_mm * 0.7), "fat"))
    layers += [
        Layer(rv_outer, "myocardium"),
        Layer(rv_cavity, "blood"),
        Layer(Polar(lv_x, lv_y, epi_table, rot), "myocardium"),
    ]

    # Basal slices open a gap in the ring: the LV outflow tract, blood up to the fat.
    gap_angle, gap_max = anat.outflow
    gap_half = gap_max * float(np.clip((position - 0.8) / 0.2, 0.0, 1.0))
    gap_sector = (float(wrap_angle(gap_angle + rot)), gap_half)
    if gap_half > 0:
        layers.append(Layer(Polar(lv_x, lv_y, epi_table + fat_margin + 1.0, rot, gap_sector), "blood"))

    # Blood fills the cavity inside the trabecular layer (myocardium-like signal, but
    # annotated as blood pool), which compacts and thickens relatively at end-systole.
    endo_table = endo * (1.0 + anat.endo_shape)
    trabecular_depth = anat.trabecular_mm * (endo / endo_ed) * (1.3 - 0.5 * position)
    layers.append(Layer(Polar(lv_x, lv_y, endo_table - trabecular_depth * anat.trabeculae, rot), "blood"))

    pm_taper = float(np.clip(min(position - 0.2, 0.9 - position) / 0.15, 0.0, 1.0))
    pm_radius = anat.papillary[2] * pm_taper
    if pm_radius > 0.5:
        for angle in anat.papillary[:2]:
            dist = max(endo - 0.9 * pm_radius, 0.0)
            layers.append(
                Layer(ellipse(dist * np.cos(angle), dist * np.sin(angle), pm_radius, pm_radius), "myocardium")
            )

    # Labels: smooth annotator displacement of both LV outlines (same for every style).
    noise = np.random.default_rng(label_seed)
    jitter = []
    for _ in range(2):
        table = _harmonics(noise, range(1, 9), 1.0)
        jitter.append(table * (ANNOTATOR_RMS_MM / max(float(np.sqrt(np.mean(table**2))), 1e-9)))
    labels: list[tuple[Ellipse | Polar, int]] = [
        (rv_cavity, RIGHT_VENTRICLE),
        (Polar(lv_x, lv_y, epi_table + jitter[1], rot), MYOCARDIUM),
        (Polar(lv_x, lv_y, endo_table + jitter[0], rot), BLOOD_POOL),
    ]
    if gap_half > 0:
        labels.append((Polar(lv_x, lv_y, epi_table + jitter[1], rot, gap_sector), BLOOD_POOL))
    return Scene(layers, labels)
