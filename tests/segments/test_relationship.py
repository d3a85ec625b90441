"""Relationship measures: constructed cases computed by hand, then the real data."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import ibis
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Store
from cvm.config import RelationshipSettings, settings_from_dict
from cvm.errors import ConfigError, DataError, SchemaError
from cvm.features import btyd_summary, customer_totals
from cvm.ingest import ingest_transactions
from cvm.segments.cohorts import (
    RetentionPeriod,
    cohort_retention,
    cohorts_from_matrix,
    default_periods,
    loyalty_summary,
    months_before,
    retention_rates,
)
from cvm.segments.relationship import (
    customer_satisfaction,
    high_value_detractors,
    nps_score,
    relationship_kpis,
    satisfaction_summary,
    tier_contribution,
    value_satisfaction_grid,
)

D = dt.date


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def transactions(rows: list[tuple[str, str, float]]) -> Any:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601")
    return ibis.memtable(frame)


def surveys_table(rows: list[tuple[str, str, float | None, float | None]]) -> Any:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "nps", "csat"])
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601")
    frame["nps"] = frame["nps"].astype("float64")
    frame["csat"] = frame["csat"].astype("float64")
    frame["comment"] = pd.Series([None] * len(frame), dtype="object")
    return ibis.memtable(
        frame,
        schema={
            "customer_id": "string",
            "ts": "timestamp",
            "nps": "float64",
            "csat": "float64",
            "comment": "string",
        },
    )


def interactions_table(rows: list[tuple[str, str, float | None]]) -> Any:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "csat"])
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601")
    frame["kind"] = "call"
    frame["csat"] = frame["csat"].astype("float64")
    return ibis.memtable(frame)


def rows(expr: Any, *keys: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = expr.to_pyarrow().to_pylist()
    return sorted(out, key=lambda r: tuple(r[k] for k in keys))


# -- NPS -------------------------------------------------------------------------------
def test_nps_of_a_known_mix_50_percent_promoters_20_percent_detractors_is_30() -> None:
    score = nps_score(50, 30, 20)
    assert score.nps == pytest.approx(30.0)
    assert (score.n, score.promoters, score.passives, score.detractors) == (100, 50, 30, 20)
    # Var(p − d) = (p + d − (p − d)²) / n for one trinomial sample.
    assert score.se == pytest.approx(100 * math.sqrt((0.5 + 0.2 - 0.3**2) / 100))
    # Adjusted Wald (Rocks 2016): 50.75 promoters and 20.75 detractors out of 103.
    p, d = 50.75 / 103, 20.75 / 103
    half = 1.959963984540054 * math.sqrt((p + d - (p - d) ** 2) / 103)
    assert score.ci_low == pytest.approx(100 * (p - d - half))
    assert score.ci_high == pytest.approx(100 * (p - d + half))
    assert score.ci_low == pytest.approx(14.05, abs=0.01)
    assert score.ci_high == pytest.approx(44.20, abs=0.01)


def test_nps_extremes_and_empty() -> None:
    everyone = nps_score(40, 0, 0)
    assert everyone.nps == 100.0 and everyone.se == 0.0
    # The Wald interval would collapse to a point; the adjusted one does not.
    assert everyone.ci_high == 100.0 and 80.0 < everyone.ci_low < 100.0
    nobody = nps_score(0, 0, 0)
    assert nobody.n == 0 and nobody.nps is None and nobody.ci_low is None
    assert nps_score(0, 0, 7).nps == -100.0
    narrow = nps_score(5000, 3000, 2000, confidence=0.99)
    wide = nps_score(50, 30, 20, confidence=0.99)
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low
    with pytest.raises(ValueError, match="must not be negative"):
        nps_score(-1, 0, 0)
    with pytest.raises(ValueError, match="confidence"):
        nps_score(1, 1, 1, confidence=1.0)


# -- satisfaction ------------------------------------------------------------------------
AS_OF = D(2023, 12, 31)

SURVEYS = [
    # latest answers in the window: 5 promoters, 3 passives, 2 detractors → NPS +30
    ("c0", "2023-06-01", 9, None),
    ("c1", "2023-06-02", 10, 5),
    ("c2", "2023-06-03", 9, None),
    ("c3", "2023-06-04", 10, None),
    ("c4", "2023-06-05", 9, None),
    ("c5", "2023-06-06", 7, None),
    ("c6", "2023-06-07", 8, None),
    ("c7", "2023-06-08", 8, None),
    ("c8", "2023-06-09", 0, None),
    ("c9", "2023-06-10 12:00", 6, None),
    ("c9", "2023-06-10 12:00", 9, None),  # same time as the 6: the lower answer counts
    ("c0", "2023-02-01", 3, 2),  # an earlier answer in the window
    ("c8", "2022-06-01", 10, None),  # before the window (starts 2023-01-01)
    ("c10", "2023-03-01", None, 5),  # CSAT only
    ("c5", "2024-01-02", 0, 1),  # after as_of
]
INTERACTIONS = [
    ("c1", "2023-03-01", 4),
    ("c11", "2023-05-01", 3),
    ("c12", "2023-05-02", None),
    ("c13", "2022-01-01", 1),  # before the window
]


def test_customer_satisfaction_latest_answer_counts_and_csat() -> None:
    table = customer_satisfaction(
        surveys_table(SURVEYS), interactions_table(INTERACTIONS), as_of=AS_OF
    )
    by_id = {r["customer_id"]: r for r in rows(table, "customer_id")}
    assert set(by_id) == {f"c{i}" for i in range(12)} | {"c13"}  # c12 has no answer
    c0 = by_id["c0"]
    assert (c0["nps"], c0["nps_category"], c0["nps_date"]) == (9.0, "promoter", D(2023, 6, 1))
    assert (c0["surveys"], c0["last_survey"], c0["csat"], c0["csat_responses"]) == (
        2,
        D(2023, 6, 1),
        2.0,
        1,
    )
    assert by_id["c1"]["csat"] == pytest.approx(4.5) and by_id["c1"]["csat_responses"] == 2
    assert (by_id["c9"]["nps"], by_id["c9"]["nps_category"]) == (6.0, "detractor")
    assert (by_id["c5"]["nps"], by_id["c5"]["surveys"]) == (7.0, 1)  # 2024 answer ignored
    assert by_id["c6"]["nps_category"] == "passive"
    assert by_id["c10"]["nps"] is None and by_id["c10"]["nps_category"] is None
    assert (by_id["c11"]["surveys"], by_id["c11"]["csat"]) == (0, 3.0)
    assert by_id["c11"]["last_survey"] is None
    assert by_id["c13"]["csat"] == 1.0  # per customer: all history up to as_of
    # Without interactions only survey CSAT counts.
    alone = {
        r["customer_id"]: r
        for r in rows(customer_satisfaction(surveys_table(SURVEYS), as_of=AS_OF), "customer_id")
    }
    assert "c11" not in alone and alone["c1"]["csat"] == 5.0


def test_satisfaction_summary_headline_counts_customers_in_the_window() -> None:
    summary = satisfaction_summary(
        surveys_table(SURVEYS), interactions_table(INTERACTIONS), as_of=AS_OF
    )
    assert summary.since == D(2022, 12, 31)
    assert summary.nps.basis == "customers"
    assert (summary.nps.promoters, summary.nps.passives, summary.nps.detractors) == (5, 3, 2)
    assert summary.nps.nps == pytest.approx(30.0)
    # Every answer in the window: promoters c0–c4 and c9's 9; detractors c0's 3, c8, c9's 6.
    responses = summary.nps_responses
    assert (responses.promoters, responses.passives, responses.detractors) == (6, 3, 3)
    assert responses.nps == pytest.approx(25.0)
    assert summary.surveys == 13
    # CSAT in the window: 2, 5, 5 (surveys) and 4, 3 (interactions).
    assert summary.csat_responses == 5
    assert summary.csat_mean == pytest.approx(19 / 5)
    assert summary.csat_satisfied_share == pytest.approx(3 / 5)


def test_satisfaction_summary_over_all_history_and_empty_window() -> None:
    everything = satisfaction_summary(
        surveys_table(SURVEYS), interactions_table(INTERACTIONS), as_of=AS_OF, window_months=0
    )
    assert everything.since is None
    assert everything.nps.nps == pytest.approx(30.0)  # c8's latest answer is still the 0
    assert everything.nps_responses.n == 13
    assert everything.nps_responses.nps == pytest.approx(100 * (7 - 3) / 13)
    assert everything.csat_mean == pytest.approx(20 / 6)
    assert everything.csat_satisfied_share == pytest.approx(3 / 6)
    early = satisfaction_summary(surveys_table(SURVEYS), as_of=D(2020, 1, 1))
    assert early.nps.n == 0 and early.nps.nps is None
    assert early.csat_mean is None and early.csat_satisfied_share is None
    assert early.surveys == 0


def test_missing_survey_column_is_a_schema_error() -> None:
    table = surveys_table(SURVEYS).drop("nps")
    with pytest.raises(SchemaError, match="surveys, column 'nps': required column is missing"):
        customer_satisfaction(table, as_of=AS_OF)
    with pytest.raises(ValueError, match="window_months"):
        satisfaction_summary(surveys_table(SURVEYS), as_of=AS_OF, window_months=-1)


# -- loyalty -----------------------------------------------------------------------------
def test_loyalty_by_hand() -> None:
    customers = ibis.memtable(
        pd.DataFrame(
            {
                "customer_id": ["a", "b", "c", "d"],
                "occasions": [3, 1, 2, 5],
                "first_purchase": [
                    D(2022, 12, 31),
                    D(2023, 12, 31),
                    D(2021, 12, 31),
                    D(2024, 1, 5),
                ],
                "last_purchase": [D(2023, 6, 1), D(2023, 12, 31), D(2022, 6, 1), D(2024, 2, 1)],
            }
        )
    )
    loyalty = loyalty_summary(customers, as_of=AS_OF)
    years = 365.2425
    assert loyalty.customers == 3  # d starts after as_of
    assert (loyalty.repeat_customers, loyalty.repeat_rate) == (2, pytest.approx(2 / 3))
    assert loyalty.occasions == 6
    assert loyalty.purchase_frequency == pytest.approx(6 / ((365 + 0 + 730) / years))
    assert loyalty.mean_tenure_years == pytest.approx(1095 / 3 / years)
    assert loyalty.median_tenure_years == pytest.approx(365 / years)
    assert (loyalty.active_customers, loyalty.active_share) == (2, pytest.approx(2 / 3))
    assert loyalty_summary(customers, as_of=AS_OF, activity_months=24).active_customers == 3
    empty = loyalty_summary(customers, as_of=D(2000, 1, 1))
    assert empty.customers == 0 and empty.repeat_rate is None
    assert empty.purchase_frequency is None
    with pytest.raises(SchemaError, match="column 'occasions'"):
        loyalty_summary(customers.drop("occasions"), as_of=AS_OF)


# -- cohorts and retention ----------------------------------------------------------------
COHORT_TX = [
    ("a", "2023-01-05", 10.0),
    ("a", "2023-01-20", 10.0),
    ("a", "2023-03-01", 10.0),
    ("b", "2023-01-31", 10.0),
    ("b", "2023-02-01 09:00", 10.0),
    ("b", "2023-02-01 17:00", 10.0),
    ("c", "2023-02-10", 10.0),
    ("d", "2023-02-28", 10.0),
    ("d", "2023-03-15 23:59:59", 10.0),
    ("e", "2023-03-16", 10.0),  # after as_of
    ("f", "2022-12-31 23:59:59", 10.0),
    ("f", "2023-03-10", 10.0),
]


def test_cohort_matrix_by_hand() -> None:
    matrix = rows(
        cohort_retention(transactions(COHORT_TX), as_of=D(2023, 3, 15)), "cohort", "month"
    )
    got = {
        (r["cohort"], r["month"]): (r["cohort_size"], r["customers"], r["complete"]) for r in matrix
    }
    assert got == {
        (D(2022, 12, 1), 0): (1, 1, True),
        (D(2022, 12, 1), 1): (1, 0, True),
        (D(2022, 12, 1), 2): (1, 0, True),
        (D(2022, 12, 1), 3): (1, 1, False),  # March is not over on the 15th
        (D(2023, 1, 1), 0): (2, 2, True),
        (D(2023, 1, 1), 1): (2, 1, True),
        (D(2023, 1, 1), 2): (2, 1, False),
        (D(2023, 2, 1), 0): (2, 2, True),
        (D(2023, 2, 1), 1): (2, 1, False),
    }
    curves = cohorts_from_matrix(matrix)
    assert [c.cohort for c in curves] == [D(2022, 12, 1), D(2023, 1, 1), D(2023, 2, 1)]
    assert curves[1].active == [2, 1, 1] and curves[1].share == [1.0, 0.5, 0.5]
    assert not curves[1].last_month_complete
    at_month_end = rows(
        cohort_retention(transactions(COHORT_TX), as_of=D(2023, 3, 31)), "cohort", "month"
    )
    assert all(r["complete"] for r in at_month_end)
    assert {r["cohort"] for r in at_month_end} == {
        D(2022, 12, 1),
        D(2023, 1, 1),
        D(2023, 2, 1),
        D(2023, 3, 1),
    }


RETENTION_TX = [
    ("a", "2023-02-01", 5.0),
    ("a", "2023-05-01", 5.0),  # at start and at end: retained
    ("b", "2023-03-31 23:00", 5.0),  # at start only (the start day counts): lost
    ("c", "2022-12-31", 5.0),  # just outside the start window …
    ("c", "2023-06-30", 5.0),  # … and back by the end: reactivated
    ("d", "2023-04-15", 5.0),  # new
    ("h", "2023-04-01", 5.0),  # new
    ("e", "2023-01-10", 5.0),
    ("e", "2023-02-10", 5.0),  # at start only: lost
    ("f", "2022-06-01", 5.0),  # long gone
    ("g", "2023-07-01", 5.0),  # after every period
]


def test_retention_rate_is_end_minus_new_over_start() -> None:
    periods = [
        RetentionPeriod("q2", D(2023, 3, 31), D(2023, 6, 30)),
        RetentionPeriod("empty", D(2020, 1, 1), D(2020, 6, 30)),
        RetentionPeriod("q1", D(2022, 12, 31), D(2023, 3, 31)),
    ]
    got = {
        r["period"]: r
        for r in rows(
            retention_rates(transactions(RETENTION_TX), periods, activity_months=3), "period"
        )
    }
    q2 = got["q2"]
    assert (q2["start"], q2["end"]) == (D(2023, 3, 31), D(2023, 6, 30))
    assert (q2["customers_start"], q2["customers_end"], q2["new_customers"]) == (3, 4, 2)
    assert (q2["retained"], q2["reactivated"]) == (1, 1)
    assert q2["retention_rate"] == pytest.approx((4 - 2) / 3)
    assert q2["churn_rate"] == pytest.approx(1 / 3)
    # Q1: at start (Oct–Dec 2022) only c; at end a, b, e (new) — c lapsed.
    q1 = got["q1"]
    assert (q1["customers_start"], q1["customers_end"], q1["new_customers"]) == (1, 3, 3)
    assert q1["retention_rate"] == 0.0 and q1["churn_rate"] == 1.0
    empty = got["empty"]
    assert (empty["customers_start"], empty["customers_end"], empty["new_customers"]) == (0, 0, 0)
    assert empty["retention_rate"] is None and empty["churn_rate"] is None
    # A 12-month window: at the start of Q2 c (Dec 2022) and f (June 2022) were still
    # customers, and at the end b and e (bought in Q1) still are.
    longer = rows(retention_rates(transactions(RETENTION_TX), periods[:1]), "period")[0]
    assert (longer["customers_start"], longer["customers_end"], longer["new_customers"]) == (
        5,
        6,
        2,
    )
    assert (longer["retained"], longer["reactivated"]) == (4, 0)
    assert longer["retention_rate"] == pytest.approx((6 - 2) / 5)


def test_retention_periods_and_month_arithmetic() -> None:
    assert months_before(D(2024, 3, 31), 1) == D(2024, 2, 29)
    assert months_before(D(2023, 6, 30), 12) == D(2022, 6, 30)
    assert months_before(D(2023, 1, 15), 13) == D(2021, 12, 15)
    assert months_before(D(2023, 6, 30), 3) == D(2023, 3, 31)  # month end to month end
    assert months_before(D(2024, 2, 29), 12) == D(2023, 2, 28)
    assert months_before(D(2023, 2, 28), 1) == D(2023, 1, 31)
    assert months_before(D(2023, 3, 30), 1) == D(2023, 2, 28)
    periods = default_periods(as_of=D(1998, 6, 30), first_day=D(1997, 1, 1))
    assert [(p.label, p.start, p.end) for p in periods] == [
        ("last_12_months", D(1997, 6, 30), D(1998, 6, 30)),
        ("1997", D(1996, 12, 31), D(1997, 12, 31)),
        ("1998", D(1997, 12, 31), D(1998, 6, 30)),
    ]
    with pytest.raises(ValueError, match="must be after start"):
        RetentionPeriod("x", D(2023, 1, 1), D(2023, 1, 1))
    with pytest.raises(ValueError, match="unique"):
        retention_rates(transactions(RETENTION_TX), [periods[0], periods[0]])
    with pytest.raises(ValueError, match="activity_months"):
        retention_rates(transactions(RETENTION_TX), periods, activity_months=0)


# -- contribution and the grid ------------------------------------------------------------
def tiered_customers() -> Any:
    ids = list("abcdefghij")
    tiers = ["platinum"] * 2 + ["gold"] * 3 + ["lead"] * 5
    realized = [40.0, 20.0, 10.0, 10.0, 10.0] + [2.0] * 5
    total = [70.0, 30.0, 30.0, 20.0, 10.0] + [8.0] * 5
    return ibis.memtable(
        pd.DataFrame(
            {
                "customer_id": ids,
                "tier": [{"platinum": 1, "gold": 2, "lead": 4}[t] for t in tiers],
                "tier_name": tiers,
                "realized_value": realized,
                "total_value": total,
            }
        )
    )


GRID_SURVEYS = [
    ("a", "2023-06-01", 10, None),
    ("b", "2023-06-01", 2, None),
    ("c", "2023-06-01", 6, None),
    ("d", "2023-06-01", 8, None),
    ("f", "2023-06-01", 0, None),
    ("g", "2022-01-01", 9, None),  # an old answer
    ("z", "2023-06-01", 0, None),  # not a customer in the table
]


def test_tier_contribution_by_hand() -> None:
    got = {r["tier"]: r for r in rows(tier_contribution(tiered_customers()), "tier")}
    assert set(got) == {"platinum", "gold", "lead"}
    expected = {
        "platinum": (2, 0.2, 60, 0.6, 100, 0.5),
        "gold": (3, 0.3, 30, 0.3, 60, 0.3),
        "lead": (5, 0.5, 10, 0.1, 40, 0.2),
    }
    for tier, values in expected.items():
        r = got[tier]
        actual = (
            r["customers"],
            r["customer_share"],
            r["realized_value"],
            r["realized_share"],
            r["total_value"],
            r["total_share"],
        )
        assert actual == pytest.approx(values)
    only_realized = rows(tier_contribution(tiered_customers(), total=None), "tier")
    assert "total_share" not in only_realized[0]
    by_number = {
        r["tier"]: r for r in rows(tier_contribution(tiered_customers(), tier="tier"), "tier")
    }
    assert by_number["1"]["realized_share"] == pytest.approx(0.6)
    with pytest.raises(SchemaError, match="column 'total_value'"):
        tier_contribution(tiered_customers().drop("total_value"))


def test_value_satisfaction_grid_flags_high_value_detractors() -> None:
    satisfaction = customer_satisfaction(surveys_table(GRID_SURVEYS), as_of=AS_OF)
    cells = {
        (r["tier"], r["nps_category"]): r
        for r in rows(
            value_satisfaction_grid(tiered_customers(), satisfaction), "tier", "nps_category"
        )
    }
    assert len(cells) == 12  # 3 tiers × 4 categories, empty cells included
    expected = {
        ("platinum", "promoter"): (1, 70.0),
        ("platinum", "passive"): (0, 0.0),
        ("platinum", "detractor"): (1, 30.0),
        ("platinum", "no answer"): (0, 0.0),
        ("gold", "promoter"): (0, 0.0),
        ("gold", "passive"): (1, 20.0),
        ("gold", "detractor"): (1, 30.0),
        ("gold", "no answer"): (1, 10.0),
        ("lead", "promoter"): (1, 8.0),
        ("lead", "passive"): (0, 0.0),
        ("lead", "detractor"): (1, 8.0),
        ("lead", "no answer"): (3, 24.0),
    }
    assert {k: (c["customers"], c["value"]) for k, c in cells.items()} == expected
    assert cells[("lead", "no answer")]["customer_share"] == pytest.approx(0.3)
    assert cells[("platinum", "promoter")]["value_share"] == pytest.approx(70 / 200)
    # Default: the two tiers with the highest mean value (platinum 50, gold 20, lead 8).
    flagged = {k for k, c in cells.items() if c["high_value_detractor"]}
    assert flagged == {("platinum", "detractor"), ("gold", "detractor")}
    assert {k[0] for k, c in cells.items() if c["high_value"]} == {"platinum", "gold"}

    listed = rows(high_value_detractors(tiered_customers(), satisfaction), "customer_id")
    assert [(r["customer_id"], r["tier"], r["value"], r["nps"]) for r in listed] == [
        ("b", "platinum", 30.0, 2.0),
        ("c", "gold", 30.0, 6.0),
    ]
    named = rows(
        high_value_detractors(tiered_customers(), satisfaction, high_value_tiers=["platinum"]),
        "customer_id",
    )
    assert [r["customer_id"] for r in named] == ["b"]
    ordered = rows(
        high_value_detractors(
            tiered_customers(), satisfaction, tier_order=["lead", "gold", "platinum"]
        ),
        "customer_id",
    )
    assert [r["customer_id"] for r in ordered] == ["c", "f"]
    # Answers on or before answered_since count as no answer (g's 2022 answer).
    recent = {
        (r["tier"], r["nps_category"]): r["customers"]
        for r in rows(
            value_satisfaction_grid(
                tiered_customers(), satisfaction, answered_since=D(2022, 12, 31)
            ),
            "tier",
            "nps_category",
        )
    }
    assert recent[("lead", "promoter")] == 0 and recent[("lead", "no answer")] == 4


# -- settings and the combined KPIs --------------------------------------------------------
def test_relationship_settings_defaults_and_validation() -> None:
    settings = RelationshipSettings()
    assert (settings.nps_window_months, settings.activity_window_months) == (12, 12)
    assert settings.high_value_tiers == []
    loaded = settings_from_dict(
        {"segments": {"relationship": {"high_value_tiers": ["platinum"], "nps_window_months": 0}}}
    )
    assert loaded.segments.relationship.high_value_tiers == ["platinum"]
    with pytest.raises(ConfigError, match=r"segments\.relationship\.activity_window_months"):
        settings_from_dict({"segments": {"relationship": {"activity_window_months": 0}}})


def test_relationship_kpis_combine_the_parts_by_hand() -> None:
    tx = transactions(RETENTION_TX)
    as_of = D(2023, 6, 30)
    customers = btyd_summary(tx, observation_end=as_of)
    values = tiered_customers()
    tiered = customers.join(values, "customer_id")
    surveys = surveys_table(GRID_SURVEYS)
    kpis = relationship_kpis(
        tx,
        tiered,
        as_of=as_of,
        surveys=surveys,
        settings=RelationshipSettings(activity_window_months=3),
        tier_order=["platinum", "gold", "iron", "lead"],
    )
    assert kpis.retention.period == "last_12_months"
    assert [r.period for r in kpis.retention_by_year] == ["2022", "2023"]
    direct = {
        r["period"]: r
        for r in rows(
            retention_rates(
                tx, default_periods(as_of=as_of, first_day=D(2022, 6, 1)), activity_months=3
            ),
            "period",
        )
    }
    assert kpis.retention.retention_rate == direct["last_12_months"]["retention_rate"]
    assert kpis.retention_by_year[1].customers_end == direct["2023"]["customers_end"]
    assert kpis.loyalty.customers == 7 and kpis.loyalty.repeat_customers == 3  # a, c, e
    assert kpis.satisfaction is not None and kpis.satisfaction.nps.n == 6  # z too; not g
    assert [c.tier for c in kpis.contribution or []] == ["platinum", "gold", "lead"]
    assert kpis.high_value_tiers == ["platinum", "gold"]
    assert (kpis.high_value_detractors, kpis.high_value_detractor_value) == (2, 60.0)
    assert kpis.grid is not None and len(kpis.grid) == 12
    assert kpis.grid[0].tier == "platinum" and kpis.grid[0].nps_category == "promoter"
    data = json.loads(json.dumps(kpis.to_dict(), allow_nan=False))
    assert data["as_of"] == "2023-06-30"
    assert data["retention"]["start"] == "2022-06-30"
    assert data["cohorts"][0]["cohort"] == "2022-06-01"
    # Without tiers or surveys those parts are left out.
    bare = relationship_kpis(tx, customers, as_of=as_of, tier=None)
    assert bare.satisfaction is None and bare.contribution is None and bare.grid is None
    interactions_only = relationship_kpis(
        tx, tiered, as_of=as_of, interactions=interactions_table([("a", "2023-05-01", 5)])
    )
    assert interactions_only.satisfaction is not None
    assert interactions_only.satisfaction.csat_mean == 5.0
    assert interactions_only.satisfaction.nps.n == 0
    with pytest.raises(DataError, match="no transactions on or before 2000-01-01"):
        relationship_kpis(tx, customers, as_of=D(2000, 1, 1), tier=None)
    with pytest.raises(SchemaError, match="column 'tier_name'"):
        relationship_kpis(tx, customers, as_of=as_of)


# -- real data ----------------------------------------------------------------------------
CDNOW_END = D(1998, 6, 30)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    raw = pd.read_parquet(shared("cdnow_master.parquet"))
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype(str),
            "ts": pd.to_datetime(raw["date"]),
            "amount": raw["dollar_value"],
        }
    )


def _matches_pandas(matrix: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    """Check the cohort matrix's counts against a plain pandas count; return them."""
    assert (matrix.loc[matrix["month"] == 0, "share"] == 1.0).all()
    assert (matrix["customers"] <= matrix["cohort_size"]).all()
    assert ((matrix["share"] >= 0) & (matrix["share"] <= 1)).all()
    month = frame["ts"].dt.year * 12 + frame["ts"].dt.month - 1
    first = month.groupby(frame["customer_id"]).transform("min")
    active = pd.DataFrame(
        {"cohort": first, "month": month - first, "customer_id": frame["customer_id"]}
    ).drop_duplicates()
    counts = (
        active.astype({"cohort": "int64", "month": "int64"}).groupby(["cohort", "month"]).size()
    )
    got = matrix.set_index(
        [matrix["cohort"].map(lambda d: d.year * 12 + d.month - 1), matrix["month"]]
    )["customers"]
    assert got.sum() == counts.sum()
    pd.testing.assert_series_equal(
        got.sort_index(),
        counts.reindex(got.index, fill_value=0).sort_index(),
        check_names=False,
        check_dtype=False,
    )
    sizes = matrix.groupby("cohort")["cohort_size"].first()
    assert sizes.sum() == frame["customer_id"].nunique()
    return got


