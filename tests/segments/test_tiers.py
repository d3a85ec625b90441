from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Store
from cvm.config import (
    RfmSettings,
    ScoreSettings,
    TierSettings,
    load_settings,
    settings_from_dict,
)
from cvm.dynamics import analyze
from cvm.errors import ConfigError, DataError, SchemaError
from cvm.ingest import ingest_transactions
from cvm.segments import gini, lorenz_curve, rfm, tier_summary, top_share, value_tiers
from cvm.store.schema import SEGMENT_COLUMNS
from cvm.value.score import value_score

NAMES = ["platinum", "gold", "iron", "lead"]


def customers(scores: dict[str, float | None]) -> Any:
    return ibis.memtable(
        pd.DataFrame({"customer_id": list(scores), "value_score": list(scores.values())})
    )


def tiers_of(table: Any, settings: TierSettings | None = None) -> dict[str, int]:
    out = value_tiers(table, settings).to_pandas()
    return dict(zip(out["customer_id"], out["tier"].astype(int), strict=True))


def reference_tiers(ids: list[str], scores: list[float], settings: TierSettings) -> dict[str, int]:
    """Tier every customer with a plain loop over the ranking (the definition)."""
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
    bounds = settings.bounds()
    tiers: dict[str, int] = {}
    total = sum(max(s, 0.0) for s in scores)
    before = 0.0
    for position, i in enumerate(order):
        if settings.method == "percentile":
            passed = sum(position >= math.ceil(round(c * len(ids), 9)) for c in bounds)
        else:
            share = before / total if total > 0 else 1.0
            passed = sum(share >= c for c in bounds)
        tiers[ids[i]] = 1 + passed
        before += max(scores[i], 0.0)
    return tiers


# -- value tiers -------------------------------------------------------------------------
def test_cumulative_tiers_put_the_customer_who_crosses_a_cutoff_in_the_tier() -> None:
    # Total positive value 100. a+b bring exactly 50 %: c starts at 50 %, so it is gold.
    # f starts at 80 % (iron), i at 95 % (lead); zero and negative values are lead.
    table = customers(
        {
            "e": 10.0,
            "a": 30.0,
            "b": 20.0,
            "c": 10.0,
            "d": 10.0,
            "f": 5.0,
            "g": 5.0,
            "h": 5.0,
            "i": 3.0,
            "j": 2.0,
            "k": 0.0,
            "l": -4.0,
        }
    )
    assert tiers_of(table) == {
        "a": 1,
        "b": 1,
        "c": 2,
        "d": 2,
        "e": 2,
        "f": 3,
        "g": 3,
        "h": 3,
        "i": 4,
        "j": 4,
        "k": 4,
        "l": 4,
    }
    out = value_tiers(table).to_pandas().set_index("customer_id")
    assert out.loc["a", "tier_name"] == "platinum"
    assert out.loc["f", "tier_name"] == "iron"
    assert out.loc["l", "tier_name"] == "lead"
    assert out["tier"].dtype == np.int64


def test_a_tied_group_across_a_cutoff_is_split_by_customer_id() -> None:
    # a brings 40 %; the three 20s start at 40 %, 60 % and 80 % in customer_id order.
    table = customers({"d": 20.0, "a": 40.0, "c": 20.0, "b": 20.0})
    assert tiers_of(table) == {"a": 1, "b": 1, "c": 2, "d": 3}


def test_a_single_customer_with_all_value_is_the_whole_top_tier() -> None:
    table = customers({"whale": 1000.0, "x": 1.0, "y": 1.0, "z": None})
    assert tiers_of(table) == {"whale": 1, "x": 4, "y": 4, "z": 4}


def test_when_nobody_has_positive_value_everyone_is_in_the_last_tier() -> None:
    table = customers({"a": 0.0, "b": -3.0, "c": None})
    assert tiers_of(table) == {"a": 4, "b": 4, "c": 4}


