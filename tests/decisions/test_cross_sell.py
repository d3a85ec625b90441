"""Cross-sell: affinity and recommendations against a brute-force reference, then real data."""

from __future__ import annotations

import datetime as dt
import fnmatch
import itertools
from collections import Counter, defaultdict
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Store
from cvm.config import CrossSellSettings, Settings, default_toml, settings_from_dict
from cvm.data import ONLINE_RETAIL_NON_PRODUCTS
from cvm.decisions.cross_sell import (
    evaluate_recommendations,
    popular_products,
    product_affinity,
    purchase_lines,
    recommend_products,
    store_recommendations,
)
from cvm.errors import ConfigError, DataError, SchemaError
from cvm.ingest import ingest_customers, ingest_transactions
from cvm.store import resolve_identities

D = dt.date
# the default exclusions hold Online Retail's one-letter codes (B, D, …): not here
LOOSE: dict[str, Any] = {"max_basket_share": 1.0, "min_pair_count": 2, "exclude_products": ["POST"]}


def frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Lines as (customer, basket, day, product[, quantity[, amount]])."""
    records = []
    for row in rows:
        customer, basket, day, product, *rest = row
        quantity = rest[0] if rest else 1.0
        amount = rest[1] if len(rest) > 1 else 2.0 * quantity
        records.append(
            {
                "customer_id": customer,
                "transaction_id": basket,
                "ts": pd.Timestamp(day),
                "product_id": product,
                "quantity": float(quantity),
                "amount": float(amount),
            }
        )
    return pd.DataFrame.from_records(records)


def table(rows: list[tuple[Any, ...]]) -> Any:
    return ibis.memtable(frame(rows))


def rows_of(expr: Any) -> list[dict[str, Any]]:
    return list(expr.to_pandas().to_dict("records"))


# -- a brute-force reference in plain Python --------------------------------------------
def ref_purchases(df: pd.DataFrame, settings: CrossSellSettings) -> pd.DataFrame:
    def excluded(product: str) -> bool:
        return any(
            fnmatch.fnmatchcase(product.upper(), p.upper()) for p in settings.exclude_products
        )

    keep = df[
        df.product_id.notna()
        & (df.amount > 0)
        & (df.quantity > 0)
        & ~df.product_id.map(lambda p: p is not None and excluded(p))
    ]
    baskets = keep.groupby(["customer_id", "transaction_id"]).ngroups
    share = (
        keep.drop_duplicates(["customer_id", "transaction_id", "product_id"])
        .groupby("product_id")
        .size()
        / baskets
    )
    common = set(share[share > settings.max_basket_share].index)
    return keep[~keep.product_id.isin(common)]


def ref_rules(
    df: pd.DataFrame, settings: CrossSellSettings
) -> dict[tuple[str, str], dict[str, float]]:
    lines = ref_purchases(df, settings)
    key = ["customer_id"] if settings.level == "customer" else ["customer_id", "transaction_id"]
    units = [set(g.product_id) for _, g in lines.groupby(key)]
    n_units = len(units)
    single = Counter(p for unit in units for p in unit)
    pairs = Counter(pair for unit in units for pair in itertools.combinations(sorted(unit), 2))
    rules: dict[tuple[str, str], dict[str, float]] = {}
    for (x, y), n in pairs.items():
        if n < settings.min_pair_count or n / n_units < settings.min_support:
            continue
        for a, b in ((x, y), (y, x)):
            measures = {
                "pair_count": n,
                "antecedent_count": single[a],
                "consequent_count": single[b],
                "units": n_units,
                "support": n / n_units,
                "confidence": n / single[a],
                "lift": float(n) * n_units / (float(single[a]) * single[b]),
            }
            if (
                measures["confidence"] >= settings.min_confidence
                and measures["lift"] >= settings.min_lift
            ):
                rules[(a, b)] = measures
    by_antecedent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for rule in rules:
        by_antecedent[rule[0]].append(rule)
    kept = {}
    for group in by_antecedent.values():
        group.sort(key=lambda r: (-rules[r][settings.score], -rules[r]["pair_count"], r[1]))
        for rule in group[: settings.rules_per_product]:
            kept[rule] = rules[rule]
    return kept


def ref_scores(df: pd.DataFrame, settings: CrossSellSettings) -> dict[str, dict[str, float]]:
    """Every candidate's score per customer (not only the top N)."""
    rules = ref_rules(df, settings)
    lines = ref_purchases(df, settings)
    owned = df[df.product_id.notna()].groupby("customer_id").product_id.agg(set)
    scores: dict[str, dict[str, float]] = {}
    for customer, bought in lines.groupby("customer_id").product_id.agg(set).items():
        found: dict[str, list[float]] = defaultdict(list)
        for (a, b), measures in rules.items():
            if a in bought and b not in owned[customer]:
                found[b].append(measures[settings.score])
        combine = sum if settings.aggregate == "sum" else max
        scores[str(customer)] = {b: float(combine(v)) for b, v in found.items()}
    return scores