def test_cdnow_cohort_matrix_matches_an_independent_count(cdnow: pd.DataFrame) -> None:
    matrix = pd.DataFrame(
        rows(cohort_retention(ibis.memtable(cdnow), as_of=CDNOW_END), "cohort", "month")
    )
    # The cohort: first-time buyers of January–March 1997 (Fader, Hardie & Lee 2005).
    sizes = matrix.groupby("cohort")["cohort_size"].first()
    assert sizes.to_dict() == {D(1997, 1, 1): 7846, D(1997, 2, 1): 8476, D(1997, 3, 1): 7248}
    assert sizes.sum() == 23_570
    assert matrix.groupby("cohort")["month"].max().to_dict() == {
        D(1997, 1, 1): 17,
        D(1997, 2, 1): 16,
        D(1997, 3, 1): 15,
    }
    assert matrix["complete"].all()  # 30 June is a month end
    got = _matches_pandas(matrix, cdnow)
    # Month 1 retention of the January cohort: 1,157 of 7,846 bought again in February.
    assert got[(1997 * 12, 1)] == 1157


def test_online_retail_cohorts_and_retention() -> None:
    """UCI Online Retail (Dec 2010 – 9 Dec 2011), rows with a customer id, returns kept."""
    raw = pd.read_parquet(shared("online_retail.parquet"))
    raw = raw[raw["customer_id"].notna()]
    frame = pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype("int64").astype(str),
            "ts": raw["invoice_date"],
            "amount": raw["quantity"] * raw["unit_price"],
        }
    )
    as_of = D(2011, 12, 9)
    tx = ibis.memtable(frame)
    matrix = pd.DataFrame(rows(cohort_retention(tx, as_of=as_of), "cohort", "month"))
    got = _matches_pandas(matrix, frame)
    assert len(matrix["cohort"].unique()) == 13 and got.sum() > 0
    december = matrix[matrix["cohort"] == D(2010, 12, 1)]
    assert december["cohort_size"].iloc[0] == 948
    assert december["customers"].tolist()[1] == 362  # 38.2 % bought again in January
    assert not december["complete"].iloc[-1]  # December 2011 ends after the 9th
    periods = default_periods(as_of=as_of, first_day=D(2010, 12, 1))
    rates = {r["period"]: r for r in rows(retention_rates(tx, periods), "period")}
    year = rates["2011"]
    # At the start of 2011 the customers are the 948 acquired in December 2010.
    assert (year["customers_start"], year["new_customers"]) == (948, 3424)
    assert year["customers_end"] == frame.loc[frame["ts"] >= "2010-12-10", "customer_id"].nunique()
    assert year["retention_rate"] == pytest.approx((year["customers_end"] - 3424) / 948)


