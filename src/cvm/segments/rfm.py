"""RFM: recency, frequency and monetary scores 1–5 and the named segments.

Each customer gets three scores by quintile (Hughes 1994): customers are sorted on
one measure and cut into five groups of (as nearly as possible) equal size, score 1
for the lowest fifth and 5 for the highest.

- **R** from the days since the last purchase at ``as_of``: the fewer days, the
  higher the score;
- **F** from the number of purchase occasions (same-day purchases count once);
- **M** from the net revenue of the whole history, or from the mean spend per
  occasion (``[segments.rfm] monetary = "mean_spend"``).

The cuts are those of SQL ``ntile(5)`` over the customers in order (groups of
⌊n/5⌋ or ⌈n/5⌉ customers, the larger ones first). Ties: with ``ties = "shared"`` (the
default) customers with equal values get equal scores — the score of the first of
them in that order — so two one-time buyers always share an F score, and a large
tied group (often most customers have one purchase) makes some scores rarer or empty;
with ``ties = "split"`` the groups are exactly ``ntile``'s, equal values ordered by
``customer_id``, so customers with equal values can get different scores.
The code is the three scores as text (``"545"``: R 5, F 4, M 5).

Named segments come from rules kept as data (``rfm_segments.toml`` in this package,
or a user's file): each segment is a set of inclusive ranges on R, F, M and FM =
(F + M) / 2, and the rules must put each of the 125 codes in exactly one segment —
:func:`load_rfm_rules` checks this and names any code that falls in no segment or in
more than one. The built-in rules are the R × FM grid analysts use (Champions, Loyal,
Potential Loyalist, New, Promising, Need Attention, About to Sleep, At Risk, Can't
Lose Them, Hibernating, Lost); docs/segments.md draws it.

References
----------
Hughes, A. M. (1994). *Strategic Database Marketing*. Chicago: Probus.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: using iso-value
curves for customer base analysis. *Journal of Marketing Research* 42(4), 415–430.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import itertools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import numpy as np

from cvm.config import RfmSettings
from cvm.errors import ConfigError, SchemaError
from cvm.segments._cuts import FloatArray, fetch, ranked_through

__all__ = ["CODES", "RfmRules", "RfmSegment", "load_rfm_rules", "rfm"]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

#: Every RFM code, "111" … "555".
CODES: tuple[str, ...] = tuple(f"{r}{f}{m}" for r, f, m in itertools.product(range(1, 6), repeat=3))

_RANGES = ("r", "f", "m", "fm")
_KEYS = {"name", "description", *_RANGES}
_BUILTIN = "rfm_segments.toml"


@dataclass(frozen=True)
class RfmSegment:
    """One named segment: inclusive ranges of the R, F, M and FM = (F + M)/2 scores."""

    name: str
    description: str = ""
    r: tuple[float, float] = (1.0, 5.0)
    f: tuple[float, float] = (1.0, 5.0)
    m: tuple[float, float] = (1.0, 5.0)
    fm: tuple[float, float] = (1.0, 5.0)

    def contains(self, r: int, f: int, m: int) -> bool:
        """Return whether the scores fall in this segment."""
        fm = (f + m) / 2
        return all(
            low <= score <= high
            for score, (low, high) in ((r, self.r), (f, self.f), (m, self.m), (fm, self.fm))
        )

    def condition(self, r: Any, f: Any, m: Any) -> Any:
        """Return the segment's test as an Ibis boolean on integer score columns."""
        # FM is compared as F + M against doubled bounds, all in integers; a range
        # spanning the whole scale needs no test.
        tests = []
        for column, (low, high), scale in (
            (r, self.r, (1, 5)),
            (f, self.f, (1, 5)),
            (m, self.m, (1, 5)),
            (f + m, (2 * self.fm[0], 2 * self.fm[1]), (2, 10)),
        ):
            lo, hi = max(math.ceil(low), scale[0]), min(math.floor(high), scale[1])
            if lo == hi:
                tests.append(column == lo)
            elif (lo, hi) != scale:
                tests.append(column.between(lo, hi))
        result: Any = ibis.literal(True)
        for i, test in enumerate(tests):
            result = test if i == 0 else result & test
        return result