def test_percentile_tiers_count_the_top_customers() -> None:
    ids = [f"c{i:03d}" for i in range(150)]
    table = customers({cid: float(1000 - i) for i, cid in enumerate(ids)})
    settings = TierSettings(method="percentile")
    tiers = tiers_of(table, settings)
    # ⌈0.01·150⌉ = 2, ⌈0.05·150⌉ = 8, ⌈0.2·150⌉ = 30 customers end tiers 1–3.
    counts = pd.Series(tiers).value_counts().sort_index().tolist()
    assert counts == [2, 6, 22, 120]
    assert (tiers["c001"], tiers["c002"], tiers["c007"], tiers["c008"]) == (1, 2, 2, 3)
    assert (tiers["c029"], tiers["c030"]) == (3, 4)


def test_percentile_of_exact_shares_is_not_shifted_by_rounding() -> None:
    table = customers({f"c{i:03d}": float(-i) for i in range(100)})
    counts = pd.Series(tiers_of(table, TierSettings(method="percentile"))).value_counts()
    assert counts.sort_index().tolist() == [1, 4, 15, 80]


def test_threshold_tiers_use_minimum_scores() -> None:
    settings = TierSettings(
        method="thresholds", thresholds=[100.0, 10.0, 0.0], names=["a", "b", "c", "d"]
    )
    table = customers({"p": 100.0, "q": 99.9, "r": 10.0, "s": 0.0, "t": -0.5, "u": None})
    assert tiers_of(table, settings) == {"p": 1, "q": 2, "r": 2, "s": 3, "t": 4, "u": 3}
    names = value_tiers(table, settings).to_pandas().set_index("customer_id")["tier_name"]
    assert names.to_dict() == {"p": "a", "q": "b", "r": "b", "s": "c", "t": "d", "u": "c"}


@pytest.mark.parametrize("method", ["cumulative", "percentile"])
def test_tiers_match_the_definition_on_random_data_with_ties(method: str) -> None:
    rng = np.random.default_rng(7)
    n = 500
    ids = [f"id{v:05d}" for v in rng.permutation(n)]
    # Few distinct values: ties at every cut; some negative.
    scores = [float(v) for v in rng.choice([-5, 0, 1, 2, 3, 5, 8, 40, 100], size=n)]
    settings = TierSettings(method=method)  # type: ignore[arg-type]
    got = tiers_of(customers(dict(zip(ids, scores, strict=True))), settings)
    assert got == reference_tiers(ids, scores, settings)


def test_custom_cutoffs_and_names() -> None:
    settings = TierSettings(cutoffs=[0.8], names=["top", "rest"])
    # c starts at 75 % (< 80 %), d at 90 %.
    table = customers({"a": 50.0, "b": 25.0, "c": 15.0, "d": 10.0})
    out = value_tiers(table, settings).to_pandas().set_index("customer_id")
    assert out["tier_name"].to_dict() == {"a": "top", "b": "top", "c": "top", "d": "rest"}


def test_missing_columns_are_an_error() -> None:
    with pytest.raises(SchemaError, match="no 'value_score' column"):
        value_tiers(ibis.memtable({"customer_id": ["a"], "score": [1.0]}))
    out = value_tiers(ibis.memtable({"customer_id": ["a"], "s": [1.0]}), score="s")
    assert out.to_pandas()["tier"].tolist() == [1]


# -- tier summary ------------------------------------------------------------------------
def test_tier_summary_counts_shares_and_means() -> None:
    # Positive value 100: b starts at 50 %, c at 80 %, d at 95 %.
    table = customers({"a": 50.0, "b": 30.0, "c": 15.0, "d": 5.0, "e": -20.0})
    tiered = value_tiers(value_score_like(table))
    summary = tier_summary(tiered, TierSettings()).to_pandas()
    assert summary["tier_name"].tolist() == NAMES
    assert summary["customers"].tolist() == [1, 1, 1, 2]
    assert summary["share_of_customers"].tolist() == pytest.approx([0.2, 0.2, 0.2, 0.4])
    # Total value 80: the lead tier holds a negative share.
    assert summary["value"].tolist() == pytest.approx([50.0, 30.0, 15.0, -15.0])
    assert summary["share_of_value"].tolist() == pytest.approx([0.625, 0.375, 0.1875, -0.1875])
    assert summary["mean_value"].tolist() == pytest.approx([50.0, 30.0, 15.0, -7.5])


