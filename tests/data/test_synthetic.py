"""The synthetic relationship-data generator (cvm.data.synthetic)."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Store
from cvm.data._phones import _PHONE_PLANS
from cvm.data.synthetic import (
    CUSTOMER_COLUMNS,
    KIND_COSTS,
    SyntheticData,
    generate_relationship_data,
    online_retail_transactions,
    write_synthetic,
)
from cvm.errors import SchemaError
from cvm.ingest import ingest
from cvm.ingest.mapping import CUSTOMER_FIELDS
from cvm.store.schema import INPUT_COLUMNS

TABLES = ("customers", "identities", "interactions", "surveys", "referrals", "identity_truth")


@pytest.fixture(scope="module")
def retail() -> pd.DataFrame:
    return online_retail_transactions()


@pytest.fixture(scope="module")
def data(retail: pd.DataFrame) -> SyntheticData:
    return generate_relationship_data(retail, seed=7)


@pytest.fixture(scope="module")
def first_purchase(retail: pd.DataFrame) -> pd.Series:
    return retail[retail["amount"] > 0].groupby("customer_id")["ts"].min()


@pytest.fixture(scope="module")
def purchase_days(retail: pd.DataFrame) -> pd.Series:
    bought = retail[retail["amount"] > 0]
    return bought.groupby("customer_id")["ts"].agg(lambda ts: ts.dt.normalize().nunique())


def resolved_customer(data: SyntheticData) -> pd.Series:
    """Customer id of every interaction, with call-centre ids replaced by the answer key."""
    truth = data.identity_truth.set_index("source_id")["customer_id"]
    ids = data.interactions["customer_id"]
    return ids.map(truth).fillna(ids)


def test_online_retail_transactions_are_the_bundled_real_data(retail: pd.DataFrame) -> None:
    raw = pd.read_parquet(shared("online_retail.parquet"))
    with_id = raw[raw["customer_id"].notna()]
    assert list(retail.columns) == ["customer_id", "ts", "amount", "transaction_id", "country"]
    assert len(retail) == len(with_id) == 406_829
    assert retail["customer_id"].nunique() == 4_372
    assert set(retail["customer_id"]) == {str(int(c)) for c in with_id["customer_id"]}
    expected = (with_id["quantity"] * with_id["unit_price"]).sum()
    assert retail["amount"].sum() == pytest.approx(expected)
    assert (retail["amount"] < 0).sum() == (with_id["quantity"] < 0).sum()


def test_same_seed_same_data_other_seed_other_data(
    retail: pd.DataFrame, data: SyntheticData
) -> None:
    again = generate_relationship_data(retail, seed=7)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(data, name), getattr(again, name))
    assert dict(again.counts) == dict(data.counts)
    other = generate_relationship_data(retail, seed=8)
    for name in ("identities", "interactions", "surveys", "referrals"):
        assert not getattr(data, name).equals(getattr(other, name)), name
    assert not data.customers["phone"].equals(other.customers["phone"])
    assert list(other.customers["customer_id"]) == list(data.customers["customer_id"])


def test_row_order_of_the_input_does_not_matter(retail: pd.DataFrame) -> None:
    some = retail[retail["customer_id"] < "12600"]
    shuffled = some.sample(frac=1.0, random_state=3)
    one = generate_relationship_data(some, seed=5)
    two = generate_relationship_data(shuffled, seed=5)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name))


def test_tables_have_the_canonical_columns(data: SyntheticData) -> None:
    assert list(data.customers.columns) == list(CUSTOMER_COLUMNS)
    assert [f.name for f in CUSTOMER_FIELDS] == list(CUSTOMER_COLUMNS[:6])
    for name in ("identities", "interactions", "surveys", "referrals"):
        assert list(getattr(data, name).columns) == list(INPUT_COLUMNS[name]), name
    assert data.customers["synthetic"].eq(True).all()
    assert data.as_of == dt.date(2011, 12, 9)


def test_every_id_is_a_real_customer_or_a_mapped_callcentre_id(
    retail: pd.DataFrame, data: SyntheticData
) -> None:
    real = set(retail["customer_id"])
    assert set(data.customers["customer_id"]) == real
    assert data.customers["customer_id"].is_unique
    callcentre = set(data.identities["source_id"])
    assert all(i.startswith("CC-") for i in callcentre)
    assert data.identities["customer_id"].isna().all()
    truth = data.identity_truth
    assert set(truth["source_id"]) == callcentre
    assert truth["source_id"].is_unique
    assert set(truth["customer_id"]) <= real
    ids = set(data.interactions["customer_id"])
    assert ids <= real | callcentre
    assert ids & callcentre, "some interactions are filed under call-centre ids"
    assert set(data.surveys["customer_id"]) <= real
    assert set(data.referrals["referrer_id"]) | set(data.referrals["referred_id"]) <= real
    under_cc = data.interactions[data.interactions["customer_id"].str.startswith("CC-")]
    assert len(under_cc) == data.counts["interactions_under_callcentre_id"]
    assert set(under_cc["channel"]) == {"phone"}


def _phone_key(value: str, country: str) -> str:
    """E.164 digits of a phone written in any of the generated formats."""
    digits = re.sub(r"\D", "", value)
    if value.lstrip().startswith("+"):
        return digits
    code, _, template = _PHONE_PLANS.get(country, _PHONE_PLANS["United Kingdom"])
    if template is not None and template.startswith("0"):
        digits = digits.removeprefix("0")
    return code + digits


def _key_index(customers: pd.DataFrame) -> dict[str, dict[str, set[str]]]:
    index: dict[str, dict[str, set[str]]] = {
        "phone": defaultdict(set),
        "email": defaultdict(set),
        "card": defaultdict(set),
    }
    for row in customers.itertuples():
        if isinstance(row.phone, str):
            index["phone"][_phone_key(row.phone, row.country)].add(row.customer_id)
        if isinstance(row.email, str):
            index["email"][row.email.strip().lower()].add(row.customer_id)
        if isinstance(row.loyalty_card, str):
            index["card"][row.loyalty_card.replace("-", "")].add(row.customer_id)
    return index


def test_callcentre_records_match_their_customer_once_normalised(data: SyntheticData) -> None:
    index = _key_index(data.customers)
    records = data.identities.merge(data.identity_truth, on=["source", "source_id"])
    keys = ["email", "phone", "loyalty_card"]
    assert records[keys].notna().any(axis=1).all(), "every record has a key"
    formats = set()
    for row in records.itertuples():
        found: dict[str, set[str]] = {}
        if isinstance(row.phone, str):
            found["phone"] = index["phone"][_phone_key(row.phone, "United Kingdom")]
            formats.add("national" if row.phone[0] == "0" else "e164")
        if isinstance(row.email, str):
            found["email"] = index["email"][row.email.strip().lower()]
        if isinstance(row.loyalty_card, str):
            found["card"] = index["card"][row.loyalty_card.replace("-", "")]
        truth = row.customer_id_y
        if row.case in ("unique", "duplicate_record"):
            assert all(hits == {truth} for hits in found.values()), row
        elif row.case == "shared_phone":
            assert set(found) == {"phone"}
            assert truth in found["phone"] and len(found["phone"]) in (2, 3, 4)
        else:
            assert row.case == "conflict"
            assert found["phone"] == {truth}
            assert len(found["email"]) == 1 and truth not in found["email"]
    assert formats == {"national", "e164"}
    # Customers' own phones mix national and international formats.
    phones = data.customers["phone"].dropna()
    assert 0.3 < phones.str.startswith("+").mean() < 0.7


def test_ambiguous_identities_are_present_as_documented(data: SyntheticData) -> None:
    counts = data.counts
    assert counts["shared_phone_groups"] == 3
    assert counts["shared_phone_customers"] == counts["shared_phone_records"] == 9
    assert counts["conflicting_records"] == 3
    cases = data.identity_truth["case"].value_counts()
    assert cases["shared_phone"] == 9
    assert cases["conflict"] == 3
    assert cases["duplicate_record"] == 2 * counts["callcentre_duplicate_records"] > 0
    index = _key_index(data.customers)
    shared_sizes = sorted(len(ids) for ids in index["phone"].values() if len(ids) > 1)
    assert shared_sizes == [2, 3, 4]
    assert all(len(ids) == 1 for ids in index["email"].values())
    assert all(len(ids) == 1 for ids in index["card"].values())
    assert len(data.identities) == counts["callcentre_records"]


def test_referrals_follow_the_timing_rule(
    data: SyntheticData, first_purchase: pd.Series, purchase_days: pd.Series
) -> None:
    refs = data.referrals
    self_referrals = refs[refs["referrer_id"] == refs["referred_id"]]
    assert len(self_referrals) == data.counts["referrals_self"] == 1
    pairs = refs[refs["referrer_id"] != refs["referred_id"]]
    duplicated = pairs.duplicated(["referrer_id", "referred_id"])
    assert duplicated.sum() == data.counts["referrals_duplicate"] == 2
    assert pairs.duplicated().sum() == 1, "one duplicate is an identical row"
    genuine = pairs[~duplicated]
    assert genuine["referred_id"].is_unique
    referrer_first = genuine["referrer_id"].map(first_purchase)
    referred_first = genuine["referred_id"].map(first_purchase)
    assert (referrer_first < referred_first).all()
    assert (referrer_first < genuine["ts"]).all()
    assert (genuine["ts"] <= referred_first).all()
    assert (referred_first - genuine["ts"] <= pd.Timedelta(days=14)).all()
    share = genuine["referred_id"].nunique() / len(data.customers)
    assert 0.05 <= share <= 0.10
    per_referrer = genuine["referrer_id"].value_counts()
    assert (per_referrer >= 2).sum() == data.counts["referrers_with_several"] > 10
    chains = genuine["referrer_id"].isin(genuine["referred_id"]).sum()
    assert chains == data.counts["referral_chains"] > 0
    # Referrers buy more often than the customers they could have been.
    assert purchase_days[per_referrer.index].median() > purchase_days.median()
    channel = data.customers.set_index("customer_id")["acquisition_channel"]
    assert (channel[genuine["referred_id"]] == "referral").all()
    assert (channel == "referral").sum() == len(genuine)
    acquired = data.customers.set_index("customer_id")["acquired_at"]
    assert (acquired[genuine["referred_id"]].to_numpy() >= genuine["ts"].to_numpy()).all()


@pytest.mark.parametrize("seed", [7, 11, 12345])
def test_nps_is_in_range_and_realistic(retail: pd.DataFrame, seed: int) -> None:
    data = generate_relationship_data(retail, seed=seed)
    nps = data.surveys["nps"]
    assert nps.notna().all()
    assert nps.between(0, 10).all() and (nps == nps.round()).all()
    csat = data.surveys["csat"].dropna()
    assert csat.between(1, 5).all() and (csat == csat.round()).all()
    assert 0.0 <= data.nps() <= 40.0
    manual = 100 * ((nps >= 9).mean() - (nps <= 6).mean())
    assert data.nps() == pytest.approx(manual)
    assert 0.15 < data.surveys["customer_id"].nunique() / len(data.customers) < 0.35


def test_nps_follows_experience_and_frequency(
    data: SyntheticData, purchase_days: pd.Series
) -> None:
    owner = resolved_customer(data)
    unresolved = owner[data.interactions["resolved"].eq(False).fillna(False)].value_counts()
    surveys = data.surveys.assign(
        unresolved=data.surveys["customer_id"].map(unresolved).fillna(0),
        days=data.surveys["customer_id"].map(purchase_days).fillna(0),
    )
    detractors = surveys[surveys["nps"] <= 6]
    promoters = surveys[surveys["nps"] >= 9]
    assert detractors["unresolved"].mean() > 2 * promoters["unresolved"].mean()
    assert promoters["days"].median() > detractors["days"].median()
    assert surveys["nps"].corr(surveys["csat"], method="spearman") > 0.5


def test_interactions_rise_with_activity_and_returns(
    retail: pd.DataFrame, data: SyntheticData, purchase_days: pd.Series
) -> None:
    ids = data.customers["customer_id"]
    owner = resolved_customer(data)
    per_customer = owner.value_counts().reindex(ids, fill_value=0)
    days = purchase_days.reindex(ids, fill_value=0)
    assert per_customer.corr(days, method="spearman") > 0.3
    quartile = pd.qcut(days.rank(method="first"), 4, labels=False)
    means = per_customer.groupby(quartile.to_numpy()).mean()
    assert means.is_monotonic_increasing and means.iloc[-1] > 3 * means.iloc[0]
    returners = set(retail.loc[retail["amount"] < 0, "customer_id"])
    with_ticket = set(owner[data.interactions["kind"] == "ticket"])
    is_returner = ids.isin(returners)
    ticket_rate = ids.isin(with_ticket)
    assert ticket_rate[is_returner].mean() > 2 * ticket_rate[~is_returner].mean()


def test_interactions_are_plausible(
    retail: pd.DataFrame, data: SyntheticData, first_purchase: pd.Series
) -> None:
    inter = data.interactions
    assert set(inter["kind"]) == set(KIND_COSTS)
    for kind, (low, high) in KIND_COSTS.items():
        assert inter.loc[inter["kind"] == kind, "cost"].between(low, high).all(), kind
    assert inter.loc[inter["kind"] == "visit", "resolved"].isna().all()
    assert inter.loc[inter["kind"] != "visit", "resolved"].notna().all()
    csat = inter["csat"].dropna()
    assert csat.between(1, 5).all() and 0.25 < len(csat) / len(inter) < 0.5
    unresolved = inter["resolved"].eq(False).fillna(False)
    assert inter.loc[unresolved, "csat"].mean() < inter.loc[~unresolved, "csat"].mean() - 1
    first_seen = retail.groupby("customer_id")["ts"].min()
    owner = resolved_customer(data)
    assert (inter["ts"].to_numpy() >= owner.map(first_seen).to_numpy()).all()
    end = pd.Timestamp(data.as_of) + pd.Timedelta(days=1)
    for table in (inter, data.surveys, data.referrals):
        assert (table["ts"] < end).all()
        assert (table["ts"].dt.second == 0).all()


def test_as_of_cuts_the_data(retail: pd.DataFrame) -> None:
    cut = generate_relationship_data(retail, seed=7, as_of=dt.date(2011, 3, 31))
    before = retail[retail["ts"] < pd.Timestamp("2011-04-01")]
    assert set(cut.customers["customer_id"]) == set(before["customer_id"])
    for table in (cut.interactions, cut.surveys, cut.referrals):
        assert table["ts"].max() < pd.Timestamp("2011-04-01")
    assert cut.as_of == dt.date(2011, 3, 31)


def test_missing_column_is_a_schema_error(retail: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match=r"missing \['amount'\]"):
        generate_relationship_data(retail.drop(columns="amount"))
    with pytest.raises(ValueError, match="home_country must be one of"):
        generate_relationship_data(retail, home_country="Atlantis")


def test_phone_plans_are_consistent() -> None:
    codes = {code for code, _, _ in _PHONE_PLANS.values()}
    for country, (code, prefix, template) in _PHONE_PLANS.items():
        assert code.isdigit() and prefix.isdigit(), country
        if template is not None:
            assert template.count("#") == len(prefix) + 7, country
    # E.164 country codes are prefix-free, so E.164 numbers cannot collide across countries.
    assert not any(a != b and b.startswith(a) for a in codes for b in codes)


def test_written_files_are_labelled_synthetic(data: SyntheticData, tmp_path: Path) -> None:
    paths = write_synthetic(data, tmp_path / "out")
    assert set(paths) == {*TABLES, "readme"}
    for name in TABLES:
        assert paths[name].name == f"synthetic_{name}.csv"
        back = pd.read_csv(paths[name], dtype=str, keep_default_na=False)
        assert list(back.columns) == list(getattr(data, name).columns)
        assert len(back) == len(getattr(data, name))
    customers = pd.read_csv(paths["customers"], dtype=str)
    assert (customers["synthetic"] == "True").all()
    assert customers["acquired_at"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    readme = paths["readme"].read_text(encoding="utf-8")
    assert readme.startswith("# SYNTHETIC relationship data")
    assert "seed **7**" in readme and "2011-12-09" in readme
    assert f"| `synthetic_interactions.csv` | {len(data.interactions):,} |" in readme
    assert "| shared_phone_groups | 3 |" in readme and "| referrals_self | 1 |" in readme
    assert f"NPS of the surveys: {data.nps():+.1f}" in readme


def test_written_files_load_into_a_store(data: SyntheticData, tmp_path: Path) -> None:
    paths = write_synthetic(data, tmp_path)
    with Store(tmp_path / "s.duckdb") as store:
        for name in ("customers", "interactions", "surveys", "referrals", "identities"):
            report = ingest(store, paths[name], table=name)
            assert report.read == len(getattr(data, name)), name
            assert report.quarantined == 0, (name, report.reasons)
            assert report.loaded == report.read - (1 if name == "referrals" else 0), name


def _big_transactions(customers: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    per_customer = rng.geometric(0.25, customers)
    owner = np.repeat(np.arange(customers), per_customer)
    start = pd.Timestamp("2021-01-01").value
    ts = start + rng.integers(0, 730 * 86_400, owner.size) * 1_000_000_000
    amount = rng.lognormal(3.0, 1.0, owner.size) * np.where(rng.random(owner.size) < 0.03, -1, 1)
    return pd.DataFrame(
        {"customer_id": [f"u{i}" for i in owner], "ts": pd.to_datetime(ts), "amount": amount}
    )


@pytest.mark.slow
def test_runs_on_100k_customers(tmp_path: Path) -> None:
    transactions = _big_transactions(100_000, seed=1)
    data = generate_relationship_data(transactions, seed=3)
    assert len(data.customers) == 100_000
    assert data.customers["phone"].dropna().str.startswith(("+44", "07")).all()
    assert data.counts["shared_phone_groups"] == 3
    assert 0.05 <= data.counts["referred_customers"] / 100_000 <= 0.10
    assert len(data.interactions) > 100_000
    ids = set(data.customers["customer_id"]) | set(data.identities["source_id"])
    assert set(data.interactions["customer_id"]) <= ids
    paths = write_synthetic(data, tmp_path)
    assert paths["interactions"].stat().st_size > 0