@dataclass(frozen=True)
class RfmRules:
    """A validated set of RFM segments that partitions the 125 codes."""

    segments: tuple[RfmSegment, ...]
    source: str = _BUILTIN

    def segment_of(self, code: str) -> str:
        """Return the name of the segment of an RFM code such as ``"545"``.

        Raises
        ------
        ValueError
            If ``code`` is not three digits 1–5.
        """
        if code not in CODES:
            raise ValueError(f"an RFM code is three digits 1–5, got {code!r}")
        r, f, m = (int(c) for c in code)
        return next(s.name for s in self.segments if s.contains(r, f, m))

    def mapping(self) -> dict[str, str]:
        """Return every code's segment name, ``{"111": "Lost", …}``."""
        return {code: self.segment_of(code) for code in CODES}


def _range(value: Any, *, key: str, path: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(
            "expected a range [low, high] of two numbers", path=path, key=key, value=value
        )
    low, high = float(value[0]), float(value[1])
    if not 1.0 <= low <= high <= 5.0:
        raise ConfigError("expected 1 ≤ low ≤ high ≤ 5", path=path, key=key, value=value)
    return low, high


def _codes(codes: list[str]) -> str:
    shown = ", ".join(codes[:20])
    return shown + (f", … ({len(codes)} codes)" if len(codes) > 20 else "")


def _parse(data: dict[str, Any], source: str) -> RfmRules:
    unknown = sorted(set(data) - {"segment"})
    if unknown:
        raise ConfigError("unknown key", path=source, key=unknown[0])
    items = data.get("segment")
    if not isinstance(items, list) or not items:
        raise ConfigError(
            "no segments: expected one [[segment]] table per segment", path=source, key="segment"
        )
    segments: list[RfmSegment] = []
    for index, item in enumerate(items, start=1):
        where = f"segment[{index}]"
        if not isinstance(item, dict):
            raise ConfigError("expected a table", path=source, key=where)
        extra = sorted(set(item) - _KEYS)
        if extra:
            raise ConfigError(
                f"unknown key (expected {', '.join(sorted(_KEYS))})",
                path=source,
                key=f"{where}.{extra[0]}",
            )
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("a segment needs a name", path=source, key=f"{where}.name")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(
                "expected text", path=source, key=f"{where}.description", value=description
            )
        ranges = {
            key: _range(item[key], key=f"{where}.{key}", path=source)
            for key in _RANGES
            if key in item
        }
        segments.append(RfmSegment(name=name, description=description, **ranges))
    names = [s.name for s in segments]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"segment names must be unique: {', '.join(map(repr, duplicates))}", path=source
        )
    gaps: list[str] = []
    overlaps: list[str] = []
    for code in CODES:
        r, f, m = (int(c) for c in code)
        hits = [s.name for s in segments if s.contains(r, f, m)]
        if not hits:
            gaps.append(code)
        elif len(hits) > 1:
            overlaps.append(f"{code} ({' and '.join(map(repr, hits))})")
    problems = []
    if gaps:
        problems.append(f"codes in no segment: {_codes(gaps)}")
    if overlaps:
        problems.append(f"codes in more than one segment: {_codes(overlaps)}")
    if problems:
        raise ConfigError(
            "the RFM rules must put each of the 125 codes in exactly one segment; "
            + "; ".join(problems),
            path=source,
        )
    return RfmRules(segments=tuple(segments), source=source)


def load_rfm_rules(path: str | Path | None = None) -> RfmRules:
    """Load and validate RFM segment rules.

    Parameters
    ----------
    path
        A TOML file of ``[[segment]]`` tables (see ``rfm_segments.toml`` in this
        package, the built-in rules, for the format). ``None`` loads the built-in rules.
        :meth:`cvm.config.RfmSettings.rules_path` resolves the configured file.

    Returns
    -------
    RfmRules
        Rules that put every code 111 … 555 in exactly one segment.

    Raises
    ------
    ConfigError
        If the file cannot be read or parsed, a segment is malformed (unknown key,
        missing name, a range outside 1–5), two segments share a name, or a code falls
        in no segment or in more than one (the message lists the codes).
    """
    if path is None:
        resource = importlib.resources.files("cvm.segments").joinpath(_BUILTIN)
        text = resource.read_text(encoding="utf-8")
        source = _BUILTIN
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError("RFM rules file not found", path=source) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read RFM rules file: {exc}", path=source) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=source) from exc
    return _parse(data, source)


