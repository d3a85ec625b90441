"""Satisfaction: NPS and CSAT, per customer and over the NPS window.

Part of ``cvm kpis``: :func:`cvm.segments.relationship.relationship_kpis` combines these
measures with loyalty, retention, contribution and the value × satisfaction grid (all
names here are re-exported from :mod:`cvm.segments.relationship`).
:func:`customer_satisfaction` takes Ibis tables and returns an Ibis expression, executed
only by the caller, so it runs on DuckDB, PySpark or any other Ibis backend;
:func:`satisfaction_summary` executes one small aggregate and returns a dataclass with
``to_dict()``. Everything is computed as of a date: only answers on or before ``as_of``
count.

Definitions (in full in ``docs/kpis.md``)
-----------------------------------------
NPS category
    Of the 0–10 "would you recommend us" answer: promoter 9–10, passive 7–8,
    detractor 0–6 (fractional answers cut at ≥ 9 and ≥ 7).
Net Promoter Score
    % promoters − % detractors (Reichheld 2003). The headline counts each customer's
    latest answer in the NPS window (``nps_window_months`` up to ``as_of``; 0 = all
    history), so every customer counts once; the response-level NPS is reported
    beside it. Ties at a customer's latest time count as the lower answer. The 95 %
    interval is the adjusted Wald one (Rocks 2016, see :func:`nps_score`).
CSAT
    The 1–5 answers of surveys and interactions together: mean and share satisfied
    (4–5) over the NPS window; per customer over all answers up to ``as_of``.

References
----------
Reichheld, F. F. (2003). "The one number you need to grow". Harvard Business Review
81(12): 46–54.
Rocks, B. (2016). "Interval estimation for the 'Net Promoter Score'". The American
Statistician 70(4): 365–372.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Final

import ibis

from cvm.segments.cohorts import _plain, _require, _rows, months_before

__all__ = [
    "NPS_CATEGORIES",
    "NpsScore",
    "SatisfactionSummary",
    "customer_satisfaction",
    "nps_score",
    "satisfaction_summary",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

#: The three NPS categories, best first.
NPS_CATEGORIES: Final[tuple[str, str, str]] = ("promoter", "passive", "detractor")

_SURVEY_COLUMNS: Final[dict[str, str]] = {
    "customer_id": "string",
    "ts": "timestamp",
    "nps": "float64",
    "csat": "float64",
}


def _window(table: Table, *, as_of: dt.date, since: dt.date | None = None) -> Table:
    """Rows with ``since < date(ts) <= as_of`` (``since`` ``None``: no lower bound)."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    table = table.filter(table.ts < ibis.timestamp(end))
    if since is not None:
        start = dt.datetime.combine(since + dt.timedelta(days=1), dt.time())
        table = table.filter(table.ts >= ibis.timestamp(start))
    return table


def _category(score: Any) -> Any:
    return ibis.cases(
        (score >= 9, NPS_CATEGORIES[0]), (score >= 7, NPS_CATEGORIES[1]), else_=NPS_CATEGORIES[2]
    )


def _latest_answers(surveys: Table) -> Table:
    """Return each customer's latest NPS answer, its category and date."""
    answered = surveys.filter(surveys.nps.notnull())
    latest = answered.group_by("customer_id").aggregate(ts=answered.ts.max())
    at_latest = answered.semi_join(latest, ["customer_id", "ts"])
    per_customer = at_latest.group_by("customer_id").aggregate(
        nps=at_latest.nps.cast("float64").min(), nps_date=at_latest.ts.max().date()
    )
    return per_customer.mutate(nps_category=_category(per_customer.nps))


def _csat_answers(surveys: Table, interactions: Table | None) -> Table:
    """CSAT answers of surveys and interactions: ``customer_id``, ``csat``."""
    # both sides nullable: a unified table's ids are computed, a stored one's are NOT NULL
    answers = surveys.filter(surveys.csat.notnull()).select(
        customer_id=surveys.customer_id.cast("string"), csat=surveys.csat.cast("float64")
    )
    if interactions is not None and "csat" in interactions.columns:
        more = interactions.filter(interactions.csat.notnull()).select(
            customer_id=interactions.customer_id.cast("string"),
            csat=interactions.csat.cast("float64"),
        )
        answers = answers.union(more, distinct=False)
    return answers