def test_tier_summary_lists_empty_tiers_when_given_the_settings() -> None:
    tiered = value_tiers(value_score_like(customers({"a": 10.0, "b": 0.0})))
    present = tier_summary(tiered).to_pandas()
    assert present["tier"].tolist() == [1, 4]
    every = tier_summary(tiered, TierSettings()).to_pandas()
    assert every["customers"].tolist() == [1, 0, 0, 1]
    assert every["value"].tolist() == [10.0, 0.0, 0.0, 0.0]
    assert every["mean_value"].isna().tolist() == [False, True, True, False]


def value_score_like(table: Any) -> Any:
    return table.mutate(total_value=table.value_score)


# -- concentration -----------------------------------------------------------------------
def test_gini_of_equal_values_is_zero() -> None:
    assert gini([7.0] * 25) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 10, 1000])
def test_gini_when_one_customer_has_everything_is_n_minus_one_over_n(n: int) -> None:
    values = np.zeros(n)
    values[n // 2] = 123.0
    assert gini(values) == pytest.approx((n - 1) / n)


@pytest.mark.parametrize("n", [2, 5, 100])
def test_gini_of_1_to_n_is_n_minus_1_over_3n(n: int) -> None:
    # Σ_i (2i − n − 1)·i / (n·Σ i) = (n − 1)/(3n) in closed form.
    assert gini(np.arange(1, n + 1)) == pytest.approx((n - 1) / (3 * n))


def test_gini_of_a_large_exponential_sample_is_one_half() -> None:
    rng = np.random.default_rng(3)
    assert gini(rng.exponential(50.0, 400_000)) == pytest.approx(0.5, abs=0.005)


def test_gini_is_the_mean_difference_and_exceeds_one_with_negative_values() -> None:
    rng = np.random.default_rng(11)
    values = rng.normal(5.0, 20.0, 300)
    assert values.min() < 0 < values.sum()
    brute = np.abs(values[:, None] - values[None, :]).sum() / (2 * values.size**2 * values.mean())
    assert gini(values) == pytest.approx(brute)
    # Σ|xi − xj| over ordered pairs = 12, 2·n²·μ = 6.
    assert gini([-1.0, 0.0, 2.0]) == pytest.approx(2.0)


def test_gini_equals_one_minus_twice_the_area_under_the_lorenz_curve() -> None:
    values = np.random.default_rng(5).lognormal(3.0, 1.2, 1000)
    x, y = lorenz_curve(values)
    area = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))
    assert gini(values) == pytest.approx(1 - 2 * area)


def test_lorenz_curve_endpoints_and_shape() -> None:
    x, y = lorenz_curve([5.0, 1.0, 4.0])
    assert x.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert y.tolist() == pytest.approx([0.0, 0.1, 0.5, 1.0])