def random_lines(seed: int, customers: int = 60) -> pd.DataFrame:
    """Customers with tastes (two product families), baskets, returns, postage, vouchers."""
    rng = np.random.default_rng(seed)
    families = [[f"A{i}" for i in range(6)], [f"B{i}" for i in range(6)]]
    rows: list[tuple[Any, ...]] = []
    for c in range(customers):
        taste = families[c % 2]
        for b in range(int(rng.integers(1, 4))):
            basket = f"T{c}-{b}"
            day = D(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 60)))
            picks = {str(p) for p in rng.choice(taste, size=int(rng.integers(1, 4)), replace=False)}
            if rng.random() < 0.3:
                picks.add(str(rng.choice(families[1 - c % 2])))
            for product in sorted(picks):
                rows.append((f"c{c:02d}", basket, day, product, int(rng.integers(1, 5))))
            rows.append((f"c{c:02d}", basket, day, "POST", 1))
            if rng.random() < 0.2:
                rows.append((f"c{c:02d}", basket, day, "gift_0001_20", 1))
            if rng.random() < 0.2:  # a return of something from the other family
                rows.append(
                    (f"c{c:02d}", "C" + basket, day, str(rng.choice(families[1 - c % 2])), -1)
                )
    return frame(rows)


# -- affinity -----------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["customer", "basket"])
@pytest.mark.parametrize("score", ["confidence", "lift"])
def test_affinity_matches_brute_force(level: str, score: str) -> None:
    df = random_lines(seed=7)
    settings = CrossSellSettings(
        level=level,
        score=score,
        min_pair_count=3,
        rules_per_product=4,
        min_lift=0.9,
    )
    got = rows_of(product_affinity(ibis.memtable(df), settings=settings))
    expected = ref_rules(df, settings)
    assert {(r["antecedent"], r["consequent"]) for r in got} == set(expected)
    assert len(got) == len(expected) > 20
    for row in got:
        want = expected[(row["antecedent"], row["consequent"])]
        for name, value in want.items():
            assert row[name] == pytest.approx(value, rel=1e-12), name
    # postage, vouchers and returns never enter the rules
    assert not {r["antecedent"] for r in got} & {"POST", "gift_0001_20"}


def test_affinity_by_hand() -> None:
    """Five customers; A and B go together, C goes with anything."""
    lines = table(
        [
            ("u1", "t1", D(2024, 1, 1), "A"),
            ("u1", "t1", D(2024, 1, 1), "B"),
            ("u2", "t2", D(2024, 1, 1), "A"),
            ("u2", "t3", D(2024, 1, 2), "B"),  # another basket: a pair by customer only
            ("u3", "t4", D(2024, 1, 1), "A"),
            ("u3", "t4", D(2024, 1, 1), "C"),
            ("u4", "t5", D(2024, 1, 1), "C"),
            ("u5", "t6", D(2024, 1, 1), "B"),
            ("u5", "t6", D(2024, 1, 1), "C"),
        ]
    )
    by_customer = {
        (r["antecedent"], r["consequent"]): r
        for r in rows_of(product_affinity(lines, settings=CrossSellSettings(**LOOSE)))
    }
    # N = 5 customers; A: 3, B: 3, C: 3; A&B: 2 (u1, u2); A&C: 1, B&C: 1 (below 2)
    assert set(by_customer) == {("A", "B"), ("B", "A")}
    ab = by_customer[("A", "B")]
    assert (ab["pair_count"], ab["antecedent_count"], ab["consequent_count"], ab["units"]) == (
        2,
        3,
        3,
        5,
    )
    assert ab["support"] == pytest.approx(2 / 5)
    assert ab["confidence"] == pytest.approx(2 / 3)
    assert ab["lift"] == pytest.approx(2 * 5 / (3 * 3))
    basket = CrossSellSettings(**{**LOOSE, "level": "basket", "min_pair_count": 1, "min_lift": 0.0})
    by_basket = {
        (r["antecedent"], r["consequent"]): r
        for r in rows_of(product_affinity(lines, settings=basket))
    }
    # 6 baskets; A: 3 (t1, t2, t4), B: 3 (t1, t3, t6), C: 3; A&B only in t1
    assert by_basket[("A", "B")]["pair_count"] == 1
    assert by_basket[("A", "B")]["lift"] == pytest.approx(1 * 6 / (3 * 3))
    assert by_basket[("A", "C")]["lift"] == pytest.approx(1 * 6 / (3 * 3))
    # min_lift = 1 (the default) drops the pairs bought together less often than by chance
    default_lift = basket.model_copy(update={"min_lift": 1.0})
    assert rows_of(product_affinity(lines, settings=default_lift)) == []
    supported = CrossSellSettings(
        **{**LOOSE, "min_pair_count": 1, "min_lift": 0.0, "min_support": 0.4}
    )
    assert {
        (r["antecedent"], r["consequent"])
        for r in rows_of(product_affinity(lines, settings=supported))
    } == {("A", "B"), ("B", "A")}
    confident = CrossSellSettings(
        **{**LOOSE, "min_pair_count": 1, "min_lift": 0.0, "min_confidence": 0.5}
    )
    assert (
        len(
            rows_of(
                product_affinity(
                    lines, settings=confident.model_copy(update={"min_confidence": 0.0})
                )
            )
        )
        == 6
    )
    assert {
        (r["antecedent"], r["consequent"])
        for r in rows_of(product_affinity(lines, settings=confident))
    } == {("A", "B"), ("B", "A")}