def test_cdnow_retention_and_loyalty_match_independent_counts(cdnow: pd.DataFrame) -> None:
    tx = ibis.memtable(cdnow)
    periods = default_periods(as_of=CDNOW_END, first_day=D(1997, 1, 1))
    got = {r["period"]: r for r in rows(retention_rates(tx, periods), "period")}
    last = got["last_12_months"]
    bought = cdnow.loc[cdnow["ts"] > "1997-06-30", "customer_id"].nunique()
    assert (last["customers_start"], last["customers_end"], last["new_customers"]) == (
        23_570,
        bought,
        0,
    )
    assert bought == 8332
    assert last["retention_rate"] == pytest.approx(8332 / 23_570)
    assert got["1997"]["customers_start"] == 0 and got["1997"]["retention_rate"] is None
    assert got["1997"]["new_customers"] == 23_570
    assert got["1998"]["retention_rate"] == pytest.approx(8332 / 23_570)

    loyalty = loyalty_summary(btyd_summary(tx, observation_end=CDNOW_END), as_of=CDNOW_END)
    days = cdnow.assign(day=cdnow["ts"].dt.normalize()).drop_duplicates(["customer_id", "day"])
    occasions = days.groupby("customer_id").size()
    assert loyalty.customers == 23_570
    assert loyalty.occasions == len(days) == 67_591
    assert loyalty.repeat_customers == (occasions >= 2).sum()
    first = days.groupby("customer_id")["day"].min()
    tenure = (pd.Timestamp(CDNOW_END) - first).dt.days / 365.2425
    assert loyalty.mean_tenure_years == pytest.approx(tenure.mean())
    assert loyalty.median_tenure_years == pytest.approx(tenure.median())
    assert loyalty.purchase_frequency == pytest.approx(67_591 / tenure.sum())
    assert loyalty.active_customers == 8332


