"""Segments: value tiers and concentration, RFM scores and segments."""

from cvm.segments.rfm import RfmRules, RfmSegment, load_rfm_rules, rfm
from cvm.segments.tiers import gini, lorenz_curve, tier_summary, top_share, value_tiers

__all__ = [
    "RfmRules",
    "RfmSegment",
    "gini",
    "load_rfm_rules",
    "lorenz_curve",
    "rfm",
    "tier_summary",
    "top_share",
    "value_tiers",
]