def test_purchase_lines_drop_returns_non_products_and_ubiquitous_lines() -> None:
    lines = table(
        [
            ("u1", "t1", D(2024, 1, 1), "A"),
            ("u1", "t1", D(2024, 1, 1), "BAG"),
            ("u1", "t1", D(2024, 1, 1), "post"),  # exclusion ignores case
            ("u1", "C9", D(2024, 1, 2), "A", -1),  # a return
            ("u2", "t2", D(2024, 1, 1), "B7"),
            ("u2", "t2", D(2024, 1, 1), "BAG"),
            ("u2", "t2", D(2024, 1, 1), "Gift_0001_50"),  # wildcard GIFT_*
            ("u2", "t2", D(2024, 1, 1), "FREE", 1, 0.0),  # a free line
            ("u2", "C8", D(2024, 1, 3), "C", -1, 4.0),  # a return with a positive amount
            ("u3", "t3", D(2024, 1, 1), "C"),
            ("u3", "t3", D(2024, 1, 1), "BAG"),
            ("u3", None, D(2024, 2, 1), "A"),  # no transaction id: the day is the basket
            ("u3", "t4", D(2024, 3, 1), "A"),  # after as_of
        ]
    )
    got = purchase_lines(lines, as_of=D(2024, 2, 1)).to_pandas()
    assert sorted(zip(got.customer_id, got.product_id, strict=True)) == [
        ("u1", "A"),
        ("u2", "B7"),
        ("u3", "A"),
        ("u3", "C"),
    ]  # BAG is in 3 of 4 baskets (> 0.5)
    assert set(got.basket) == {"t1", "t2", "t3", "2024-02-01"}
    kept = purchase_lines(
        lines, settings=CrossSellSettings(max_basket_share=1.0, exclude_products=[])
    ).to_pandas()
    assert set(kept.product_id) == {"A", "B7", "C", "BAG", "post", "Gift_0001_50"}
    patterns = CrossSellSettings(max_basket_share=1.0, exclude_products=["?AG", "a"])
    assert set(purchase_lines(lines, settings=patterns).to_pandas().product_id) == {
        "B7",
        "C",
        "post",
        "Gift_0001_50",
    }


def test_missing_product_column_is_a_schema_error() -> None:
    lines = ibis.memtable(
        pd.DataFrame({"customer_id": ["a"], "ts": [pd.Timestamp(2024, 1, 1)], "amount": [1.0]})
    )
    with pytest.raises(SchemaError, match=r"column 'product_id'.*missing product_id"):
        product_affinity(lines)
    with pytest.raises(SchemaError, match="product_id"):
        evaluate_recommendations(lines, cut=D(2024, 1, 1))