def test_olist_review_scores_as_csat() -> None:
    """Olist's 3,584 review scores (1: 867, 2: 216, 3: 332, 4: 514, 5: 1,655)."""
    raw = pd.read_parquet(shared("olist_classified_reviews.parquet"))
    reviews = ibis.memtable(
        pd.DataFrame(
            {
                "customer_id": raw["id"].astype(str),
                "ts": raw["review_answer_timestamp"],
                "nps": pd.Series([None] * len(raw), dtype="float64"),
                "csat": raw["review_score"].astype("float64"),
            }
        )
    )
    summary = satisfaction_summary(reviews, as_of=D(2018, 4, 30), window_months=0)
    assert summary.csat_responses == 3584
    total = 867 * 1 + 216 * 2 + 332 * 3 + 514 * 4 + 1655 * 5
    assert summary.csat_mean == pytest.approx(total / 3584)
    assert summary.csat_satisfied_share == pytest.approx((514 + 1655) / 3584)
    assert summary.nps.n == 0 and summary.nps.nps is None


def test_kpis_on_a_store_with_cdnow(store: Store) -> None:
    """The whole path on store tables (DuckDB backend) joined with in-memory tables."""
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    tx = store.table("transactions")
    summary = btyd_summary(tx, observation_end=CDNOW_END)
    totals = customer_totals(tx, observation_end=CDNOW_END, margin_rate=0.3)
    joined = summary.join(totals.drop("first_purchase", "last_purchase"), "customer_id")
    quartile = ibis.ntile(4).over(order_by=ibis.desc(joined.margin))
    names = ibis.cases(
        (quartile == 0, "platinum"), (quartile == 1, "gold"), (quartile == 2, "iron"), else_="lead"
    )
    customers = joined.mutate(
        tier_name=names, realized_value=joined.margin, total_value=joined.margin * 2
    )
    ids = store.to_arrow(customers.select("customer_id")).column(0).to_pylist()
    scores = [(cid, "1998-01-15", float(i % 11), float(i % 5 + 1)) for i, cid in enumerate(ids)]
    kpis = relationship_kpis(
        tx,
        customers,
        as_of=CDNOW_END,
        surveys=surveys_table(scores),
        tier_order=["platinum", "gold", "iron", "lead"],
    )
    assert kpis.loyalty.customers == 2357
    assert sum(c.customers for c in kpis.cohorts) == 2357
    assert [c.tier for c in kpis.contribution or []] == ["platinum", "gold", "iron", "lead"]
    contribution = kpis.contribution or []
    assert sum(c.realized_share or 0 for c in contribution) == pytest.approx(1.0)
    assert sum(c.realized_value for c in contribution) == pytest.approx(244_091.94 * 0.3)
    assert sum(cell.customers for cell in kpis.grid or []) == 2357
    assert kpis.satisfaction is not None and kpis.satisfaction.nps.n == 2357
    # Answers 0–10 cycle: 2 of 11 are promoters, 7 of 11 detractors.
    assert kpis.satisfaction.nps.nps == pytest.approx(
        100
        * (sum(1 for i in range(2357) if i % 11 >= 9) - sum(1 for i in range(2357) if i % 11 <= 6))
        / 2357
    )
    detractors = rows(
        high_value_detractors(
            customers,
            customer_satisfaction(surveys_table(scores), as_of=CDNOW_END),
            tier_order=["platinum", "gold"],
        ),
        "customer_id",
    )
    assert kpis.high_value_detractors == len(detractors) > 0
    json.dumps(kpis.to_dict(), allow_nan=False)