def _ntile_ends(n: int, groups: int = 5) -> list[int]:
    """Return the last 0-based position of each group but the last, as SQL ``ntile``.

    ``ntile(5)`` over n rows makes groups of q = n // 5 rows, the first n % 5 of
    them one row larger.
    """
    q, rem = divmod(n, groups)
    ends = [(g + 1) * q + min(g + 1, rem) - 1 for g in range(groups - 1)]
    return [end for end in ends if end >= 0]


def _score(table: Table, key: str, values: FloatArray, ties: str) -> Any:
    """Score 1–5 of a key column by quintile (higher key, higher score)."""
    ends = _ntile_ends(values.size)
    if not ends:
        return ibis.literal(1, type="int64")
    if ties == "shared":
        kth = np.partition(values, ends)
        within = [table[key] <= float(kth[end]) for end in ends]
    else:
        within = ranked_through(table, key, values, ends, descending=False)
    # A customer ranked at or before the g-th cut scores g + 1; the rest score 5.
    branches = [(condition, g + 1) for g, condition in enumerate(within)]
    return ibis.cases(*branches, else_=len(ends) + 1).cast("int64")


def rfm(
    customers: Table,
    settings: RfmSettings | None = None,
    *,
    as_of: dt.date,
    rules: RfmRules | None = None,
) -> Table:
    """Add RFM scores, code and segment to a per-customer table.

    The quintile cuts are found first — the three measures are fetched once and cut
    with numpy (with ``ties = "split"``, plus a ranking of each tied group that
    straddles a cut, which is slower when most customers tie) — and the result is a
    lazy expression comparing each customer with the cuts, without window functions.
    Pass a materialised table (e.g. a stored snapshot), since it is read twice.

    Parameters
    ----------
    customers
        One row per customer: ``customer_id``, ``last_purchase`` (date),
        ``occasions`` (purchase occasions) and ``revenue`` (net), e.g. a customer
        snapshot. NULL occasions or revenue count as 0; a NULL last purchase as the
        longest time ago.
    settings
        Monetary measure, tie handling and rules file; defaults to
        :class:`~cvm.config.RfmSettings`.
    as_of
        The date recency is measured at (the run's ``as_of``).
    rules
        Segment rules; ``None`` loads ``settings.rules`` (relative to the current
        folder — use :meth:`~cvm.config.RfmSettings.rules_path` to resolve it against
        the config file) or the built-in rules.

    Returns
    -------
    Table
        ``customers`` with ``r_score``, ``f_score``, ``m_score`` (int64, 1–5),
        ``rfm_code`` (e.g. ``"545"``) and ``rfm_segment``.

    Raises
    ------
    SchemaError
        If a needed column is missing.
    ConfigError
        If the rules file is invalid.
    """
    settings = settings or RfmSettings()
    missing = [
        c
        for c in ("customer_id", "last_purchase", "occasions", "revenue")
        if c not in customers.columns
    ]
    if missing:
        raise SchemaError(
            f"RFM needs the column(s) {', '.join(map(repr, missing))}", column=missing[0]
        )
    if rules is None:
        rules = load_rfm_rules(settings.rules or None)
    t = customers
    days = ibis.date(as_of).delta(t.last_purchase.cast("date"), unit="day")
    occasions = t.occasions.cast("float64").fill_null(0.0)
    revenue = t.revenue.cast("float64").fill_null(0.0)
    if settings.monetary == "mean_spend":
        monetary = (occasions > 0).ifelse(revenue / occasions, 0.0)
    else:
        monetary = revenue
    # Keys ordered so that a higher key earns a higher score.
    # A customer without a last purchase counts as the longest ago.
    recent = (-days.cast("float64")).fill_null(-1e12)
    keyed = t.mutate(_cvm_r=recent, _cvm_f=occasions, _cvm_m=monetary)
    fetched = fetch(keyed, "_cvm_r", "_cvm_f", "_cvm_m")
    scored = keyed.mutate(
        **{name: _score(keyed, name, values, settings.ties) for name, values in fetched.items()}
    )
    r = scored._cvm_r.cast("int64")
    f = scored._cvm_f.cast("int64")
    m = scored._cvm_m.cast("int64")
    segment = ibis.cases(*((s.condition(r, f, m), s.name) for s in rules.segments))
    return scored.select(
        *customers.columns,
        r_score=r,
        f_score=f,
        m_score=m,
        rfm_code=(100 * r + 10 * f + m).cast("string"),
        rfm_segment=segment,
    )
