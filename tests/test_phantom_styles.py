"""Vendor styles as data, their validation, and the bSSFP tissue signal."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.data.phantom.styles import STYLE_RANGES, STYLES, style_from_dict
from unetgan_core.data.phantom.tissues import TISSUE_ID, TISSUES, bssfp_signal, tissue_signals
from unetgan_core.errors import UserError


def test_builtin_styles_are_registered():
    assert {"philips", "siemens", "ge", "canon"} <= set(STYLES.names())
    assert STYLES.get("siemens").flip_angle_deg == (35.0, 45.0)
    assert STYLES.get("philips").window == "hamming"


def test_unknown_style_lists_known_ones():
    with pytest.raises(UserError, match="philips"):
        STYLES.get("toshiba")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(sorted(STYLE_RANGES)))
def test_samples_lie_within_ranges(seed, name):
    style = STYLES.get(name)
    sample = style.sample(np.random.default_rng(seed))
    for key, (lo, hi) in ((k, getattr(style, k)) for k in sample if k not in ("window", "bits")):
        assert lo <= sample[key] <= hi
    assert sample["window"] == style.window


def test_style_from_dict_with_base_overrides_only_given_keys():
    style = style_from_dict("noisy", {"base": "philips", "snr": [5, 8], "window": "none"})
    assert style.snr == (5.0, 8.0)
    assert style.window == "none"
    assert style.gamma == STYLES.get("philips").gamma


def test_style_from_dict_accepts_a_single_number_as_fixed_value():
    assert style_from_dict("fixed", {"base": "ge", "gamma": 1}).gamma == (1.0, 1.0)


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"base": "philips", "flip": [1, 2]}, "unknown key 'flip'; allowed: flip_angle_deg"),
        ({"base": "philips", "snr": [9, 3]}, "snr .* lo > hi"),
        ({"base": "philips", "coil_correction": [0.5, 1.5]}, "coil_correction .* outside 0..1"),
        ({"base": "philips", "gamma": "big"}, "gamma = 'big' is not a number or"),
        ({"base": "philips", "te_ms": [1, 2, 3]}, "te_ms"),
        ({"base": "philips", "window": "kaiser"}, "window = 'kaiser'; allowed: none, hamming, gaussian"),
        ({"base": "philips", "bits": 12.5}, "bits = 12.5"),
        ({"base": "philips", "snr": [True, 3]}, "snr"),
        ({"base": "toshiba"}, "base = 'toshiba' is not a built-in style"),
        ({"snr": [1, 2]}, "missing key 'flip_angle_deg'"),
    ],
)
def test_style_from_dict_rejects_bad_input_naming_the_key(mapping, message):
    with pytest.raises(UserError, match=message):
        style_from_dict("bad", mapping)


def test_bssfp_signal_matches_hand_computed_values():
    # 90 degrees, T1 = T2: PD * 1 / ((1 + 1) - 0 * 0) = PD / 2, then T2 decay over TE.
    assert bssfp_signal(0.8, 100.0, 100.0, 90.0, 0.0) == pytest.approx(0.4)
    assert bssfp_signal(0.8, 100.0, 100.0, 90.0, 100.0) == pytest.approx(0.4 / np.e)
    # Blood at 60 degrees: 0.95 sin60 / (7.2 - 0.5 * 5.2).
    assert bssfp_signal(0.95, 1550.0, 250.0, 60.0, 0.0) == pytest.approx(0.95 * np.sin(np.pi / 3) / 4.6)


def test_tissue_contrast_is_bssfp_like():
    s = tissue_signals(60.0, 1.5, 1.0)
    assert s[TISSUE_ID["air"]] == 0.0
    assert s[TISSUE_ID["fat"]] > s[TISSUE_ID["blood"]] > s[TISSUE_ID["myocardium"]] > s[TISSUE_ID["lung"]]
    assert tissue_signals(60.0, 1.5, 1.3)[TISSUE_ID["blood"]] == pytest.approx(1.3 * s[TISSUE_ID["blood"]])


@pytest.mark.parametrize("flip, te", [(35.0, 1.1), (61.3, 1.57), (78.0, 2.4), (179.0, 19.9)])
def test_all_tissues_at_once_equal_one_tissue_at_a_time(flip, te):
    s = tissue_signals(flip, te, 1.2)
    for name, t in TISSUES.items():
        alone = bssfp_signal(t.pd, t.t1_ms, t.t2_ms, flip, te) * (1.2 if name == "blood" else 1.0)
        assert s[TISSUE_ID[name]] == alone  # bit for bit: the phantom's images must not move


def test_blood_myocardium_contrast_of_style_means_is_ordered():
    def contrast(name):
        style = STYLES.get(name)
        mid = {k: float(np.mean(getattr(style, k))) for k in ("flip_angle_deg", "te_ms", "blood_inflow")}
        s = tissue_signals(*mid.values())
        return s[TISSUE_ID["blood"]] / s[TISSUE_ID["myocardium"]]

    # Before the transfer curve: Philips (source) brightest blood, Siemens the flattest.
    assert contrast("philips") > contrast("ge") > contrast("siemens")
