from __future__ import annotations

import datetime as dt
import itertools
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest

from cvm.config import RfmSettings, load_settings, settings_from_dict
from cvm.errors import ConfigError, SchemaError
from cvm.segments import RfmRules, load_rfm_rules, rfm
from cvm.segments.rfm import CODES

AS_OF = dt.date(2024, 12, 31)
SEGMENTS = [
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
]


def builtin_text() -> str:
    return files("cvm.segments").joinpath("rfm_segments.toml").read_text(encoding="utf-8")


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def frame(
    days: list[int], occasions: list[int | None], revenue: list[float | None]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:02d}" for i in range(len(days))],
            "last_purchase": [AS_OF - dt.timedelta(days=d) for d in days],
            "occasions": pd.array(occasions, dtype="Int64"),
            "revenue": revenue,
        }
    )


def scored(data: pd.DataFrame, settings: RfmSettings | None = None) -> pd.DataFrame:
    out = rfm(ibis.memtable(data), settings, as_of=AS_OF).to_pandas()
    return out.sort_values("customer_id").reset_index(drop=True)


# -- rules -------------------------------------------------------------------------------
def test_builtin_rules_put_each_of_the_125_codes_in_exactly_one_segment() -> None:
    rules = load_rfm_rules()
    assert [s.name for s in rules.segments] == SEGMENTS
    assert len(CODES) == 125 and CODES[0] == "111" and CODES[-1] == "555"
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        hits = [s.name for s in rules.segments if s.contains(r, f, m)]
        assert len(hits) == 1, (r, f, m, hits)
    mapping = rules.mapping()
    assert set(mapping) == set(CODES)
    assert set(mapping.values()) == set(SEGMENTS)


@pytest.mark.parametrize(
    ("code", "segment"),
    [
        ("555", "Champions"),
        ("545", "Champions"),
        ("544", "Champions"),
        ("543", "Potential Loyalist"),
        ("455", "Loyal"),
        ("345", "Loyal"),
        ("533", "Potential Loyalist"),
        ("413", "Potential Loyalist"),
        ("412", "Promising"),
        ("511", "New"),
        ("512", "New"),
        ("411", "Promising"),
        ("333", "Need Attention"),
        ("311", "About to Sleep"),
        ("255", "Can't Lose Them"),
        ("154", "Can't Lose Them"),
        ("144", "At Risk"),
        ("233", "At Risk"),
        ("221", "Hibernating"),
        ("111", "Lost"),
        ("123", "Lost"),
    ],
)
def test_builtin_grid(code: str, segment: str) -> None:
    assert load_rfm_rules().segment_of(code) == segment


def test_segment_of_rejects_a_bad_code() -> None:
    with pytest.raises(ValueError, match="three digits 1–5, got '605'"):
        load_rfm_rules().segment_of("605")


def test_a_gap_in_user_rules_names_the_codes(tmp_path: Path) -> None:
    text = builtin_text().replace('name = "Lost"', 'name = "Lost"\nf = [2, 5]')
    path = write_rules(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_rfm_rules(path)
    message = str(info.value)
    assert message.startswith(str(path))
    # R 1, F 1 and FM ≤ 2.5: 111, 112, 113, 114.
    assert "codes in no segment: 111, 112, 113, 114" in message
    assert "more than one" not in message


def test_an_overlap_in_user_rules_names_the_codes_and_segments(tmp_path: Path) -> None:
    text = builtin_text().replace(
        'name = "Hibernating"\ndescription = "last purchase long ago, few purchases and low '
        'spend"\nr = [2, 2]',
        'name = "Hibernating"\nr = [1, 2]',
    )
    assert text != builtin_text()
    with pytest.raises(
        ConfigError,
        match=r"codes in more than one segment: 111 \('Hibernating' "
        r"and 'Lost'\), 112 \('Hibernating' and 'Lost'\)",
    ):
        load_rfm_rules(write_rules(tmp_path, text))


def test_a_small_complete_rule_set_is_valid(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        '[[segment]]\nname = "Recent"\nr = [4, 5]\n\n'
        '[[segment]]\nname = "Valuable"\nr = [1, 3]\nm = [4, 5]\n\n'
        '[[segment]]\nname = "Other"\nr = [1, 3]\nm = [1, 3]\ndescription = "the rest"\n',
    )
    rules = load_rfm_rules(path)
    assert isinstance(rules, RfmRules) and rules.source == str(path)
    assert rules.segment_of("511") == "Recent"
    assert rules.segment_of("315") == "Valuable"
    assert rules.segment_of("155") == "Valuable"
    assert rules.segment_of("353") == "Other"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"no segments: expected one \[\[segment\]\] table"),
        ('[[segment]]\nname = "A"\nr = [0, 5]\n', r"key 'segment\[1\].r'.*1 ≤ low ≤ high ≤ 5"),
        ('[[segment]]\nname = "A"\nr = [4, 2]\n', r"key 'segment\[1\].r'.*1 ≤ low ≤ high ≤ 5"),
        ('[[segment]]\nname = "A"\nfm = [1, 2, 3]\n', r"segment\[1\].fm'.*range \[low, high\]"),
        ('[[segment]]\nname = "A"\nm = ["1", "5"]\n', r"segment\[1\].m'.*two numbers"),
        ('[[segment]]\nname = "A"\nrecency = [1, 5]\n', r"key 'segment\[1\].recency': unknown"),
        ("[[segment]]\nr = [1, 5]\n", r"key 'segment\[1\].name': a segment needs a name"),
        ('[[segment]]\nname = "A"\n[[segment]]\nname = "A"\n', r"names must be unique: 'A'"),
        ('[[segmnt]]\nname = "A"\n', r"key 'segmnt': unknown key"),
        ("[[segment]\n", r"not valid TOML"),
    ],
)
def test_malformed_rules_files_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_rfm_rules(write_rules(tmp_path, text))