# -- recommendations ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("aggregate", "score", "level"),
    [("sum", "confidence", "customer"), ("max", "confidence", "customer"),
     ("max", "lift", "basket"), ("sum", "lift", "customer")],
)  # fmt: skip
def test_recommendations_match_brute_force(aggregate: str, score: str, level: str) -> None:
    df = random_lines(seed=11)
    settings = CrossSellSettings(
        aggregate=aggregate,
        score=score,
        level=level,
        min_pair_count=3,
        rules_per_product=5,
        top_n=3,
    )
    got = recommend_products(ibis.memtable(df), settings=settings).to_pandas()
    reference = ref_scores(df, settings)
    owned = df.groupby("customer_id").product_id.agg(set)
    served = 0
    for customer, candidates in reference.items():
        mine = got[got.customer_id == customer].sort_values("rank")
        assert list(mine["rank"]) == list(range(1, min(3, len(candidates)) + 1))
        if mine.empty:
            continue
        served += 1
        assert not set(mine.product_id) & owned[customer]  # returns count as bought
        assert list(mine.score) == pytest.approx([candidates[p] for p in mine.product_id])
        assert list(mine.score) == sorted(mine.score, reverse=True)
        others = [s for p, s in candidates.items() if p not in set(mine.product_id)]
        assert min(mine.score) >= max(others, default=0.0) - 1e-12
        assert set(mine.because) <= owned[customer]
    assert served > 40


def test_recommendation_ties_and_reasons_by_hand() -> None:
    lines = table(
        [
            *[(f"a{i}", f"ta{i}", D(2024, 1, 1), p) for i in range(3) for p in ("A", "B")],
            *[(f"c{i}", f"tc{i}", D(2024, 1, 1), p) for i in range(2) for p in ("C", "D")],
            *[(f"e{i}", f"te{i}", D(2024, 1, 1), p) for i in range(2) for p in ("C", "E")],
            ("e2", "te2", D(2024, 1, 1), "E"),
            ("x", "tx", D(2024, 1, 2), "A"),
            ("y", "ty", D(2024, 1, 2), "C"),
            ("z", "tz", D(2024, 1, 2), "A"),
            ("z", "tz", D(2024, 1, 2), "C"),
            ("z", "rz", D(2024, 1, 3), "B", -1),  # z returned B: never offered again
        ]
    )
    settings = CrossSellSettings(**LOOSE, top_n=2)
    got = {
        (r["customer_id"], r["rank"]): (r["product_id"], r["score"], r["rules"], r["because"])
        for r in rows_of(recommend_products(lines, settings=settings))
    }
    # A: a0-a2, x, z (5); B: a0-a2 (3); C: c0, c1, e0, e1, y, z (6); D: 2; E: e0-e2 (3)
    assert got[("x", 1)] == ("B", pytest.approx(3 / 5), 1, "A")
    assert ("x", 2) not in got  # A's only rule
    # C → D and C → E both have confidence 2/6: E wins on popularity (3 buyers vs 2)
    assert got[("y", 1)] == ("E", pytest.approx(2 / 6), 1, "C")
    assert got[("y", 2)] == ("D", pytest.approx(2 / 6), 1, "C")
    assert (got[("z", 1)][0], got[("z", 2)][0]) == ("E", "D")  # not B, returned
    assert {r["customer_id"] for r in rows_of(recommend_products(lines, settings=settings))} >= {
        "x",
        "y",
        "z",
    }
    only = recommend_products(
        lines, settings=settings, customers=ibis.memtable({"customer_id": ["y"]})
    )
    assert set(only.to_pandas().customer_id) == {"y"}
    early = recommend_products(lines, settings=settings, as_of=D(2024, 1, 1)).to_pandas()
    assert not set(early.customer_id) & {"x", "y", "z"}


def test_popular_products_skip_what_each_customer_bought() -> None:
    df = random_lines(seed=3)
    settings = CrossSellSettings(top_n=4)
    got = popular_products(ibis.memtable(df), settings=settings).to_pandas()
    lines = ref_purchases(df, settings)
    buyers = lines.groupby("product_id").customer_id.nunique()
    ranking = sorted(buyers.index, key=lambda p: (-buyers[p], p))
    owned = df.groupby("customer_id").product_id.agg(set)
    for customer in lines.customer_id.unique():
        want = [p for p in ranking if p not in owned[customer]][:4]
        mine = got[got.customer_id == customer].sort_values("rank")
        assert list(mine.product_id) == want
        assert list(mine.customers) == [buyers[p] for p in want]
    assert set(got.customer_id) == set(lines.customer_id)


