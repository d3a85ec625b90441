"""Influence value along the referral graph (Kumar, Petersen & Leone 2007, 2010)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cvm.config import InfluenceSettings, Settings, settings_from_dict
from cvm.errors import ConfigError, SchemaError, ValidationError
from cvm.value.influence import InfluenceResult, influence_value

HALF = InfluenceSettings(share=0.5, decay=0.5, max_depth=3)


def refs(*pairs: tuple[str | None, ...]) -> pd.DataFrame:
    """Referral rows (referrer, referred[, ts]); ts defaults to one day."""
    rows = [(p[0], p[1], p[2] if len(p) == 3 else "2024-01-01") for p in pairs]
    frame = pd.DataFrame(rows, columns=["referrer_id", "referred_id", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


def by_id(result: InfluenceResult) -> pd.DataFrame:
    return result.frame.set_index("customer_id")


def test_chain_depth_and_decay_by_hand() -> None:
    # a → b → c → d → e, depth 3 at most
    base = pd.Series({"a": 10.0, "b": 100.0, "c": 200.0, "d": 400.0, "e": 800.0})
    result = influence_value(refs(("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")), base, HALF)
    frame = by_id(result)
    # a: 0.5·100 + 0.25·200 + 0.125·400 (e is at depth 4, beyond max_depth)
    assert frame.loc["a", "influence_value"] == pytest.approx(50 + 50 + 50)
    assert frame.loc["b", "influence_value"] == pytest.approx(100 + 100 + 100)
    assert frame.loc["c", "influence_value"] == pytest.approx(200 + 200)
    assert frame.loc["d", "influence_value"] == pytest.approx(400)
    assert frame.loc["e", "influence_value"] == 0.0
    assert frame["referred_customers"].to_dict() == {"a": 1, "b": 1, "c": 1, "d": 1, "e": 0}
    assert frame["referred_total"].to_dict() == {"a": 3, "b": 3, "c": 2, "d": 1, "e": 0}
    assert frame["referred_by"].isna().to_dict() == {
        "a": True,
        "b": False,
        "c": False,
        "d": False,
        "e": False,
    }
    assert frame.loc["e", "referred_by"] == "d"
    assert list(result.frame["customer_id"]) == ["a", "b", "c", "d", "e"]


def test_tree_sums_every_branch_and_max_depth_one_is_direct_only() -> None:
    base = pd.Series({"r": 0.0, "x": 10.0, "y": 20.0, "z": 30.0, "w": 40.0})
    pairs = refs(("r", "x"), ("r", "y"), ("x", "z"), ("y", "w"))
    frame = by_id(influence_value(pairs, base, InfluenceSettings(share=0.2, decay=0.1)))
    assert frame.loc["r", "influence_value"] == pytest.approx(0.2 * 30 + 0.02 * 70)
    assert frame.loc["r", "referred_customers"] == 2
    assert frame.loc["r", "referred_total"] == 4
    direct = by_id(influence_value(pairs, base, InfluenceSettings(share=0.2, max_depth=1)))
    assert direct.loc["r", "influence_value"] == pytest.approx(0.2 * 30)
    assert direct.loc["r", "referred_total"] == 2


def test_self_referrals_are_ignored_and_counted() -> None:
    base = pd.Series({"a": 1.0, "b": 50.0})
    result = influence_value(refs(("a", "a"), ("a", "b"), ("b", "b")), base, HALF)
    assert result.self_referrals == 2
    assert result.credited == 1
    frame = by_id(result)
    assert frame.loc["a", "influence_value"] == pytest.approx(25.0)
    assert frame.loc["b", "influence_value"] == 0.0
    assert frame.loc["a", "referred_total"] == 1


def test_several_referrers_credit_the_earliest_then_the_smallest_id() -> None:
    base = pd.Series({"p": 0.0, "q": 0.0, "r": 0.0, "s": 0.0, "x": 100.0, "y": 60.0})
    pairs = refs(
        ("q", "x", "2024-03-01"),
        ("p", "x", "2024-02-01"),  # earliest: p gets x
        ("r", "x", None),  # no date: after every dated referral
        ("p", "x", "2024-05-01"),  # a repeat of the credited pair
        ("s", "y", "2024-01-01"),
        ("r", "y", "2024-01-01"),  # same day: the smaller referrer id, r, gets y
    )
    result = influence_value(pairs, base, HALF)
    frame = by_id(result)
    assert frame.loc["p", "influence_value"] == pytest.approx(50.0)
    assert frame.loc["r", "influence_value"] == pytest.approx(30.0)
    assert frame.loc["q", "influence_value"] == 0.0
    assert frame.loc["s", "influence_value"] == 0.0
    assert frame.loc["x", "referred_by"] == "p"
    assert frame.loc["y", "referred_by"] == "r"
    assert result.credited == 2
    assert result.duplicates == 4
    assert result.multiple_referrers == 2


def test_undated_referrals_tie_on_the_referrer_id() -> None:
    base = pd.Series({"b": 0.0, "a": 0.0, "x": 10.0})
    no_dates = pd.DataFrame({"referrer_id": ["b", "a"], "referred_id": ["x", "x"]})
    frame = by_id(influence_value(no_dates, base, HALF))
    assert frame.loc["x", "referred_by"] == "a"
    assert frame.loc["a", "influence_value"] == pytest.approx(5.0)


def test_two_cycle_never_credits_a_customer_with_itself() -> None:
    base = pd.Series({"a": 100.0, "b": 10.0})
    # a refers b in January, b "refers" a in February: a cycle after cleaning
    result = influence_value(refs(("a", "b", "2024-01-01"), ("b", "a", "2024-02-01")), base, HALF)
    frame = by_id(result)
    assert frame.loc["a", "influence_value"] == pytest.approx(0.5 * 10)
    assert frame.loc["b", "influence_value"] == pytest.approx(0.5 * 100)
    assert frame["referred_total"].to_dict() == {"a": 1, "b": 1}
    assert result.cycles == 1
    assert result.customers_in_cycles == 2


def test_cycle_with_a_tail_counts_each_descendant_once_at_its_shortest_depth() -> None:
    # a → b → c → a is a cycle; c → t → u hangs off it
    base = pd.Series({"a": 1.0, "b": 2.0, "c": 4.0, "t": 8.0, "u": 16.0})
    pairs = refs(("a", "b"), ("b", "c"), ("c", "a"), ("c", "t"), ("t", "u"))
    deep = InfluenceSettings(share=1.0, decay=0.5, max_depth=10)
    result = influence_value(pairs, base, deep)
    frame = by_id(result)
    # a reaches b (1), c (2), t (3), u (4); never itself
    assert frame.loc["a", "influence_value"] == pytest.approx(2 + 4 / 2 + 8 / 4 + 16 / 8)
    assert frame.loc["a", "referred_total"] == 4
    # b reaches c (1), a (2) and t (2), u (3)
    assert frame.loc["b", "influence_value"] == pytest.approx(4 + 1 / 2 + 8 / 2 + 16 / 4)
    assert frame.loc["b", "referred_total"] == 4
    # c reaches a (1), t (1), b (2), u (2)
    assert frame.loc["c", "influence_value"] == pytest.approx(1 + 8 + 2 / 2 + 16 / 2)
    assert frame.loc["c", "referred_customers"] == 2
    assert frame.loc["c", "referred_total"] == 4
    assert frame.loc["t", "influence_value"] == pytest.approx(16)
    assert result.cycles == 1
    assert result.customers_in_cycles == 3


def test_a_walker_entering_a_cycle_stops_after_one_round() -> None:
    # x → a, and a ↔ b: b is credited with x at depth 2 only once
    base = pd.Series({"a": 0.0, "b": 0.0, "x": 100.0})
    pairs = refs(("a", "b"), ("b", "a", "2024-02-01"), ("a", "x"))
    frame = by_id(influence_value(pairs, base, InfluenceSettings(share=1.0, decay=1.0)))
    assert frame.loc["a", "influence_value"] == pytest.approx(100.0)
    assert frame.loc["b", "influence_value"] == pytest.approx(100.0)
    assert frame.loc["b", "referred_total"] == 2  # a and x, once each


def test_unknown_customers_count_zero_and_are_reported() -> None:
    base = pd.Series({"a": 5.0, "b": 40.0})
    pairs = refs(("a", "b"), ("a", "ghost"), ("ghost", "b2"), ("stranger", "b"))
    result = influence_value(pairs, base, HALF)
    frame = by_id(result)
    assert list(result.frame["customer_id"]) == ["a", "b", "b2", "ghost"]
    assert frame.loc["a", "influence_value"] == pytest.approx(20.0)
    assert frame.loc["a", "referred_customers"] == 2
    assert frame.loc["a", "referred_total"] == 3
    assert result.unknown_referred == 2  # ghost and b2
    assert result.unknown_referrers == 1  # ghost; stranger's referral was not credited
    assert result.duplicates == 1


def test_base_value_frame_sums_realized_and_potential() -> None:
    base = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "realized_value": [1.0, 30.0],
            "potential_value": [np.nan, 70.0],
        }
    )
    frame = by_id(influence_value(refs(("a", "b"), ("b", "a", "2025-01-01")), base, HALF))
    assert frame.loc["a", "influence_value"] == pytest.approx(50.0)
    assert frame.loc["b", "influence_value"] == pytest.approx(0.5)  # missing potential: 0


def test_defaults_come_from_the_settings() -> None:
    settings = Settings().value.influence
    assert (settings.share, settings.decay, settings.max_depth) == (0.25, 0.5, 3)
    frame = by_id(influence_value(refs(("a", "b")), pd.Series({"a": 0.0, "b": 8.0})))
    assert frame.loc["a", "influence_value"] == pytest.approx(2.0)
    loaded = settings_from_dict({"value": {"influence": {"share": 0.1, "max_depth": 2}}})
    assert loaded.value.influence.share == 0.1
    with pytest.raises(ConfigError, match=r"value\.influence\.decay"):
        settings_from_dict({"value": {"influence": {"decay": 1.5}}})


def test_empty_referrals() -> None:
    empty = pd.DataFrame({"referrer_id": pd.Series([], dtype=str), "referred_id": []})
    result = influence_value(empty, pd.Series({"a": 1.0}), HALF)
    assert result.frame["influence_value"].tolist() == [0.0]
    assert result.counts()["credited"] == 0


def test_bad_input_is_reported() -> None:
    base = pd.Series({"a": 1.0})
    with pytest.raises(SchemaError, match="'referred_id'"):
        influence_value(pd.DataFrame({"referrer_id": ["a"]}), base)
    with pytest.raises(ValidationError, match="line 2, column 'referred_id'"):
        influence_value(pd.DataFrame({"referrer_id": ["a", "a"], "referred_id": ["b", None]}), base)
    with pytest.raises(ValidationError, match="more than once"):
        influence_value(
            refs(("a", "b")), pd.DataFrame({"customer_id": ["b", "b"], "base_value": [1, 2]})
        )
    with pytest.raises(SchemaError, match="base_value"):
        influence_value(refs(("a", "b")), pd.DataFrame({"customer_id": ["a"]}))
    with pytest.raises(ValidationError, match="numbers"):
        influence_value(refs(("a", "b")), pd.Series({"a": "lots"}))


def test_integer_ids_match_string_ids() -> None:
    base = pd.DataFrame({"customer_id": [1, 2], "base_value": [0.0, 10.0]})
    frame = by_id(influence_value(pd.DataFrame({"referrer_id": [1], "referred_id": [2]}), base))
    assert frame.loc["1", "influence_value"] == pytest.approx(2.5)


def brute_force(
    pairs: pd.DataFrame, base: pd.Series, settings: InfluenceSettings
) -> dict[str, float]:
    """Per-customer reference: breadth-first search from every referrer."""
    ordered = pairs.sort_values(["referred_id", "ts", "referrer_id"], na_position="last")
    ordered = ordered[ordered["referrer_id"] != ordered["referred_id"]]
    credited = ordered.drop_duplicates("referred_id")
    children: dict[str, list[str]] = {}
    for referrer, referred in zip(credited["referrer_id"], credited["referred_id"], strict=True):
        children.setdefault(referrer, []).append(referred)
    values = base.to_dict()
    out: dict[str, float] = {}
    for root in children:
        seen = {root}
        frontier = [root]
        total = 0.0
        for depth in range(1, settings.max_depth + 1):
            following = []
            for node in frontier:
                for child in children.get(node, []):
                    if child not in seen:
                        seen.add(child)
                        following.append(child)
            weight = settings.share * settings.decay ** (depth - 1)
            total += weight * sum(values.get(c, 0.0) for c in following)
            frontier = following
        out[root] = total
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_graphs_match_a_breadth_first_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 60, 120
    ids = np.array([f"c{i:02d}" for i in range(n)])
    pairs = pd.DataFrame(
        {
            "referrer_id": ids[rng.integers(0, n, k)],
            # a few referred ids (c60 … c67) have no base value
            "referred_id": [f"c{i:02d}" for i in rng.integers(0, n + 8, k)],
            "ts": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 30, k), unit="D"),
        }
    )
    pairs.loc[rng.random(k) < 0.1, "ts"] = pd.NaT
    base = pd.Series(rng.normal(100, 50, n), index=ids)
    settings = InfluenceSettings(share=0.3, decay=0.6, max_depth=4)
    result = influence_value(pairs, base, settings)
    expected = brute_force(pairs, base, settings)
    frame = by_id(result)
    assert result.cycles > 0  # random graphs this dense have cycles
    for customer, value in expected.items():
        assert frame.loc[customer, "influence_value"] == pytest.approx(value)
    others = frame.index.difference(list(expected))
    assert (frame.loc[others, "influence_value"] == 0).all()


@pytest.mark.slow
def test_a_million_customers() -> None:
    rng = np.random.default_rng(7)
    n, k = 1_000_000, 150_000
    ids = pd.Series([f"C{i:07d}" for i in range(n)])
    base = pd.Series(rng.gamma(2.0, 50.0, n), index=ids)
    pairs = pd.DataFrame(
        {
            "referrer_id": ids.to_numpy()[rng.integers(0, n, k)],
            "referred_id": ids.to_numpy()[rng.integers(0, n, k)],
            "ts": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, k), "D"),
        }
    )
    result = influence_value(pairs, base)
    assert len(result.frame) == n
    assert result.credited + result.duplicates + result.self_referrals == k
    direct = result.frame["referred_customers"].to_numpy()
    assert direct.sum() == result.credited
    assert (result.frame["referred_total"] >= direct).all()
    # depth 1 alone passes exactly share × the value of every credited referred customer
    referred = result.frame["referred_by"].notna().to_numpy()
    first_level = influence_value(pairs, base, InfluenceSettings(max_depth=1))
    assert first_level.frame["influence_value"].sum() == pytest.approx(
        0.25 * base.to_numpy()[referred].sum()
    )
    assert result.frame["influence_value"].sum() > first_level.frame["influence_value"].sum()