def test_a_missing_rules_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: RFM rules file not found"):
        load_rfm_rules(tmp_path / "nope.toml")


def test_the_rules_file_is_shipped_with_the_package() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text("utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["cvm"]
    assert "segments/*.toml" in patterns


# -- scores ------------------------------------------------------------------------------
def test_scores_codes_and_segments_on_distinct_values() -> None:
    # Ten customers: two per quintile of each measure, R reversed (fewer days, higher R).
    data = frame(
        days=[5, 15, 25, 35, 45, 55, 65, 75, 85, 95],
        occasions=[10, 9, 8, 7, 6, 5, 4, 3, 2, 1],
        revenue=[50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 450.0, 500.0],
    )
    out = scored(data)
    assert out["r_score"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert out["f_score"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert out["m_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert out["rfm_code"].tolist() == [
        "551", "551", "442", "442", "333", "333", "224", "224", "115", "115"
    ]  # fmt: skip
    assert out["rfm_segment"].tolist() == [
        "Potential Loyalist", "Potential Loyalist", "Potential Loyalist", "Potential Loyalist",
        "Need Attention", "Need Attention", "At Risk", "At Risk", "At Risk", "At Risk",
    ]  # fmt: skip
    assert {c: str(t) for c, t in out.dtypes.items() if c.endswith("_score")} == {
        "r_score": "int64",
        "f_score": "int64",
        "m_score": "int64",
    }


def test_quintile_sizes_follow_ntile_for_any_count() -> None:
    # ntile(5) over 7 rows: groups of 2, 2, 1, 1, 1.
    data = frame(days=list(range(7)), occasions=list(range(1, 8)), revenue=[1.0] * 7)
    out = scored(data)
    assert out["f_score"].tolist() == [1, 1, 2, 2, 3, 4, 5]
    # R orders the most days first: days 6, 5 → R 1; 4, 3 → R 2; then 2, 1, 0.
    assert out["r_score"].tolist() == [5, 4, 3, 2, 2, 1, 1]


def test_ties_share_a_score_by_default_and_split_by_customer_id_on_request() -> None:
    data = frame(
        days=[10] * 10,
        occasions=[1, 1, 1, 1, 1, 1, 2, 2, 3, 9],
        revenue=[float(v) for v in range(10)],
    )
    shared = scored(data)
    # Six one-time buyers: all F 1; the 2s start at position 6, the 4th quintile.
    assert shared["f_score"].tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert shared["r_score"].tolist() == [1] * 10
    split = scored(data, RfmSettings(ties="split"))
    assert split["f_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert split["r_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert split["m_score"].tolist() == shared["m_score"].tolist()


def test_monetary_can_be_mean_spend() -> None:
    data = frame(
        days=[1, 2, 3, 4, 5],
        occasions=[1, 10, 2, 4, 0],
        revenue=[100.0, 500.0, 60.0, 400.0, 0.0],
    )
    assert scored(data)["m_score"].tolist() == [3, 5, 2, 4, 1]
    # Mean spend: 100, 50, 30, 100, 0 (no occasions → 0).
    mean = scored(data, RfmSettings(monetary="mean_spend"))
    assert mean["m_score"].tolist() == [4, 3, 2, 4, 1]


def test_missing_values_count_as_lowest() -> None:
    data = frame(
        days=[1, 2, 3, 4, 5], occasions=[3, None, 1, 2, 4], revenue=[5.0, 4.0, None, 2.0, 1.0]
    )
    data.loc[0, "last_purchase"] = None
    out = scored(data)
    assert out.loc[0, "r_score"] == 1 and out.loc[1, "r_score"] == 5
    assert out.loc[1, "f_score"] == 1
    assert out.loc[2, "m_score"] == 1


def test_split_scores_equal_sql_ntile_and_shared_scores_equal_ntile_of_the_first_tied() -> None:
    rng = np.random.default_rng(42)
    n = 997
    data = pd.DataFrame(
        {
            "customer_id": [f"k{v:04d}" for v in rng.permutation(n)],
            "last_purchase": [AS_OF - dt.timedelta(days=int(d)) for d in rng.integers(0, 60, n)],
            "occasions": rng.geometric(0.5, n),
            "revenue": rng.choice([5.0, 10.0, 20.0, 35.5, 80.0], n),
        }
    )
    table = ibis.memtable(data)
    days = ibis.date(AS_OF).delta(table.last_purchase, unit="day")
    cid = table.customer_id
    reference = (
        table.select(
            "customer_id",
            r=ibis.ntile(5).over(order_by=[(-days).asc(), cid]) + 1,
            f=ibis.ntile(5).over(order_by=[table.occasions, cid]) + 1,
            m=ibis.ntile(5).over(order_by=[table.revenue, cid]) + 1,
            r_first=ibis.rank().over(order_by=(-days).asc()),
            f_first=ibis.rank().over(order_by=table.occasions),
            m_first=ibis.rank().over(order_by=table.revenue),
        )
        .to_pandas()
        .set_index("customer_id")
        .sort_index()
    )
    split = rfm(table, RfmSettings(ties="split"), as_of=AS_OF).to_pandas()
    split = split.set_index("customer_id").sort_index()
    for name in "rfm":
        assert split[f"{name}_score"].tolist() == reference[name].tolist(), name
    # ntile of the tied group's first position
    q, rem = divmod(n, 5)
    ends = np.array([(g + 1) * q + min(g + 1, rem) for g in range(5)])
    shared = rfm(table, as_of=AS_OF).to_pandas().set_index("customer_id").sort_index()
    for name in "rfm":
        first = reference[f"{name}_first"].to_numpy()
        expected = np.searchsorted(ends, first, side="right") + 1
        assert shared[f"{name}_score"].tolist() == expected.tolist(), name
    codes = shared["r_score"] * 100 + shared["f_score"] * 10 + shared["m_score"]
    assert shared["rfm_code"].tolist() == codes.astype(str).tolist()
    mapping = load_rfm_rules().mapping()
    assert shared["rfm_segment"].tolist() == [mapping[c] for c in shared["rfm_code"]]


def test_rules_from_the_settings_file(tmp_path: Path) -> None:
    write_rules(
        tmp_path,
        '[[segment]]\nname = "Fresh"\nr = [3, 5]\n[[segment]]\nname = "Stale"\nr = [1, 2]\n',
    )
    (tmp_path / "cvm.toml").write_text('[segments.rfm]\nrules = "rules.toml"\n', encoding="utf-8")
    settings = load_settings(tmp_path / "cvm.toml")
    path = settings.segments.rfm.rules_path(tmp_path)
    assert path == tmp_path / "rules.toml"
    rules = load_rfm_rules(path)
    data = frame(days=[1, 2, 3, 4, 5], occasions=[1] * 5, revenue=[1.0] * 5)
    out = rfm(ibis.memtable(data), settings.segments.rfm, as_of=AS_OF, rules=rules).to_pandas()
    out = out.sort_values("customer_id")
    assert out["rfm_segment"].tolist() == ["Fresh", "Fresh", "Fresh", "Stale", "Stale"]
    assert RfmSettings().rules_path(tmp_path) is None
    # Without explicit rules, a bad configured file is reported.
    bad = RfmSettings(rules=str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml: RFM rules file not found"):
        rfm(ibis.memtable(data), bad, as_of=AS_OF)


def test_missing_columns_are_an_error() -> None:
    data = frame(days=[1], occasions=[1], revenue=[1.0]).drop(columns=["occasions"])
    with pytest.raises(SchemaError, match="RFM needs the column\\(s\\) 'occasions'"):
        rfm(ibis.memtable(data), as_of=AS_OF)


@pytest.mark.parametrize(
    ("rfm_settings", "key"),
    [
        ({"monetary": "profit"}, "monetary"),
        ({"ties": "random"}, "ties"),
        ({"rules": 3}, "rules"),
        ({"quintiles": 4}, "quintiles"),
    ],
)
def test_invalid_rfm_settings_name_the_key(rfm_settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"key 'segments.rfm.{key}'")):
        settings_from_dict({"segments": {"rfm": rfm_settings}})
