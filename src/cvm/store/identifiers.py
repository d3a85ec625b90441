"""Identifier normalisation: how identity resolution compares emails, phones and cards.

:func:`cvm.store.identity.resolve_identities` links customers-table rows and identity
records that share a normalised identifier; this module holds that normalisation, as
SQL so it runs where the data is, and :func:`normalize_identifiers` to apply it to
plain values (both names are re-exported from :mod:`cvm.store.identity`):

* email: trimmed and lower-cased (and ``name+tag@host`` → ``name@host`` when
  ``strip_email_tags`` is set); something that is not ``x@y.z`` is unusable;
* phone: E.164 — ``(0)`` and spaces, dots, dashes, slashes, brackets removed, a
  leading ``00`` becomes ``+``, a national number (leading trunk ``0``, or no prefix
  at all) gets ``+`` and the ``default_country_code``; anything that is then not
  ``+`` followed by 8 to 15 digits (the first not 0) is unusable;
* loyalty card: spaces and dashes removed, upper-cased;
* external id: trimmed, compared exactly.

Values that are missing (NULL, blank, one of the ``ignore_values`` markers) are left
out; unusable ones normalise to NULL (``None``), and resolution reports them instead of
using them.

References
----------
ITU-T Recommendation E.164 (2010). *The international public telecommunication
numbering plan*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa

from cvm.config import IdentitySettings
from cvm.errors import ValidationError

__all__ = ["IDENTIFIER_KINDS", "normalize_identifiers"]

#: Identifiers compared across records, in order of preference as a link's rule.
IDENTIFIER_KINDS: Final[tuple[str, ...]] = ("loyalty_card", "external_id", "email", "phone")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _normalise(settings: IdentitySettings, rows: str) -> str:
    """Return the SQL query normalising ``rows`` (which have ``kind`` and ``original``).

    Adds ``raw`` (``original`` trimmed) and ``value`` (the normalised identifier, NULL
    when unusable); rows without a value at all (NULL, blank, a missing marker) are
    left out.
    """
    cc = _quote(settings.default_country_code)
    markers = ", ".join(_quote(v.strip().lower()) for v in settings.ignore_values)
    kept = "raw <> ''" + (f" AND lower(raw) NOT IN ({markers})" if markers else "")
    blanks = "' ' || chr(9) || chr(10) || chr(13) || chr(160)"
    email = "lower(raw)"
    if settings.strip_email_tags:
        email = rf"regexp_replace({email}, '\+[^@]*@', '@')"
    # digits: the number without (0), spaces, dots, dashes, slashes and brackets
    e164 = (
        r"CASE WHEN NOT regexp_full_match(digits, '\+?[0-9]+') THEN NULL "
        "WHEN starts_with(digits, '+') THEN digits "
        "WHEN starts_with(digits, '00') THEN '+' || substr(digits, 3) "
        f"WHEN {cc} = '' THEN NULL "
        f"WHEN starts_with(digits, '0') THEN '+' || {cc} || substr(digits, 2) "
        f"ELSE '+' || {cc} || digits END"
    )
    return (
        "SELECT * EXCLUDE (digits, phone, email), CASE kind "
        r"WHEN 'email' THEN CASE WHEN regexp_full_match(email, '[^@\s]+@[^@\s]+\.[^@\s]+') "
        "THEN email END "
        "WHEN 'phone' THEN CASE WHEN length(phone) BETWEEN 9 AND 16 "
        "AND substr(phone, 2, 1) <> '0' THEN phone END "
        r"WHEN 'loyalty_card' THEN nullif(upper(regexp_replace(raw, '[\s\-]', '', 'g')), '') "
        "ELSE raw END AS value FROM ("
        f"  SELECT *, CASE WHEN kind = 'phone' THEN {e164} END AS phone, "
        f"  CASE WHEN kind = 'email' THEN {email} END AS email FROM ("
        r"    SELECT *, CASE WHEN kind = 'phone' THEN regexp_replace(replace(raw, '(0)', ''), "
        r"    '[\s().\-/]', '', 'g') END AS digits "
        f"    FROM (SELECT *, trim(original, {blanks}) AS raw "
        f"    FROM ({rows})) WHERE raw IS NOT NULL AND {kept}))"
    )


def normalize_identifiers(
    kind: str, values: Sequence[str | None], settings: IdentitySettings | None = None
) -> list[str | None]:
    """Normalise identifiers exactly as :func:`resolve_identities` compares them.

    Parameters
    ----------
    kind
        ``"email"``, ``"phone"``, ``"loyalty_card"`` or ``"external_id"``.
    values
        Raw values.
    settings
        The ``[identity]`` settings (country code, e-mail tags, missing markers).

    Returns
    -------
    list of str or None
        The normalised values; ``None`` where a value is missing or unusable.

    Raises
    ------
    ValidationError
        If ``kind`` is not an identifier kind.

    Examples
    --------
    >>> s = IdentitySettings(default_country_code="44")
    >>> normalize_identifiers("phone", ["020 7946 0018", "0044-20-7946-0018", "000000"], s)
    ['+442079460018', '+442079460018', None]
    """
    if kind not in IDENTIFIER_KINDS:
        raise ValidationError(
            "unknown identifier kind", value=kind, expected=", ".join(IDENTIFIER_KINDS)
        )
    settings = settings if settings is not None else IdentitySettings()
    con = duckdb.connect()
    try:
        con.register(
            "input",
            pa.table(
                {
                    "i": np.arange(len(values)),
                    "kind": pa.array([kind] * len(values), pa.string()),
                    "original": pa.array(list(values), pa.string()),
                }
            ),
        )
        rows = con.execute(
            f"SELECT i, value FROM ({_normalise(settings, 'SELECT * FROM input')})",
        ).fetchall()
    finally:
        con.close()
    out: list[str | None] = [None] * len(values)
    for i, value in rows:
        out[i] = value
    return out