def _check_inputs(surveys: Table, interactions: Table | None) -> None:
    _require(surveys, _SURVEY_COLUMNS, "surveys")
    if interactions is not None:
        _require(interactions, ("customer_id", "ts"), "interactions")


def customer_satisfaction(
    surveys: Table, interactions: Table | None = None, *, as_of: dt.date
) -> Table:
    """Each customer's satisfaction as of ``as_of``.

    Parameters
    ----------
    surveys
        Canonical surveys (``customer_id``, ``ts``, ``nps`` 0–10, ``csat`` 1–5).
    interactions
        Optional canonical interactions; their ``csat`` answers join the survey ones.
    as_of
        Last day counted (inclusive).

    Returns
    -------
    Table
        One row per customer with a survey or a CSAT answer: ``customer_id``, ``nps``
        (latest answer, null if none), ``nps_category`` (promoter, passive,
        detractor; null if none), ``nps_date`` (date of that answer), ``surveys``
        (survey rows), ``last_survey`` (date), ``csat`` (mean of all CSAT answers)
        and ``csat_responses``.

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    _check_inputs(surveys, interactions)
    s = _window(surveys, as_of=as_of)
    answers = _csat_answers(s, None if interactions is None else _window(interactions, as_of=as_of))
    counts = s.group_by("customer_id").aggregate(surveys=s.count(), last_survey=s.ts.max().date())
    csat = answers.group_by("customer_id").aggregate(
        csat=answers.csat.mean(), csat_responses=answers.count()
    )
    keys = counts.select(customer_id=counts.customer_id.cast("string")).union(
        csat.select("customer_id"), distinct=True
    )
    joined = (
        keys.left_join(counts, "customer_id")
        .left_join(_latest_answers(s), "customer_id")
        .left_join(csat, "customer_id")
    )
    return joined.select(
        "customer_id",
        "nps",
        "nps_category",
        "nps_date",
        surveys=joined.surveys.fill_null(0),
        last_survey=joined.last_survey,
        csat=joined.csat,
        csat_responses=joined.csat_responses.fill_null(0),
    )


@dataclass(frozen=True)
class NpsScore:
    """A Net Promoter Score with its counts and 95 % interval (points, −100…100).

    ``nps``, ``se``, ``ci_low`` and ``ci_high`` are ``None`` when ``n`` is 0.
    """

    basis: str
    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


def nps_score(
    promoters: int,
    passives: int,
    detractors: int,
    *,
    basis: str = "customers",
    confidence: float = 0.95,
) -> NpsScore:
    """NPS from category counts, with its standard error and adjusted-Wald interval.

    Parameters
    ----------
    promoters, passives, detractors
        Counts of answers 9–10, 7–8 and 0–6.
    basis
        What was counted: ``"customers"`` (latest answer each) or ``"responses"``.
    confidence
        Confidence level of the interval.

    Returns
    -------
    NpsScore
        ``nps = 100 (p − d)`` with ``p``, ``d`` the promoter and detractor shares;
        ``se = 100 √((p + d − (p − d)²) / n)``, the standard error of a difference
        of two proportions of one trinomial sample; the interval is the adjusted
        Wald one of Rocks (2016): the same formula on ``(promoters + 3/4)``,
        ``(detractors + 3/4)`` out of ``n + 3``, centred on the adjusted NPS and
        clipped to [−100, 100].

    References
    ----------
    Rocks, B. (2016). "Interval estimation for the 'Net Promoter Score'". The
    American Statistician 70(4): 365–372.
    """
    if min(promoters, passives, detractors) < 0:
        raise ValueError("NPS counts must not be negative")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    n = promoters + passives + detractors
    counts = {"promoters": promoters, "passives": passives, "detractors": detractors}
    if n == 0:
        return NpsScore(
            basis, 0, **counts, nps=None, se=None, ci_low=None, ci_high=None, confidence=confidence
        )
    p, d = promoters / n, detractors / n
    se = math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
    n_adj = n + 3
    p_adj, d_adj = (promoters + 0.75) / n_adj, (detractors + 0.75) / n_adj
    centre = p_adj - d_adj
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(
        (p_adj + d_adj - centre**2) / n_adj
    )
    return NpsScore(
        basis,
        n,
        **counts,
        nps=100.0 * (p - d),
        se=100.0 * se,
        ci_low=max(-100.0, 100.0 * (centre - half)),
        ci_high=min(100.0, 100.0 * (centre + half)),
        confidence=confidence,
    )


@dataclass(frozen=True)
class SatisfactionSummary:
    """Satisfaction over the NPS window ``(since, as_of]`` (``since`` ``None``: all).

    ``nps`` is the headline (customers' latest answers); ``nps_responses`` counts
    every answer in the window.
    """

    as_of: dt.date
    since: dt.date | None
    surveys: int
    nps: NpsScore
    nps_responses: NpsScore
    csat_mean: float | None
    csat_satisfied_share: float | None
    csat_responses: int

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


def satisfaction_summary(
    surveys: Table,
    interactions: Table | None = None,
    *,
    as_of: dt.date,
    window_months: int = 12,
    confidence: float = 0.95,
) -> SatisfactionSummary:
    """NPS (per customer and per response), CSAT and counts over the NPS window.

    Parameters
    ----------
    surveys
        Canonical surveys (``customer_id``, ``ts``, ``nps``, ``csat``).
    interactions
        Optional canonical interactions (their ``csat`` counts with the surveys').
    as_of
        Last day counted (inclusive).
    window_months
        Months up to ``as_of`` counted; 0 counts all history.
    confidence
        Confidence level of the NPS intervals.

    Returns
    -------
    SatisfactionSummary
        The figures (definitions in the module docstring).

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    _check_inputs(surveys, interactions)
    if window_months < 0:
        raise ValueError(f"window_months must not be negative, got {window_months}")
    since = months_before(as_of, window_months) if window_months else None
    s = _window(surveys, as_of=as_of, since=since)
    latest = _latest_answers(s)
    per_customer = latest.aggregate(
        c_promoters=latest.count(where=latest.nps_category == NPS_CATEGORIES[0]),
        c_passives=latest.count(where=latest.nps_category == NPS_CATEGORIES[1]),
        c_detractors=latest.count(where=latest.nps_category == NPS_CATEGORIES[2]),
    )
    per_response = s.aggregate(
        surveys=s.count(),
        r_promoters=s.count(where=s.nps >= 9),
        r_passives=s.count(where=(s.nps >= 7) & (s.nps < 9)),
        r_detractors=s.count(where=s.nps < 7),
    )
    answers = _csat_answers(
        s, None if interactions is None else _window(interactions, as_of=as_of, since=since)
    )
    csat = answers.aggregate(
        csat_mean=answers.csat.mean(),
        csat_satisfied=answers.count(where=answers.csat >= 4),
        csat_responses=answers.count(),
    )
    (row,) = _rows(per_customer.cross_join(per_response).cross_join(csat))
    n_csat = int(row["csat_responses"])

    def score(prefix: str, basis: str) -> NpsScore:
        return nps_score(
            int(row[f"{prefix}_promoters"]),
            int(row[f"{prefix}_passives"]),
            int(row[f"{prefix}_detractors"]),
            basis=basis,
            confidence=confidence,
        )

    return SatisfactionSummary(
        as_of=as_of,
        since=since,
        surveys=int(row["surveys"]),
        nps=score("c", "customers"),
        nps_responses=score("r", "responses"),
        csat_mean=row["csat_mean"] if n_csat else None,
        csat_satisfied_share=int(row["csat_satisfied"]) / n_csat if n_csat else None,
        csat_responses=n_csat,
    )
