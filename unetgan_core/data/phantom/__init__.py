"""Synthetic multi-vendor short-axis bSSFP cine phantom (issue 2).

The vendor styles are synthetic and only inspired by the vendors in Yan et al. (MICCAI 2019);
they are not measured properties of real scanners.
"""

from unetgan_core.data.phantom.render import render_anatomy, render_subjects
from unetgan_core.data.phantom.styles import STYLES, VendorStyle, style_from_dict

__all__ = ["STYLES", "VendorStyle", "render_anatomy", "render_subjects", "style_from_dict"]