# -- portability --------------------------------------------------------------------------
def _portable_inputs() -> dict[str, pd.DataFrame]:
    raw = pd.read_parquet(shared("cdnow_sample.parquet"))
    tx = pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype(str),
            "ts": pd.to_datetime(raw["date"]),
            "amount": raw["dollar_value"],
        }
    )
    ids = sorted(tx["customer_id"].unique())
    n = len(ids)
    surveys = pd.DataFrame(
        {
            "customer_id": ids + ids[:300],
            "ts": [pd.Timestamp("1997-06-01") + pd.Timedelta(days=i % 390) for i in range(n + 300)],
            "nps": [float(i % 11) if i % 7 else None for i in range(n + 300)],
            "csat": [float(i % 5 + 1) if i % 3 else None for i in range(n + 300)],
            "comment": [None] * (n + 300),
        }
    )
    interactions = pd.DataFrame(
        {
            "customer_id": ids[::4],
            "ts": pd.Timestamp("1998-02-01"),
            "kind": "call",
            "csat": [float(i % 5 + 1) for i in range(len(ids[::4]))],
        }
    )
    return {"transactions": tx, "surveys": surveys, "interactions": interactions}


def _kpis(tables: dict[str, Any]) -> dict[str, Any]:
    tx = tables["transactions"]
    summary = btyd_summary(tx, observation_end=CDNOW_END)
    spend = summary.monetary_value
    band = (spend >= 50).ifelse("gold", (spend >= 20).ifelse("iron", "lead"))
    customers = summary.mutate(
        tier_name=band,
        realized_value=spend * summary.frequency,
        total_value=spend + summary.occasions,
    )
    kpis = relationship_kpis(
        tx,
        customers,
        as_of=CDNOW_END,
        surveys=tables["surveys"],
        interactions=tables["interactions"],
    )
    return kpis.to_dict()


def _same(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-9)
    else:
        assert a == b


@pytest.mark.spark
@pytest.mark.slow
def test_relationship_kpis_are_identical_on_duckdb_and_pyspark() -> None:
    from tests.spark_support import pyspark_available, spark_ibis_backend

    if not pyspark_available():
        pytest.skip("pyspark is not installed (pip install 'cvm[spark]')")
    frames = _portable_inputs()
    duck = {name: ibis.memtable(frame) for name, frame in frames.items()}
    spark = spark_ibis_backend()
    remote = {}
    for name, frame in frames.items():
        spark.create_view(f"cvm_rel_{name}", ibis.memtable(frame), overwrite=True)
        remote[name] = spark.table(f"cvm_rel_{name}")
    expected = _kpis(duck)
    assert expected["satisfaction"]["nps"]["n"] > 1500
    assert expected["high_value_detractors"] > 0
    _same(expected, _kpis(remote))
    satisfaction = {
        k: customer_satisfaction(t["surveys"], t["interactions"], as_of=CDNOW_END)
        for k, t in (("duck", duck), ("spark", remote))
    }
    a, b = (pd.DataFrame(rows(s, "customer_id")) for s in satisfaction.values())
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