def test_lorenz_curve_with_negative_values_dips_below_zero() -> None:
    x, y = lorenz_curve([-2.0, 1.0, 11.0])
    assert (x[0], y[0], x[-1], y[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert y.tolist() == pytest.approx([0.0, -0.2, -0.1, 1.0])


def test_shares_are_nan_when_total_value_is_not_positive() -> None:
    assert math.isnan(gini([1.0, -1.0]))
    assert math.isnan(top_share([0.0, 0.0]))
    x, y = lorenz_curve([-1.0, -2.0])
    assert x.tolist() == [0.0, 0.5, 1.0] and np.isnan(y).all()


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_no_values_or_non_finite_values_are_an_error(bad: list[float]) -> None:
    for measure in (gini, lorenz_curve, top_share):
        with pytest.raises(DataError):
            measure(bad)


def test_top_share_of_customers() -> None:
    values = [50.0, 30.0, 5.0, 5.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0]
    assert top_share(values, 0.2) == pytest.approx(0.8)  # the 80/20 rule
    assert top_share(values, 0.1) == pytest.approx(0.5)
    assert top_share(values, 0.15) == pytest.approx(0.8)  # ⌈1.5⌉ = 2 customers
    assert top_share(values, 1.0) == pytest.approx(1.0)
    # The whale curve: the top third bring 150 % of the total, the rest destroy 50 %.
    assert top_share([15.0, 0.0, -5.0], 1 / 3) == pytest.approx(1.5)


@pytest.mark.parametrize("share", [0.0, -0.1, 1.01])
def test_top_share_rejects_shares_outside_zero_to_one(share: float) -> None:
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\]"):
        top_share([1.0, 2.0], share)


# -- settings ----------------------------------------------------------------------------
def test_default_tier_settings() -> None:
    settings = TierSettings()
    assert (settings.method, settings.bounds(), settings.names) == (
        "cumulative",
        [0.5, 0.8, 0.95],
        NAMES,
    )
    assert TierSettings(method="percentile").bounds() == [0.01, 0.05, 0.2]


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ({"cutoffs": [0.8, 0.5, 0.95]}, r"cutoffs'.*cutoffs must be strictly increasing"),
        ({"cutoffs": [0.5, 0.5, 0.95]}, r"cutoffs'.*strictly increasing"),
        ({"cutoffs": [0.5, 0.8, 1.0]}, r"cutoffs'.*between 0 and 1 \(not 1.0\)"),
        ({"cutoffs": [0.0, 0.8]}, r"cutoffs'.*between 0 and 1 \(not 0.0\)"),
        ({"cutoffs": []}, r"cutoffs'.*at least one"),
        ({"percentiles": [0.2, 0.1]}, r"percentiles'.*strictly increasing"),
        ({"names": ["a", "b"]}, r"names'.*3 cutoffs make 4 tiers, but 2 names are given"),
        (
            {"method": "percentile", "percentiles": [0.1, 0.5]},
            r"names'.*2 percentiles make 3 tiers, but 4 names",
        ),
        ({"method": "thresholds"}, r"thresholds'.*needs at least one threshold"),
        (
            {"method": "thresholds", "thresholds": [10.0, 100.0], "names": ["a", "b", "c"]},
            r"thresholds'.*strictly decreasing",
        ),
        (
            {"method": "thresholds", "thresholds": [100.0, 10.0]},
            r"names'.*2 thresholds make 3 tiers, but 4 names",
        ),
        ({"names": ["a", "b", "a", "c"]}, r"names'.*unique"),
        ({"names": ["a", " ", "b", "c"]}, r"names'.*must not be empty"),
        ({"method": "quartiles"}, r"method'"),
    ],
)
def test_invalid_tier_settings_name_the_key(tiers: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"key 'segments\.tiers\." + message):
        settings_from_dict({"segments": {"tiers": tiers}})