# -- evaluation ---------------------------------------------------------------------------
def test_evaluation_by_hand() -> None:
    before, after = D(2024, 1, 5), D(2024, 2, 5)
    train = [
        *[(f"c{i}", f"t{i}", before, p) for i in (1, 2, 3) for p in ("A", "B")],
        *[(f"c{i}", f"t{i}", before, p) for i in (4, 5) for p in ("C", "D")],
        *[(f"c{i}", f"t{i}", before, p) for i in (6, 7) for p in ("C", "E")],
        ("x1", "u1", before, "A"),
        ("x2", "u2", before, "C"),
        ("x3", "u3", before, "E"),
    ]
    test = [
        ("x1", "v1", after, "B"),
        ("x2", "v2", after, "D"),
        ("x2", "v2", after, "A"),
        ("x3", "v3", after, "C"),
        ("x3", "v3", after, "B"),
        ("c1", "v4", after, "A"),  # nothing new: not evaluated
        ("c2", "v5", after, "POST"),  # not a product: not evaluated
        ("z", "v6", after, "A"),  # no purchase before the cut: not evaluated
        ("x1", "v7", D(2024, 3, 9), "E"),  # after the end of the test period
    ]
    settings = CrossSellSettings(**LOOSE, top_n=1)
    result = evaluate_recommendations(
        table(train + test), cut=D(2024, 2, 1), end=D(2024, 2, 29), settings=settings
    )
    # 10 customers; A 4, B 3, C 5, D 2, E 3; rules A→B 3/4, C→D 2/5, C→E 2/5, E→C 2/3.
    # affinity: x1 → B (hit), x2 → E (tie with D, E more popular: miss), x3 → C (hit)
    # popularity C, A, B, E, D: x1 → C (miss), x2 → A (hit), x3 → C (hit)
    assert (result.customers, result.top_n, result.end) == (3, 1, D(2024, 2, 29))
    assert result.new_products == pytest.approx(5 / 3)
    assert result.model.to_dict() == pytest.approx(
        {"hit_rate": 2 / 3, "precision": 2 / 3, "recall": 1 / 2, "coverage": 1.0, "hits": 2}
    )
    assert result.baseline.to_dict() == pytest.approx(
        {"hit_rate": 2 / 3, "precision": 2 / 3, "recall": 1 / 3, "coverage": 1.0, "hits": 2}
    )
    two = evaluate_recommendations(
        table(train + test), cut=D(2024, 2, 1), end=D(2024, 2, 29), settings=settings, top_n=2
    )
    # N = 2: x2 also gets D (hit); x1 gets nothing more (A has one rule)
    assert two.model.hits == 3 and two.model.precision == pytest.approx((1 + 1 + 1) / 3 / 2)
    data = result.to_dict()
    assert data["cut"] == "2024-02-01" and data["settings"]["top_n"] == 1
    whole = evaluate_recommendations(table(train + test), cut=D(2024, 2, 1), settings=settings)
    assert whole.end == D(2024, 3, 9) and whole.model.recall == pytest.approx((1 / 2 + 1 / 2) / 3)


def test_evaluation_needs_customers_and_a_test_period() -> None:
    lines = table([("a", "t1", D(2024, 1, 1), "A"), ("a", "t2", D(2024, 1, 9), "A")])
    with pytest.raises(DataError, match="no customer bought before 2024-01-05"):
        evaluate_recommendations(lines, cut=D(2024, 1, 5))
    with pytest.raises(DataError, match=r"end \(2024-01-01\) is before cut"):
        evaluate_recommendations(lines, cut=D(2024, 1, 5), end=D(2024, 1, 1))


# -- settings and the store ---------------------------------------------------------------
def test_settings_section() -> None:
    settings = Settings()
    assert settings.decisions.cross_sell == CrossSellSettings()
    assert "[decisions.cross_sell]" in default_toml()
    custom = settings_from_dict(
        {"decisions": {"cross_sell": {"level": "basket", "exclude_products": ["FEE*"]}}}
    )
    assert custom.decisions.cross_sell.level == "basket"
    assert custom.decisions.cross_sell.exclude_products == ["FEE*"]
    with pytest.raises(ConfigError, match=r"decisions\.cross_sell\.level"):
        settings_from_dict({"decisions": {"cross_sell": {"level": "household"}}})
    with pytest.raises(ConfigError, match=r"decisions\.cross_sell\.max_basket_share"):
        settings_from_dict({"decisions": {"cross_sell": {"max_basket_share": 0}}})
    with pytest.raises(ConfigError, match=r"decisions\.cross_sell\.top_n"):
        settings_from_dict({"decisions": {"cross_sell": {"top_n": 0}}})


