"""Phone numbers: national numbering plans, formats, and shared switchboard phones."""

from __future__ import annotations

import re
from typing import Final

import numpy as np
import pandas as pd

from cvm.data._profile import IntArray

_SWITCHBOARD_GROUPS: Final = (2, 3, 4)  # customers sharing one switchboard phone
# Country → (calling code, leading digits of the national number, national format with
# '#' for the number's digits). Every number is the prefix and 7 random digits. Countries
# without a national format always get E.164; unknown countries use the home country's plan.
_PHONE_PLANS: Final[dict[str, tuple[str, str, str | None]]] = {
    "United Kingdom": ("44", "770", "0#### ######"),
    "Channel Islands": ("44", "779", "0#### ######"),
    "EIRE": ("353", "87", "0## ### ####"),
    "Germany": ("49", "1512", "0#### #######"),
    "France": ("33", "61", "0# ## ## ## ##"),
    "Spain": ("34", "61", "### ### ###"),
    "Netherlands": ("31", "61", "0#-########"),
    "Belgium": ("32", "47", "0### ## ## ##"),
    "Switzerland": ("41", "79", "0## ### ## ##"),
    "Portugal": ("351", "91", "### ### ###"),
    "Australia": ("61", "41", "0### ### ###"),
    "Norway": ("47", "4", "### ## ###"),
    "Italy": ("39", "333", "### ### ####"),
    "Finland": ("358", "40", "0## ### ####"),
    "Sweden": ("46", "70", "0##-### ## ##"),
    "Austria": ("43", "664", "0### #######"),
    "Denmark": ("45", "2", "## ## ## ##"),
    "Japan": ("81", "901", "0##-####-####"),
    "Poland": ("48", "50", "### ### ###"),
    "USA": ("1", "212", "(###) ###-####"),
    "Canada": ("1", "416", "(###) ###-####"),
    "Israel": ("972", "52", "0##-###-####"),
    "Singapore": ("65", "9", "#### ####"),
    "Cyprus": ("357", "9", "## ######"),
    "Greece": ("30", "69", None),
    "Iceland": ("354", "8", None),
    "Malta": ("356", "9", None),
    "United Arab Emirates": ("971", "50", None),
    "RSA": ("27", "82", None),
    "Lebanon": ("961", "3", None),
    "Lithuania": ("370", "6", None),
    "Brazil": ("55", "119", None),
    "Czech Republic": ("420", "60", None),
    "Bahrain": ("973", "3", None),
    "Saudi Arabia": ("966", "5", None),
    "Hong Kong": ("852", "9", None),
}


def _fill(template: str, digits: pd.Series) -> pd.Series:
    """Write ``digits`` into ``template``, whose ``#`` stand for the digits in order."""
    out = pd.Series("", index=digits.index, dtype=str)
    pos = 0
    for part in re.split(r"(#+)", template):
        if part.startswith("#"):
            out = out + digits.str.slice(pos, pos + len(part))
            pos += len(part)
        elif part:
            out = out + part
    return out


def _phone_formats(plan: pd.Series, numbers: IntArray) -> dict[str, pd.Series]:
    """Each customer's number as ``e164``, ``spaced`` (``+44 7700 123456``) and ``national``.

    ``national`` is missing where the country has no national format.
    """
    e164 = pd.Series("", index=plan.index, dtype=str)
    spaced = e164.copy()
    national = pd.Series(pd.NA, index=plan.index, dtype=str)
    for country in plan.unique():
        code, prefix, template = _PHONE_PLANS[country]
        mask = (plan == country).to_numpy()
        nsn = prefix + pd.Series(numbers[mask], index=plan.index[mask]).astype(str).str.zfill(7)
        e164[mask] = "+" + code + nsn
        spaced[mask] = "+" + code + " " + nsn.str.slice(0, 4) + " " + nsn.str.slice(4)
        if template is not None:
            national[mask] = _fill(template, nsn)
    return {"e164": e164, "spaced": spaced, "national": national}


def _switchboard_groups(rng: np.random.Generator, plan: pd.Series) -> list[IntArray]:
    """Unrelated customers of the most common country who share one switchboard phone."""
    if plan.empty:
        return []
    candidates = np.flatnonzero((plan == plan.mode().iloc[0]).to_numpy())
    needed = sum(_SWITCHBOARD_GROUPS)
    if candidates.size < 10 * needed:
        return []
    chosen = rng.choice(candidates, needed, replace=False)
    return np.split(chosen, np.cumsum(_SWITCHBOARD_GROUPS)[:-1])
