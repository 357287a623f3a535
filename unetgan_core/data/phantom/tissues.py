"""Tissue properties at 1.5 T and the steady-state bSSFP signal they give.

The values follow the MRXCAT cardiac phantom (Wissmann et al., JCMR 2014). They set the
*relative* brightness of tissues; absolute scale is arbitrary because every image is later
normalised per image.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tissue:
    """Relaxation properties of one tissue class.

    Args:
        pd: proton density relative to water (unitless, 0-1).
        t1_ms: longitudinal relaxation time in milliseconds at 1.5 T.
        t2_ms: transverse relaxation time in milliseconds at 1.5 T.
    """

    pd: float
    t1_ms: float
    t2_ms: float


# Order fixes the integer tissue ids used by the renderer; AIR has no signal.
TISSUE_NAMES = ("air", "blood", "myocardium", "fat", "muscle", "liver", "lung", "marrow", "bone")
TISSUE_ID = {name: i for i, name in enumerate(TISSUE_NAMES)}

TISSUES: dict[str, Tissue] = {
    "blood": Tissue(0.95, 1550.0, 250.0),
    "myocardium": Tissue(0.80, 980.0, 50.0),
    "fat": Tissue(0.90, 280.0, 85.0),
    "muscle": Tissue(0.75, 1000.0, 40.0),
    "liver": Tissue(0.80, 580.0, 45.0),
    "lung": Tissue(0.12, 1200.0, 30.0),
    "marrow": Tissue(0.70, 400.0, 70.0),
    "bone": Tissue(0.05, 300.0, 5.0),
}


def bssfp_signal(pd, t1_ms, t2_ms, flip_deg, te_ms):
    """Steady-state balanced SSFP magnitude (on-resonance, TR << T1, T2).

    S = PD sin(a) / ((T1/T2 + 1) - cos(a) (T1/T2 - 1)) * exp(-TE/T2)

    Args:
        pd: proton density (unitless), scalar or array.
        t1_ms: T1 in milliseconds.
        t2_ms: T2 in milliseconds.
        flip_deg: flip angle in degrees.
        te_ms: echo time in milliseconds.

    Returns:
        The signal in arbitrary units (fraction of the equilibrium magnetisation), broadcast
        over the inputs, float64.
    """
    a = np.deg2rad(np.asarray(flip_deg, dtype=np.float64))
    ratio = np.asarray(t1_ms, dtype=np.float64) / np.asarray(t2_ms, dtype=np.float64)
    steady = np.asarray(pd, dtype=np.float64) * np.sin(a) / ((ratio + 1.0) - np.cos(a) * (ratio - 1.0))
    return steady * np.exp(-np.asarray(te_ms, dtype=np.float64) / np.asarray(t2_ms, dtype=np.float64))


def tissue_signals(flip_deg: float, te_ms: float, blood_inflow: float) -> np.ndarray:
    """The signal of every tissue class for one image's sequence settings.

    Args:
        flip_deg: flip angle in degrees.
        te_ms: echo time in milliseconds.
        blood_inflow: factor on the blood signal for fresh, unsaturated spins flowing into the
            slice (1 = none); the vendor styles differ in it.

    Returns:
        float64 ``[len(TISSUE_NAMES)]`` indexed by ``TISSUE_ID``; air is 0.
    """
    out = np.zeros(len(TISSUE_NAMES), dtype=np.float64)
    # All tissues in one call: elementwise the same operations as one tissue at a time.
    out[_IDS] = bssfp_signal(*_PD_T1_T2, flip_deg, te_ms)
    out[TISSUE_ID["blood"]] *= blood_inflow
    return out


_IDS = np.array([TISSUE_ID[name] for name in TISSUES])
_PD_T1_T2 = np.array([(t.pd, t.t1_ms, t.t2_ms) for t in TISSUES.values()]).T