def test_store_recommendations_use_unified_ids(store: Store) -> None:
    with pytest.raises(DataError, match="no transaction carries a product_id"):
        store_recommendations(store)
    rows = [
        *[(f"a{i}", f"ta{i}", D(2024, 1, 1), p) for i in range(3) for p in ("A", "B", "C")],
        ("web-1", "w1", D(2024, 1, 2), "A"),
        ("shop-1", "s1", D(2024, 1, 3), "B"),  # the same person as web-1
    ]
    ingest_transactions(store, frame(rows))
    ingest_customers(
        store,
        pd.DataFrame(
            {"customer_id": ["web-1", "shop-1"], "email": ["ann@example.com", "Ann@Example.com"]}
        ),
    )
    settings = CrossSellSettings(**LOOSE, min_lift=0.0)
    separate = store_recommendations(store, settings=settings).to_pandas()
    assert set(separate[separate.customer_id == "web-1"].product_id) == {"B", "C"}
    resolve_identities(store)
    merged = store_recommendations(store, settings=settings).to_pandas()
    ann = merged[merged.customer_id.isin(["web-1", "shop-1"])]
    assert len(set(ann.customer_id)) == 1
    assert list(ann.product_id) == ["C"]


# -- real data ----------------------------------------------------------------------------
@pytest.mark.slow
def test_online_retail_affinity_beats_popularity(store: Store, record_property: Any) -> None:
    """UCI Online Retail, trained before 2011-09-01, tested on the new products bought after."""
    ingest_transactions(store, shared("online_retail.parquet"))
    transactions = store.table("transactions")
    settings = CrossSellSettings(exclude_products=list(ONLINE_RETAIL_NON_PRODUCTS))
    rules = product_affinity(transactions, settings=settings, as_of=D(2011, 8, 31)).to_pandas()
    assert not set(rules.antecedent) & {"POST", "M", "DOT", "C2", "BANK CHARGES"}
    assert (rules.pair_count >= settings.min_pair_count).all() and (rules.lift >= 1).all()
    assert rules.groupby("antecedent").size().max() == settings.rules_per_product
    assert rules.support.to_numpy() == pytest.approx(rules.pair_count / rules.units)
    # the regency teacups go together (a classic of this data set)
    green = rules[rules.antecedent == "22697"].sort_values("confidence", ascending=False)
    assert {"22698", "22699"} <= set(green.consequent.head(3))

    result = evaluate_recommendations(transactions, cut=D(2011, 9, 1), settings=settings)
    figures = result.to_dict()
    record_property("cross_sell_online_retail", figures)
    print("cross-sell, Online Retail:", figures)
    assert result.end == D(2011, 12, 9) and result.top_n == 10
    assert 1500 < result.customers < 2500
    assert result.model.coverage > 0.99
    assert result.model.hit_rate > result.baseline.hit_rate + 0.1
    assert result.model.precision > result.baseline.precision
    assert result.model.recall > result.baseline.recall


def test_minimal_columns_basket_is_the_customer_day() -> None:
    """Without transaction_id and quantity: a basket is a customer's day, every line counts."""
    df = frame(
        [
            ("u1", None, D(2024, 1, 1), "A"),
            ("u1", None, D(2024, 1, 1), "B7"),
            ("u1", None, D(2024, 1, 2), "C"),
            ("u2", None, D(2024, 1, 1), "A"),
            ("u2", None, D(2024, 1, 1), "B7"),
            ("u2", None, D(2024, 1, 3), "C"),
        ]
    ).drop(columns=["transaction_id", "quantity"])
    settings = CrossSellSettings(**{**LOOSE, "level": "basket"})
    rules = rows_of(product_affinity(ibis.memtable(df), settings=settings))
    # 4 baskets (u1 twice, u2 twice): A&B7 in 2 of them, C never with another product
    assert [(r["antecedent"], r["consequent"], r["units"]) for r in rules] == [
        ("A", "B7", 4),
        ("B7", "A", 4),
    ]
    assert rules[0]["lift"] == pytest.approx(2 * 4 / (2 * 2))


def test_evaluation_of_no_transactions_is_a_data_error() -> None:
    empty = ibis.memtable(frame([("a", "t", D(2024, 1, 1), "A")]).iloc[:0])
    with pytest.raises(DataError, match="no transactions to evaluate"):
        evaluate_recommendations(empty, cut=D(2024, 1, 5))
