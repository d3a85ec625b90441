from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest

from cvm.config import ScoreSettings, Settings, load_settings, settings_from_dict
from cvm.errors import ConfigError, SchemaError
from cvm.value.score import value_score


def run(table: Any) -> pd.DataFrame:
    return table.to_pandas().sort_values("customer_id").reset_index(drop=True)


def with_json(frame: pd.DataFrame) -> Any:
    table = ibis.memtable(frame)
    return table.mutate(attributes=table.attributes.cast("json"))


def test_default_score_is_total_value_with_missing_and_null_values_as_zero() -> None:
    customers = ibis.memtable(
        {
            "customer_id": ["a", "b", "c"],
            "realized_value": [10.0, None, -4.0],
            "potential_value": [2.5, 7.0, None],
        }
    )
    out = run(value_score(customers))
    assert list(out.columns) == [
        "customer_id",
        "realized_value",
        "potential_value",
        "total_value",
        "value_score",
    ]
    assert out["total_value"].tolist() == [12.5, 7.0, -4.0]
    assert out["value_score"].tolist() == out["total_value"].tolist()


def test_only_realized_value_is_enough() -> None:
    customers = ibis.memtable({"customer_id": ["a", "b"], "realized_value": [3, 4]})
    out = run(value_score(customers, ScoreSettings()))
    assert out["total_value"].tolist() == [3.0, 4.0]
    assert out["value_score"].tolist() == [3.0, 4.0]


def test_weights_apply_per_dimension_and_a_left_out_weight_stays_one() -> None:
    customers = ibis.memtable(
        {
            "customer_id": ["a", "b"],
            "realized_value": [100.0, 10.0],
            "potential_value": [50.0, 200.0],
            "influence_value": [20.0, None],
        }
    )
    settings = ScoreSettings(weights={"realized": 2.0, "potential": 0.5})
    assert settings.weights == {"realized": 2.0, "potential": 0.5, "influence": 1.0}
    out = run(value_score(customers, settings))
    assert out["total_value"].tolist() == [170.0, 210.0]
    # a: 2·100 + 0.5·50 + 1·20 = 245; b: 2·10 + 0.5·200 + 0 = 120
    assert out["value_score"].tolist() == [245.0, 120.0]


def test_attributes_in_the_customers_table_add_strategic_weight() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f"],
            "realized_value": [100.0, 100.0, 100.0, 100.0, 100.0, 100.0],
            "attributes": [
                json.dumps({"key_account": "true", "employees": "250"}),
                json.dumps({"key_account": False, "employees": 12.5}),
                json.dumps({"key_account": "Yes", "employees": "many"}),
                json.dumps({"other": 1}),
                None,
                json.dumps({"key_account": "no", "employees": " 40 "}),
            ],
        }
    )
    settings = ScoreSettings(attributes={"key_account": 5000.0, "employees": 2.0})
    out = run(value_score(with_json(frame), settings))
    assert out["total_value"].tolist() == [100.0] * 6
    assert out["value_score"].tolist() == [
        100 + 5000 + 500,  # true, "250"
        100 + 0 + 25,  # false, 12.5
        100 + 5000 + 0,  # "Yes", "many" is not a number
        100.0,  # keys missing
        100.0,  # no attributes at all
        100 + 0 + 80,  # "no", " 40 "
    ]


def test_attributes_from_a_separate_customers_table() -> None:
    snapshot = ibis.memtable({"customer_id": ["a", "b", "c"], "realized_value": [1.0, 2.0, 3.0]})
    attributes = with_json(
        pd.DataFrame(
            {
                "customer_id": ["a", "c", "z"],
                "attributes": [json.dumps({"vip": 1}), json.dumps({"vip": "2"}), "{}"],
            }
        )
    )
    settings = ScoreSettings(weights={"realized": 0.0}, attributes={"vip": 10.0})
    out = run(value_score(snapshot, settings, attributes=attributes))
    assert list(out.columns) == ["customer_id", "realized_value", "total_value", "value_score"]
    assert out["value_score"].tolist() == [10.0, 0.0, 20.0]  # b has no row: 0
    assert out["total_value"].tolist() == [1.0, 2.0, 3.0]


def test_attribute_weights_without_attributes_is_an_error() -> None:
    snapshot = ibis.memtable({"customer_id": ["a"], "realized_value": [1.0]})
    settings = ScoreSettings(attributes={"key_account": 5000.0})
    with pytest.raises(SchemaError, match=r"'key_account' but the customers have no attributes"):
        value_score(snapshot, settings)
    bad = ibis.memtable({"id": ["a"], "attributes": ["{}"]})
    with pytest.raises(SchemaError, match="lacks customer_id"):
        value_score(snapshot, settings, attributes=bad)


def test_a_table_without_customer_id_is_an_error() -> None:
    with pytest.raises(SchemaError, match="no 'customer_id' column"):
        value_score(ibis.memtable({"id": ["a"], "realized_value": [1.0]}))


def test_score_settings_come_from_cvm_toml(tmp_path: Path) -> None:
    path = tmp_path / "cvm.toml"
    path.write_text(
        "[value.score]\nweights = { potential = 0.5 }\nattributes = { key_account = 5000 }\n",
        encoding="utf-8",
    )
    score = load_settings(path).value.score
    assert score.weights == {"realized": 1.0, "potential": 0.5, "influence": 1.0}
    assert score.attributes == {"key_account": 5000.0}
    assert Settings().value.score == ScoreSettings()


@pytest.mark.parametrize(
    ("score", "message"),
    [
        ({"weights": {"realised": 1.0}}, r"weights'.*unknown value dimension 'realised'"),
        ({"weights": {"potential": float("inf")}}, r"weights'.*'potential' must be a finite"),
        ({"attributes": {"a.b": 1.0}}, r"attributes'.*attribute name 'a.b'"),
        ({"attributes": {"vip": float("nan")}}, r"attributes'.*'vip' must be a finite"),
        ({"weights": {"realized": "1"}}, r"weights.realized'"),
    ],
)
def test_invalid_score_settings_name_the_key(score: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"key 'value\.score\." + message):
        settings_from_dict({"value": {"score": score}})
