"""Cross-sell and up-sell from co-purchases: product affinity and top-N recommendations.

When transactions carry a ``product_id``, products bought together say which product
a customer is likely to want next. Everything here is set-based Ibis (one plan per
result, no loop over customers), so it runs in the store's engine — DuckDB by default,
PySpark or any other Ibis backend unchanged.

Method (in full in ``docs/cross-sell.md``)
------------------------------------------
Purchase lines
    Lines with a product id, a positive amount and (when given) a positive quantity,
    on or before ``as_of``. Returns and cancellations (negative lines) and free lines
    are not purchases; lines whose product id matches ``exclude_products`` (postage,
    fees, manual lines, vouchers; ignoring case, ``*`` and ``?`` as wildcards) and
    products in more than ``max_basket_share`` of all baskets are not products.
Co-purchase unit
    ``level = "customer"`` (the default): two products are bought together when one
    customer bought both, at any time up to ``as_of`` — the signal a cross-sell offer
    uses, and far denser than baskets. ``level = "basket"``: when one basket holds
    both, a basket being a ``transaction_id`` of one customer (a customer-day when
    the id is missing) — classical market-basket analysis.
Association measures (Agrawal, Imieliński & Swami 1993; Brin et al. 1997)
    With ``N`` units (customers or baskets), ``n(A)`` units holding product A and
    ``n(A, B)`` units holding both: support ``n(A, B) / N``, confidence of the rule
    A → B ``n(A, B) / n(A)`` (an estimate of P(B | A)) and lift
    ``n(A, B) · N / (n(A) · n(B))`` (> 1: bought together more often than chance).
    A pair is kept when ``n(A, B) ≥ min_pair_count`` and its support reaches
    ``min_support``; a rule when its confidence and lift reach ``min_confidence`` and
    ``min_lift``; then the ``rules_per_product`` strongest rules of each antecedent.
Recommendations
    Products the customer has not bought (any line of the product, returns included,
    counts as bought: no offer of what they sent back), scored by the ``aggregate``
    (sum or max) of the ``score`` measure (confidence or lift) of the rules from the
    products they bought — item-based top-N recommendation (Sarwar et al. 2001;
    Deshpande & Karypis 2004). Ties go to the product more rules point to, then the
    more popular one, then the smaller id. The default, the maximum confidence (the
    strongest single rule from anything the customer bought), did best on a time
    split of Online Retail: summing favours products that follow everything (the
    popular ones), lift favours rare products.
Evaluation
    :func:`evaluate_recommendations` trains on purchases before a cut date and checks
    the recommendations against the new products each customer buys after it, with
    hit rate, precision and recall at N, beside the popularity baseline (the most
    widely bought products the customer has not bought; Cremonesi, Koren & Turrin 2010).

References
----------
Agrawal, R., Imieliński, T. & Swami, A. (1993). "Mining association rules between sets
of items in large databases". Proceedings of ACM SIGMOD 1993: 207–216.
Brin, S., Motwani, R., Ullman, J. D. & Tsur, S. (1997). "Dynamic itemset counting and
implication rules for market basket data". Proceedings of ACM SIGMOD 1997: 255–264.
Sarwar, B., Karypis, G., Konstan, J. & Riedl, J. (2001). "Item-based collaborative
filtering recommendation algorithms". Proceedings of WWW 2001: 285–295.
Deshpande, M. & Karypis, G. (2004). "Item-based top-N recommendation algorithms". ACM
Transactions on Information Systems 22(1): 143–177.
Cremonesi, P., Koren, Y. & Turrin, R. (2010). "Performance of recommender algorithms on
top-N recommendation tasks". Proceedings of ACM RecSys 2010: 39–46.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import ibis

from cvm.config import CrossSellSettings
from cvm.dynamics.overview import input_table
from cvm.errors import DataError, SchemaError
from cvm.store import Store

__all__ = [
    "RecommendationEvaluation",
    "RecommendationMetrics",
    "evaluate_recommendations",
    "popular_products",
    "product_affinity",
    "purchase_lines",
    "recommend_products",
    "store_recommendations",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

_REQUIRED: Final[tuple[str, ...]] = ("customer_id", "ts", "amount", "product_id")
_WILDCARDS: Final[str] = "*?"
_REGEX_SPECIAL: Final[str] = r"\.^$+{}[]|()"


def _check_columns(transactions: Table) -> None:
    missing = [c for c in _REQUIRED if c not in transactions.columns]
    if missing:
        raise SchemaError(
            "cross-sell needs transactions with "
            + ", ".join(_REQUIRED)
            + f"; missing {', '.join(missing)}",
            column=missing[0],
        )


def _until(transactions: Table, moment: dt.datetime) -> Table:
    return transactions.filter(transactions.ts < ibis.timestamp(moment))


def _day_after(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def _excluded(product: Any, patterns: list[str]) -> Any:
    """Boolean expression: the product id matches one of the patterns (ignoring case)."""
    exact = sorted({p.upper() for p in patterns if not any(w in p for w in _WILDCARDS)})
    wild = [p.upper() for p in patterns if any(w in p for w in _WILDCARDS)]
    upper = product.upper()
    condition = upper.isin(exact) if exact else ibis.literal(False)
    if wild:
        parts = []
        for pattern in wild:
            escaped = "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in pattern)
            parts.append(escaped.replace("*", ".*").replace("?", "."))
        condition = condition | upper.re_search("^(" + "|".join(parts) + ")$")
    return condition


def _basket(lines: Table) -> Any:
    """Return the basket key within a customer: the transaction id, else the day."""
    day = lines.ts.date().cast("string")
    if "transaction_id" in lines.columns:
        return ibis.coalesce(lines.transaction_id, day)
    return day


def purchase_lines(
    transactions: Table,
    *,
    settings: CrossSellSettings | None = None,
    as_of: dt.date | None = None,
) -> Table:
    """Select the lines that are purchases of a product, for affinity and recommendations.

    Parameters
    ----------
    transactions
        Canonical transactions (Ibis table) with ``product_id``.
    settings
        The cross-sell settings (exclusion list, ``max_basket_share``); defaults when
        ``None``.
    as_of
        Last day counted (inclusive); all lines when ``None``.

    Returns
    -------
    Table
        ``customer_id``, ``basket`` (transaction id, else the day), ``product_id`` and
        ``ts`` of the lines with a positive amount and quantity, whose product is not
        excluded by name nor bought in more than ``max_basket_share`` of baskets.

    Raises
    ------
    SchemaError
        If a needed column is missing.
    """
    _check_columns(transactions)
    settings = settings or CrossSellSettings()
    if as_of is not None:
        transactions = _until(transactions, _day_after(as_of))
    return _purchases(transactions, settings)


def _purchases(transactions: Table, settings: CrossSellSettings) -> Table:
    t = transactions
    keep = t.product_id.notnull() & (t.amount > 0)
    if "quantity" in t.columns:
        keep = keep & (t.quantity.isnull() | (t.quantity > 0))
    if settings.exclude_products:
        keep = keep & ~_excluded(t.product_id, settings.exclude_products)
    lines = t.filter(keep).select("customer_id", "product_id", "ts", basket=_basket(t))
    if settings.max_basket_share >= 1.0:
        return lines
    baskets = lines.select("customer_id", "basket").distinct()
    total = baskets.aggregate(total_baskets=baskets.count())
    per_product = lines.select("customer_id", "basket", "product_id").distinct()
    shares = per_product.group_by("product_id").aggregate(product_baskets=per_product.count())
    common = shares.cross_join(total)
    common = common.filter(
        common.product_baskets > common.total_baskets * settings.max_basket_share
    ).select("product_id")
    return lines.anti_join(common, "product_id")


def _owned(transactions: Table) -> Table:
    """Distinct (customer, product) of every line with a product: returns count as bought."""
    t = transactions.filter(transactions.product_id.notnull())
    return t.select("customer_id", "product_id").distinct()


@dataclass(frozen=True)
class _Coded:
    """Integer-coded inputs of the affinity (integer joins and groups are much faster).

    ``products``: ``i``, ``product_id``, ``units`` (customers or baskets buying it),
    ``customers``; only products with ``units ≥ min_pair_count`` (no pair can reach
    the threshold otherwise). ``customers``: ``c``, ``customer_id``. ``units_total``:
    one row, ``units``. ``unit_products``: ``u``, ``i``. ``customer_products``: ``c``,
    ``i``.
    """

    products: Table
    customers: Table
    units_total: Table
    unit_products: Table
    customer_products: Table


def _numbered(table: Table, column: str, name: str) -> Table:
    distinct = table.select(column).distinct()
    return distinct.mutate(**{name: ibis.row_number().over(order_by=distinct[column])})


def _coded(lines: Table, settings: CrossSellSettings) -> _Coded:
    bought = lines.select("customer_id", "product_id").distinct()
    customers = _numbered(bought, "customer_id", "c")
    if settings.level == "customer":
        units = bought.select("customer_id", "product_id", unit="customer_id")
    else:
        unit = lines.customer_id.concat("\x1f", lines.basket)
        units = lines.select("customer_id", "product_id", unit=unit).distinct()
    stats = units.group_by("product_id").aggregate(
        units=units.count(), customers=units.customer_id.nunique()
    )
    frequent = stats.filter(stats.units >= settings.min_pair_count)
    products = frequent.mutate(i=ibis.row_number().over(order_by=frequent.product_id))
    names = products.select("product_id", "i")
    customer_products = bought.join(names, "product_id").join(customers, "customer_id")
    # distinct: already unique, but it keeps the engine from reordering the joins above
    customer_products = customer_products.select("c", "i").distinct()
    if settings.level == "customer":
        unit_products = customer_products.select(u="c", i="i")
        units_total = customers.aggregate(units=customers.count())
    else:
        numbered = _numbered(units, "unit", "u")
        unit_products = units.join(names, "product_id").join(numbered, "unit").select("u", "i")
        units_total = numbered.aggregate(units=numbered.count())
    return _Coded(products, customers, units_total, unit_products, customer_products)


def _rules(coded: _Coded, settings: CrossSellSettings) -> Table:
    """Integer-coded rules a → b with their counts and measures, pruned and ranked."""
    left = coded.unit_products
    right = left.view()
    pairs = left.join(right, [left.u == right.u, left.i < right.i]).select(a=left.i, b=right.i)
    pairs = pairs.group_by("a", "b").aggregate(pair_units=pairs.count())
    pairs = pairs.filter(pairs.pair_units >= settings.min_pair_count)
    # Both directions from one count: each pair once as a → b and once as b → a.
    flips = pairs.cross_join(ibis.memtable({"flip": [False, True]}))
    both = flips.select(
        a=flips.flip.ifelse(flips.b, flips.a),
        b=flips.flip.ifelse(flips.a, flips.b),
        pair_units=flips.pair_units,
    ).view()  # a fresh relation: Ibis cannot extend the cross join's chain
    counts = coded.products.select("i", "units")
    first = counts.select(a="i", a_units="units")
    second = counts.view().select(b="i", b_units="units")
    rules = both.join(first, "a").join(second, "b").cross_join(coded.units_total)
    n = rules.pair_units.cast("float64")
    rules = rules.mutate(
        support=n / rules.units,
        confidence=n / rules.a_units,
        lift=n * rules.units / (rules.a_units.cast("float64") * rules.b_units),
    )
    rules = rules.filter(
        (rules.support >= settings.min_support)
        & (rules.confidence >= settings.min_confidence)
        & (rules.lift >= settings.min_lift)
    )
    rank = ibis.row_number().over(
        group_by=rules.a,
        order_by=[ibis.desc(rules[settings.score]), ibis.desc(rules.pair_units), rules.b],
    )
    rules = rules.mutate(rule_rank=rank)
    return rules.filter(rules.rule_rank < settings.rules_per_product).drop("rule_rank")


def product_affinity(
    transactions: Table,
    *,
    settings: CrossSellSettings | None = None,
    as_of: dt.date | None = None,
) -> Table:
    """Association rules between products from co-purchases: support, confidence, lift.

    Parameters
    ----------
    transactions
        Canonical transactions (Ibis table) with ``product_id``.
    settings
        Unit (customer or basket), exclusions and thresholds; defaults when ``None``.
    as_of
        Last day counted (inclusive); all lines when ``None``.

    Returns
    -------
    Table
        One row per kept rule A → B: ``antecedent``, ``consequent``, ``pair_count``
        (units holding both), ``antecedent_count``, ``consequent_count``, ``units``
        (all customers or baskets), ``support``, ``confidence`` and ``lift``; both
        directions of a pair appear, each ranked within its antecedent.

    Raises
    ------
    SchemaError
        If a needed column is missing.

    References
    ----------
    Agrawal, Imieliński & Swami (1993); Brin, Motwani, Ullman & Tsur (1997).
    """
    settings = settings or CrossSellSettings()
    coded = _coded(purchase_lines(transactions, settings=settings, as_of=as_of), settings)
    rules = _rules(coded, settings)
    names = coded.products.select("i", "product_id")
    first = names.select(a="i", antecedent="product_id")
    second = names.view().select(b="i", consequent="product_id")
    rules = rules.join(first, "a").join(second, "b")
    return rules.select(
        "antecedent",
        "consequent",
        pair_count="pair_units",
        antecedent_count="a_units",
        consequent_count="b_units",
        units="units",
        support="support",
        confidence="confidence",
        lift="lift",
    ).order_by(["antecedent", ibis.desc(settings.score), ibis.desc("pair_count"), "consequent"])


def _recommend(
    lines: Table,
    owned: Table,
    settings: CrossSellSettings,
    customers: Table | None,
) -> Table:
    coded = _coded(lines, settings)
    rules = _rules(coded, settings)
    mine = coded.customer_products
    codes = coded.customers
    if customers is not None:
        codes = codes.semi_join(customers.select("customer_id").distinct(), "customer_id")
        mine = mine.semi_join(codes, "c")
    hits = mine.join(rules, mine.i == rules.a)
    measure = hits[settings.score]
    scores = hits.group_by(c=hits.c, i=hits.b).aggregate(
        score=measure.sum() if settings.aggregate == "sum" else measure.max(),
        rules=hits.count(),
        because_i=hits.a.argmax(measure),
    )
    names = coded.products.select("i", "product_id")
    had = owned.join(codes, "customer_id").join(names, "product_id").select("c", "i")
    scores = scores.anti_join(had, ["c", "i"])
    popularity = coded.products.select("i", "customers")
    scores = scores.join(popularity, "i")
    rank = ibis.row_number().over(
        group_by=scores.c,
        order_by=[
            ibis.desc(scores.score),
            ibis.desc(scores.rules),
            ibis.desc(scores.customers),
            scores.i,
        ],
    )
    ranked = scores.mutate(rank=rank + 1)
    ranked = ranked.filter(ranked["rank"] <= settings.top_n)
    because = names.view().select(because_i="i", because="product_id")
    ranked = ranked.join(codes, "c").join(names, "i").join(because, "because_i")
    return ranked.select("customer_id", "rank", "product_id", "score", "rules", "because")


def recommend_products(
    transactions: Table,
    *,
    settings: CrossSellSettings | None = None,
    as_of: dt.date | None = None,
    customers: Table | None = None,
) -> Table:
    """Recommend to each customer the top-N products they have not bought, by affinity.

    Parameters
    ----------
    transactions
        Canonical transactions (Ibis table) with ``product_id``.
    settings
        Affinity settings, the ranking ``score`` and ``aggregate`` and ``top_n``;
        defaults when ``None``.
    as_of
        Last day counted (inclusive); all lines when ``None``.
    customers
        A table with ``customer_id``: recommend to these customers only (e.g. a
        target segment); all buyers when ``None``.

    Returns
    -------
    Table
        Up to ``top_n`` rows per customer: ``customer_id``, ``rank`` (1 = best),
        ``product_id``, ``score`` (sum or max of the rules' confidence or lift),
        ``rules`` (how many of the customer's products point to it) and ``because``
        (the bought product of the strongest rule). Customers whose products have no
        rule get no row.

    Raises
    ------
    SchemaError
        If a needed column is missing.
    """
    _check_columns(transactions)
    settings = settings or CrossSellSettings()
    if as_of is not None:
        transactions = _until(transactions, _day_after(as_of))
    lines = _purchases(transactions, settings)
    return _recommend(lines, _owned(transactions), settings, customers).order_by(
        ["customer_id", "rank"]
    )


def _popular(lines: Table, owned: Table, top_n: int, customers: Table | None) -> Table:
    popularity = lines.group_by("product_id").aggregate(customers=lines.customer_id.nunique())
    popularity = popularity.mutate(
        popularity_rank=ibis.row_number().over(
            order_by=[ibis.desc(popularity.customers), popularity.product_id]
        )
        + 1
    )
    buyers = lines.select("customer_id").distinct()
    if customers is not None:
        buyers = buyers.semi_join(customers.select("customer_id").distinct(), "customer_id")
    mine = owned.semi_join(buyers, "customer_id")
    depth = mine.group_by("customer_id").aggregate(bought=mine.count())
    # The top (top_n + bought) products hold at least top_n the customer has not bought.
    candidates = depth.join(popularity, popularity.popularity_rank <= depth.bought + top_n).select(
        "customer_id", "product_id", "customers", "popularity_rank"
    )
    candidates = candidates.anti_join(
        owned,
        [
            candidates.customer_id == owned.customer_id,
            candidates.product_id == owned.product_id,
        ],
    )
    rank = ibis.row_number().over(
        group_by=candidates.customer_id, order_by=candidates.popularity_rank
    )
    ranked = candidates.mutate(rank=rank + 1)
    ranked = ranked.filter(ranked["rank"] <= top_n)
    return ranked.select("customer_id", "rank", "product_id", "customers")


def popular_products(
    transactions: Table,
    *,
    settings: CrossSellSettings | None = None,
    as_of: dt.date | None = None,
    customers: Table | None = None,
) -> Table:
    """Recommend to each customer the most widely bought products they have not bought.

    The popularity baseline of top-N recommendation (Cremonesi, Koren & Turrin 2010):
    products ranked by the number of customers who bought them, the same for everyone
    but for the products each customer already has.

    Parameters
    ----------
    transactions
        Canonical transactions (Ibis table) with ``product_id``.
    settings
        Exclusions and ``top_n``; defaults when ``None``.
    as_of
        Last day counted (inclusive); all lines when ``None``.
    customers
        A table with ``customer_id``: these customers only; all buyers when ``None``.

    Returns
    -------
    Table
        ``top_n`` rows per customer (fewer only when the catalogue runs out):
        ``customer_id``, ``rank``, ``product_id`` and ``customers`` (its buyers).

    Raises
    ------
    SchemaError
        If a needed column is missing.
    """
    _check_columns(transactions)
    settings = settings or CrossSellSettings()
    if as_of is not None:
        transactions = _until(transactions, _day_after(as_of))
    lines = _purchases(transactions, settings)
    return _popular(lines, _owned(transactions), settings.top_n, customers).order_by(
        ["customer_id", "rank"]
    )


@dataclass(frozen=True)
class RecommendationMetrics:
    """Top-N accuracy of one recommender on the customers of an evaluation.

    Attributes
    ----------
    hit_rate
        Share of customers with at least one recommended product among the new
        products they bought in the test period (Deshpande & Karypis 2004).
    precision
        Mean over customers of hits / N.
    recall
        Mean over customers of hits / (new products they bought).
    coverage
        Share of customers who got at least one recommendation.
    hits
        Recommended products bought, over all customers.
    """

    hit_rate: float
    precision: float
    recall: float
    coverage: float
    hits: int

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return asdict(self)


@dataclass(frozen=True)
class RecommendationEvaluation:
    """Affinity recommendations against the popularity baseline on a time split.

    Attributes
    ----------
    cut, end
        Training uses purchases before ``cut``; the test period runs from ``cut``
        to ``end`` (inclusive).
    top_n
        N of the metrics.
    customers
        Customers evaluated: bought before ``cut`` and bought at least one product
        after it that they had not bought before.
    new_products
        Mean number of such new products per evaluated customer.
    model, baseline
        Metrics of the affinity recommendations and of the popularity baseline.
    settings
        The cross-sell settings used (plain data).
    """

    cut: dt.date
    end: dt.date
    top_n: int
    customers: int
    new_products: float
    model: RecommendationMetrics
    baseline: RecommendationMetrics
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = asdict(self)
        data["cut"] = self.cut.isoformat()
        data["end"] = self.end.isoformat()
        return data


def _metrics(recommended: Table, relevant: Table, evaluated: Table, top_n: int) -> Any:
    hits = recommended.semi_join(
        relevant,
        [
            recommended.customer_id == relevant.customer_id,
            recommended.product_id == relevant.product_id,
        ],
    )
    per_hits = hits.group_by("customer_id").aggregate(hits=hits.count())
    got = recommended.select("customer_id").distinct().mutate(covered=ibis.literal(1))
    rows = evaluated.left_join(per_hits, "customer_id").select(
        "customer_id", "new_products", "hits"
    )
    rows = rows.left_join(got, "customer_id").select("new_products", "hits", "covered")
    n_hits = rows.hits.fill_null(0)
    return rows.aggregate(
        hit_rate=(n_hits > 0).cast("float64").mean(),
        precision=(n_hits.cast("float64") / top_n).mean(),
        recall=(n_hits.cast("float64") / rows.new_products).mean(),
        coverage=rows.covered.fill_null(0).cast("float64").mean(),
        hits=n_hits.sum(),
    )


def evaluate_recommendations(
    transactions: Table,
    *,
    cut: dt.date,
    end: dt.date | None = None,
    settings: CrossSellSettings | None = None,
    top_n: int | None = None,
) -> RecommendationEvaluation:
    """Evaluate affinity recommendations and the popularity baseline on a time split.

    Both recommenders learn from the purchases before ``cut``. The customers evaluated
    bought before ``cut`` and bought, from ``cut`` to ``end``, at least one product
    they had not bought before; those new products are what a recommendation should
    have named. Hit rate, precision and recall at N follow Deshpande & Karypis (2004).

    Parameters
    ----------
    transactions
        Canonical transactions (Ibis table) with ``product_id``.
    cut
        First day of the test period.
    end
        Last day of the test period (inclusive); the last transaction's when ``None``.
    settings
        The cross-sell settings; defaults when ``None``.
    top_n
        N; ``settings.top_n`` when ``None``.

    Returns
    -------
    RecommendationEvaluation
        The figures of both recommenders.

    Raises
    ------
    SchemaError
        If a needed column is missing.
    DataError
        If no customer qualifies for the evaluation (no purchase before ``cut``, or
        no new product after it).
    """
    _check_columns(transactions)
    settings = settings or CrossSellSettings()
    if top_n is not None:
        settings = settings.model_copy(update={"top_n": top_n})
    if end is None:
        span = transactions.aggregate(
            lines=transactions.count(), last=transactions.ts.max()
        ).execute()
        if int(span["lines"].iloc[0]) == 0:
            raise DataError("no transactions to evaluate")
        end = span["last"].iloc[0].date()
    if end < cut:
        raise DataError(f"the test period is empty: end ({end}) is before cut ({cut})")
    start = dt.datetime.combine(cut, dt.time())
    train = _until(transactions, start)
    window = transactions.filter(
        (transactions.ts >= ibis.timestamp(start))
        & (transactions.ts < ibis.timestamp(_day_after(end)))
    )
    train_lines = _purchases(train, settings)
    owned = _owned(train)
    later = _purchases(window, settings).select("customer_id", "product_id").distinct()
    later = later.semi_join(train_lines.select("customer_id").distinct(), "customer_id")
    relevant = later.anti_join(
        owned,
        [later.customer_id == owned.customer_id, later.product_id == owned.product_id],
    )
    evaluated = relevant.group_by("customer_id").aggregate(new_products=relevant.count())
    summary = evaluated.aggregate(
        customers=evaluated.count(), new_products=evaluated.new_products.mean()
    ).execute()
    n_customers = int(summary["customers"].iloc[0])
    if n_customers == 0:
        raise DataError(
            f"no customer bought before {cut} and bought a new product from {cut} to {end}"
        )
    found = []
    for recommended in (
        _recommend(train_lines, owned, settings, evaluated),
        _popular(train_lines, owned, settings.top_n, evaluated),
    ):
        row = _metrics(recommended, relevant, evaluated, settings.top_n).execute().iloc[0]
        found.append(
            RecommendationMetrics(
                hit_rate=float(row["hit_rate"]),
                precision=float(row["precision"]),
                recall=float(row["recall"]),
                coverage=float(row["coverage"]),
                hits=int(row["hits"]),
            )
        )
    mean_new = float(summary["new_products"].iloc[0])
    return RecommendationEvaluation(
        cut=cut,
        end=end,
        top_n=settings.top_n,
        customers=n_customers,
        new_products=mean_new if math.isfinite(mean_new) else 0.0,
        model=found[0],
        baseline=found[1],
        settings=settings.model_dump(),
    )


def store_recommendations(
    store: Store,
    *,
    settings: CrossSellSettings | None = None,
    as_of: dt.date | None = None,
    customers: Table | None = None,
) -> Table:
    """Recommend products to the store's customers (unified customer ids).

    Parameters
    ----------
    store
        The store.
    settings, as_of, customers
        As for :func:`recommend_products`.

    Returns
    -------
    Table
        As :func:`recommend_products`.

    Raises
    ------
    DataError
        If no stored transaction carries a ``product_id``.
    """
    row = store.con.execute(
        "SELECT count(*) FROM transactions WHERE product_id IS NOT NULL"
    ).fetchone()
    if not row or not row[0]:
        raise DataError(
            "no transaction carries a product_id; cross-sell needs product ids "
            "(map a product column when ingesting)",
            column="product_id",
        )
    return recommend_products(
        input_table(store, "transactions"), settings=settings, as_of=as_of, customers=customers
    )