def test_tier_settings_errors_give_the_line(tmp_path: Path) -> None:
    path = tmp_path / "cvm.toml"
    path.write_text(
        '[segments.tiers]\nmethod = "percentile"\npercentiles = [0.05, 0.01, 0.2]\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"cvm.toml, line 3, key 'segments.tiers.percentiles'"):
        load_settings(path)
    path.write_text(
        '[segments.tiers]\nmethod = "thresholds"\nthresholds = [1000, 100]\n'
        'names = ["gold", "silver", "bronze"]\n',
        encoding="utf-8",
    )
    tiers = load_settings(path).segments.tiers
    assert (tiers.bounds(), tiers.names) == ([1000.0, 100.0], ["gold", "silver", "bronze"])


# -- real data ---------------------------------------------------------------------------
@pytest.mark.slow
def test_cdnow_value_concentration_tiers_and_rfm(store: Store) -> None:
    """CDNOW (Fader, Hardie & Lee 2005): score, tier and RFM-segment a real snapshot."""
    ingest_transactions(store, shared("cdnow_master.parquet"))
    settings = settings_from_dict({"models": {"purchase": "bgnbd"}})
    overview = analyze(store, settings)
    stored = store.table("customer_snapshots").filter(lambda t: t.run_id == overview.run_id)
    added = [c for c in SEGMENT_COLUMNS if c not in ("cost_to_serve", "influence_value")]
    snapshot = stored.drop(*added)
    scored = value_score(snapshot, settings.value.score)
    tiered = value_tiers(scored, settings.segments.tiers)
    frame = tiered.to_pandas()
    assert len(frame) == 23_570
    # analyze stores exactly these tiers
    kept = stored.select("customer_id", stored_tier=stored.tier_name).to_pandas()
    both = frame.merge(kept, on="customer_id")
    assert len(both) == len(frame) and (both.tier_name == both.stored_tier).all()

    realized = frame["realized_value"].to_numpy()
    # The overview's 80/20 figure is the same measure on realized value.
    assert top_share(realized, 0.2) == pytest.approx(overview.top_value_share)
    total = frame["total_value"].to_numpy()
    assert total == pytest.approx(frame["realized_value"] + frame["potential_value"].fillna(0.0))
    g = gini(total)
    assert 0.5 < g < 0.8  # CDNOW's value is highly concentrated
    assert top_share(total, 0.2) > 0.6

    summary = tier_summary(tiered, settings.segments.tiers).to_pandas()
    assert summary["customers"].sum() == 23_570
    assert summary["share_of_value"].sum() == pytest.approx(1.0)
    # Each tier ends at (just past) its cutoff of cumulative value.
    reached = summary["share_of_value"].cumsum().to_numpy()[:3]
    assert reached == pytest.approx([0.5, 0.8, 0.95], abs=0.002)
    assert np.all(reached >= [0.5, 0.8, 0.95])
    # A pyramid: few platinum customers, many lead or iron ones.
    shares = summary["share_of_customers"].to_numpy()
    assert shares[0] < 0.1 < shares[1] < shares[2]

    segmented = rfm(tiered, settings.segments.rfm, as_of=overview.as_of).to_pandas()
    assert len(segmented) == 23_570
    assert segmented["rfm_segment"].notna().all()
    assert segmented["r_score"].value_counts().min() > 0.19 * 23_570
    # About half of CDNOW's cohort bought once: they share the lowest F score.
    one_timers = segmented["occasions"] == 1
    assert (segmented.loc[one_timers, "f_score"] == 1).all()
    assert (segmented.loc[~one_timers, "f_score"] > 1).all()
    champions = segmented[segmented["rfm_segment"] == "Champions"]
    assert (champions["r_score"] == 5).all() and champions["occasions"].median() > 3
    platinum = frame.loc[frame["tier"] == 1, "customer_id"]
    in_top = segmented.set_index("customer_id").loc[platinum, "rfm_segment"]
    assert in_top.isin(["Champions", "Loyal", "Can't Lose Them", "At Risk"]).mean() > 0.8


# -- portability -------------------------------------------------------------------------
@pytest.mark.spark
@pytest.mark.slow
def test_score_tiers_and_rfm_are_identical_on_duckdb_and_pyspark() -> None:
    from tests.spark_support import pyspark_available, spark_ibis_backend

    if not pyspark_available():
        pytest.skip("pyspark is not installed (pip install 'cvm[spark]')")
    rng = np.random.default_rng(1)
    n = 300
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in rng.permutation(n)],
            "realized_value": rng.choice([-5.0, 0.0, 10.0, 20.0, 35.5, 100.0], n),
            "potential_value": rng.choice([0.0, 5.0, 7.25], n),
            "last_purchase": [
                dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 50, n)
            ],
            "occasions": rng.geometric(0.5, n),
            "revenue": rng.choice([5.0, 10.0, 20.0, 35.5, 80.0], n),
            "attributes": [
                json.dumps({"vip": str(bool(v)).lower(), "n": int(v)})
                for v in rng.integers(0, 3, n)
            ],
        }
    )
    spark = spark_ibis_backend()
    spark.create_view("cvm_segments_test", ibis.memtable(frame), overwrite=True)

    def run(table: Any) -> list[pd.DataFrame]:
        table = table.mutate(attributes=table.attributes.cast("json"))
        scored = value_score(table, ScoreSettings(attributes={"vip": 100.0, "n": 1.0}))
        out = [
            value_tiers(scored, TierSettings(method=method))  # type: ignore[arg-type]
            .select("customer_id", "value_score", "tier", "tier_name")
            .to_pandas()
            for method in ("cumulative", "percentile")
        ]
        out += [
            rfm(scored, RfmSettings(ties=ties), as_of=dt.date(2020, 3, 1))  # type: ignore[arg-type]
            .select("customer_id", "rfm_code", "rfm_segment")
            .to_pandas()
            for ties in ("shared", "split")
        ]
        out.append(tier_summary(value_tiers(scored), TierSettings()).to_pandas())
        return [f.sort_values(f.columns[0]).reset_index(drop=True) for f in out]

    duck = run(ibis.memtable(frame))
    on_spark = run(spark.table("cvm_segments_test"))
    assert duck[0]["tier"].nunique() == 4
    for expected, got in zip(duck, on_spark, strict=True):
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
