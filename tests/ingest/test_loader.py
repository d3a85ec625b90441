from __future__ import annotations

from pathlib import Path

import pytest

from cvm import Store
from cvm.ingest import ingest_transactions, loader


def test_a_file_loaded_before_is_not_parsed_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.csv"
    path.write_text("customer_id,ts,amount\n1,2020-01-01,5\n,2020-01-02,6\n2,2020-01-03,7\n")
    first = ingest_transactions(store, path)

    def must_not_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was parsed again")

    monkeypatch.setattr(loader, "stage_source", must_not_parse)
    again = ingest_transactions(store, path)
    assert again.already_ingested
    assert (again.read, again.duplicates, again.loaded) == (first.read, 3, 0)
    assert again.batch_id == first.batch_id
    assert store.count("ingest_log") == 1


def test_the_same_frame_twice_writes_nothing(store: Store) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "ts": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "amount": [1.0, 2.0],
        }
    )
    ingest_transactions(store, frame)
    again = ingest_transactions(store, frame)
    assert again.already_ingested and again.duplicates == 2 == again.read
    assert store.count("transactions") == 2
