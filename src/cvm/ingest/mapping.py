"""Map a source's columns onto a canonical table.

Resolution order for each canonical column:

1. an explicit mapping (``cvm.toml`` ``[ingest.<table>.columns]`` or ``--map``);
2. an explicit derivation (``[ingest.<table>.derive]`` or ``--derive``), an arithmetic
   expression over source columns such as ``quantity * unit_price``;
3. a source header that, normalised (``InvoiceDate`` → ``invoice_date``), is the
   canonical name or one of its known synonyms;
4. for ``amount`` only: ``quantity * unit_price`` when both can be found.

Derived expressions are parsed, never evaluated: only numbers, column names, ``+ - * /``
and parentheses are allowed, and they are rendered to SQL by :func:`render_sql`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from cvm.errors import ConfigError, SchemaError

__all__ = [
    "ACTION_FIELDS",
    "CUSTOMER_FIELDS",
    "GROUP_CHOICES",
    "IDENTITY_FIELDS",
    "IDENTITY_KEYS",
    "INTERACTION_FIELDS",
    "REFERRAL_FIELDS",
    "SURVEY_FIELDS",
    "TABLE_FIELDS",
    "TRANSACTION_FIELDS",
    "ColumnSpec",
    "Field",
    "normalize_header",
    "parse_expression",
    "render_sql",
    "resolve_columns",
]


@dataclass(frozen=True)
class Field:
    """A canonical column: its kind, the headers recognised as it and its value rules.

    Attributes
    ----------
    name
        The canonical column name.
    kind
        ``"id"``, ``"text"``, ``"number"``, ``"timestamp"``, ``"boolean"`` (true/false,
        yes/no, y/n, 1/0) or ``"choice"`` (one of ``choices``).
    required
        Whether every row needs a value.
    synonyms
        Normalised headers recognised as this column, in priority order.
    minimum, maximum
        Inclusive bounds of a number (``None``: unbounded).
    integer
        Whether a number must be whole.
    choices
        For ``"choice"``: accepted text (normalised: lower case, runs of blanks, ``_``
        and ``-`` as one space) → the value stored.
    """

    name: str
    kind: str
    required: bool
    synonyms: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    choices: tuple[tuple[str, str], ...] = ()

    def expected(self) -> str:
        """Describe a valid value in words (for quarantine reasons)."""
        if self.kind == "choice":
            values = list(dict.fromkeys(value for _, value in self.choices))
            return " or ".join(values)
        what = "a whole number" if self.integer else "a number"
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"{what} from {low:g} to {high:g}"
        if low == 0:
            return f"{what} of 0 or more"
        if low is not None:
            return f"{what} of at least {low:g}"
        if high is not None:
            return f"{what} of at most {high:g}"
        return what


TRANSACTION_FIELDS: Final[tuple[Field, ...]] = (
    Field(
        "customer_id",
        "id",
        True,
        (
            "customer",
            "customerid",
            "cust_id",
            "client_id",
            "customer_no",
            "customer_number",
            "member_id",
            "user_id",
        ),
    ),
    Field(
        "ts",
        "timestamp",
        True,
        (
            "date",
            "timestamp",
            "datetime",
            "invoice_date",
            "order_date",
            "purchase_date",
            "transaction_date",
            "order_datetime",
            "created_at",
        ),
    ),
    Field(
        "amount",
        "number",
        True,
        (
            "revenue",
            "sales",
            "value",
            "total",
            "sales_amount",
            "dollar_value",
            "order_value",
            "net_amount",
            "total_amount",
            "line_total",
        ),
    ),
    Field(
        "transaction_id",
        "id",
        False,
        (
            "invoice_no",
            "invoice",
            "invoice_number",
            "order_id",
            "order_no",
            "order_number",
            "receipt_id",
            "transaction",
        ),
    ),
    Field("margin", "number", False, ("profit", "gross_margin", "gross_profit")),
    Field("cost", "number", False, ("cogs", "cost_of_goods")),
    Field("quantity", "number", False, ("qty", "units", "number_of_items")),
    Field(
        "product_id",
        "id",
        False,
        ("stock_code", "sku", "item_id", "product", "article", "product_code"),
    ),
    Field("channel", "text", False, ("sales_channel",)),
    Field("currency", "text", False, ("currency_code",)),
)

CUSTOMER_FIELDS: Final[tuple[Field, ...]] = (
    TRANSACTION_FIELDS[0],
    Field(
        "acquired_at",
        "timestamp",
        False,
        ("signup_date", "registration_date", "join_date", "first_seen", "created_at"),
    ),
    Field("acquisition_channel", "text", False, ("source_channel", "channel")),
    Field("email", "text", False, ("e_mail", "email_address")),
    Field("phone", "text", False, ("phone_number", "mobile", "telephone")),
    Field("loyalty_card", "text", False, ("card_number", "loyalty_id", "loyalty_number")),
)

_CUSTOMER_ID: Final = TRANSACTION_FIELDS[0]
_EMAIL: Final = CUSTOMER_FIELDS[3]
_PHONE: Final = CUSTOMER_FIELDS[4]
_LOYALTY_CARD: Final = CUSTOMER_FIELDS[5]
_CHANNEL: Final = Field("channel", "text", False, ("contact_channel", "medium"))


def _event_time(*synonyms: str, required: bool = True) -> Field:
    return Field(
        "ts",
        "timestamp",
        required,
        (*synonyms, "date", "timestamp", "datetime", "created_at", "occurred_at", "event_time"),
    )


def _csat(*synonyms: str) -> Field:
    return Field(
        "csat",
        "number",
        False,
        ("satisfaction", "csat_score", "satisfaction_score", *synonyms),
        minimum=1,
        maximum=5,
    )


def _cost(*synonyms: str) -> Field:
    return Field("cost", "number", False, synonyms, minimum=0)


INTERACTION_FIELDS: Final[tuple[Field, ...]] = (
    _CUSTOMER_ID,
    _event_time("interaction_date", "contact_date", "interaction_time", "contact_time"),
    Field(
        "kind",
        "text",
        True,
        ("type", "interaction_type", "contact_type", "event_type", "interaction_kind"),
    ),
    _CHANNEL,
    _cost("cost_to_serve", "service_cost", "handling_cost", "interaction_cost"),
    _csat("rating", "satisfaction_rating"),
    Field("resolved", "boolean", False, ("is_resolved", "solved", "resolved_flag")),
)

SURVEY_FIELDS: Final[tuple[Field, ...]] = (
    _CUSTOMER_ID,
    _event_time("survey_date", "response_date", "responded_at", "submitted_at", "completed_at"),
    Field(
        "nps",
        "number",
        False,
        (
            "nps_score",
            "likelihood_to_recommend",
            "recommend_score",
            "recommendation_score",
            "ltr",
        ),
        minimum=0,
        maximum=10,
        integer=True,
    ),
    _csat(),
    Field(
        "comment",
        "text",
        False,
        ("comments", "feedback", "verbatim", "free_text", "remarks", "response_text"),
    ),
)

REFERRAL_FIELDS: Final[tuple[Field, ...]] = (
    Field(
        "referrer_id",
        "id",
        True,
        (
            "referrer",
            "referring_customer",
            "referring_customer_id",
            "referrer_customer_id",
            "referred_by",
            "advocate_id",
        ),
    ),
    Field(
        "referred_id",
        "id",
        True,
        (
            "referred",
            "new_customer_id",
            "referred_customer",
            "referred_customer_id",
            "referee_id",
            "referee",
            "invitee_id",
        ),
    ),
    _event_time("referral_date", "referred_at", "referral_time", required=False),
)

#: Columns of identities that name the customer; each row needs at least one.
IDENTITY_KEYS: Final[tuple[str, ...]] = (
    "customer_id",
    "email",
    "phone",
    "loyalty_card",
    "external_id",
)

IDENTITY_FIELDS: Final[tuple[Field, ...]] = (
    Field("source", "text", True, ("source_system", "system", "origin", "data_source")),
    Field(
        "source_id",
        "id",
        True,
        ("source_key", "source_record_id", "record_id", "local_id", "id_in_source"),
    ),
    Field("customer_id", "id", False, _CUSTOMER_ID.synonyms),
    _EMAIL,
    _PHONE,
    _LOYALTY_CARD,
    Field(
        "external_id",
        "id",
        False,
        ("ext_id", "external_customer_id", "external_key", "crm_id", "global_id"),
    ),
)

#: Accepted spellings of an action's group (normalised) → the stored value.
GROUP_CHOICES: Final[tuple[tuple[str, str], ...]] = (
    ("treatment", "treatment"),
    ("treatment group", "treatment"),
    ("treated", "treatment"),
    ("test", "treatment"),
    ("test group", "treatment"),
    ("control", "control"),
    ("control group", "control"),
    ("holdout", "control"),
    ("hold out", "control"),
    ("holdout group", "control"),
)

ACTION_FIELDS: Final[tuple[Field, ...]] = (
    _CUSTOMER_ID,
    Field(
        "action",
        "text",
        True,
        ("action_name", "action_type", "offer", "offer_name", "activity", "action_code"),
    ),
    _event_time("action_date", "sent_at", "contact_date", "executed_at", "action_time"),
    Field(
        "group",
        "choice",
        True,
        ("treatment_group", "arm", "variant", "test_group", "group_name", "assignment"),
        choices=GROUP_CHOICES,
    ),
    Field("campaign", "text", False, ("campaign_id", "campaign_name", "campaign_code")),
    _cost("action_cost", "contact_cost", "cost_per_contact"),
    _CHANNEL,
)

#: Canonical fields of every input table, by table name.
TABLE_FIELDS: Final[dict[str, tuple[Field, ...]]] = {
    "transactions": TRANSACTION_FIELDS,
    "customers": CUSTOMER_FIELDS,
    "interactions": INTERACTION_FIELDS,
    "surveys": SURVEY_FIELDS,
    "referrals": REFERRAL_FIELDS,
    "identities": IDENTITY_FIELDS,
    "actions": ACTION_FIELDS,
}

_UNIT_PRICE_SYNONYMS: Final = ("unit_price", "price", "price_each", "unit_cost_price")


def normalize_header(name: str) -> str:
    """Normalise a header for matching.

    ``'Invoice Date'`` and ``'InvoiceDate'`` both become ``'invoice_date'``.
    """
    name = name.strip().lstrip("\ufeff")
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class ColumnSpec:
    """Where one canonical column comes from.

    Exactly one of ``source`` (a source column) and ``expression`` (a parsed
    derivation over source columns) is set; both ``None`` means absent (NULL).
    """

    field: Field
    source: str | None = None
    expression: ast.expr | None = None
    text: str | None = None

    def inputs(self) -> list[str]:
        """Source columns this column reads."""
        if self.source is not None:
            return [self.source]
        if self.expression is not None:
            return [n.id for n in ast.walk(self.expression) if isinstance(n, ast.Name)]
        return []


_ALLOWED_OPS: Final = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)


def parse_expression(text: str, *, key: str) -> ast.expr:
    """Parse a derivation like ``quantity * unit_price``.

    Raises
    ------
    ConfigError
        If the text is not an arithmetic expression over column names and numbers.
    """
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ConfigError(f"not a valid expression: {text!r}", key=key) from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            if not isinstance(node.op, _ALLOWED_OPS):
                raise ConfigError(f"operator not allowed in {text!r}", key=key)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float) or isinstance(node.value, bool):
                raise ConfigError(f"only numbers are allowed as constants in {text!r}", key=key)
        elif not isinstance(node, ast.Name | ast.operator | ast.unaryop | ast.Load):
            raise ConfigError(
                f"only column names, numbers, + - * / and parentheses are allowed: {text!r}",
                key=key,
            )
    return tree


def _find_header(columns: list[str], names: tuple[str, ...], path: str, target: str) -> str | None:
    by_norm: dict[str, list[str]] = {}
    for column in columns:
        by_norm.setdefault(normalize_header(column), []).append(column)
    for name in names:
        hits = by_norm.get(name, [])
        if len(hits) > 1:
            raise SchemaError(
                f"columns {hits} all look like '{target}'; map one explicitly "
                f"(--map {target}=COLUMN)",
                path=path,
            )
        if hits:
            return hits[0]
    return None


def _resolve_name(name: str, columns: list[str], path: str, key: str) -> str:
    if name in columns:
        return name
    matches = [c for c in columns if normalize_header(c) == normalize_header(name)]
    if len(matches) == 1:
        return matches[0]
    raise SchemaError(
        f"mapped column '{name}' is not in the source (columns: {', '.join(columns)})",
        path=path,
        column=name,
        key=key,
    )


def resolve_columns(
    fields: tuple[Field, ...],
    columns: list[str],
    *,
    path: str,
    mapping: Mapping[str, str],
    derive: Mapping[str, str],
    table: str,
    one_of: tuple[str, ...] = (),
) -> dict[str, ColumnSpec]:
    """Decide where every canonical column comes from.

    Parameters
    ----------
    fields
        The canonical fields of the target table.
    columns
        The source's columns.
    path
        Source name for error messages.
    mapping
        Explicit ``canonical → source column``.
    derive
        Explicit ``canonical → expression``.
    table
        Target table name (for messages).
    one_of
        Optional columns of which the source must have at least one (the customer
        keys of identities).

    Returns
    -------
    dict
        ``canonical name → ColumnSpec`` for every field.

    Raises
    ------
    SchemaError
        If a required column cannot be found, a mapped column does not exist, or
        headers are ambiguous — before anything is written.
    ConfigError
        If a mapping or derivation names an unknown canonical column, derives a column
        that is not a number, or is malformed.
    """
    known = {f.name: f for f in fields}
    for name in [*mapping, *derive]:
        if name not in known:
            raise ConfigError(
                f"'{name}' is not a column of {table} (known: {', '.join(known)})",
                key=f"ingest.{table}",
            )
    for name in derive:
        if known[name].kind != "number":
            raise ConfigError(
                f"'{name}' of {table} is not a number and cannot be derived; map a column instead",
                key=f"ingest.{table}.derive.{name}",
            )
    both = set(mapping) & set(derive)
    if both:
        raise ConfigError(
            f"{sorted(both)} are both mapped and derived; choose one", key=f"ingest.{table}"
        )
    specs: dict[str, ColumnSpec] = {}
    for spec_field in fields:
        name = spec_field.name
        if name in mapping:
            source = _resolve_name(mapping[name], columns, path, f"ingest.{table}.columns.{name}")
            specs[name] = ColumnSpec(spec_field, source=source)
        elif name in derive:
            key = f"ingest.{table}.derive.{name}"
            expression = parse_expression(derive[name], key=key)
            for node in ast.walk(expression):
                if isinstance(node, ast.Name):
                    node.id = _resolve_name(node.id, columns, path, key)
            specs[name] = ColumnSpec(spec_field, expression=expression, text=derive[name])
        else:
            header = _find_header(columns, (name, *spec_field.synonyms), path, name)
            specs[name] = ColumnSpec(spec_field, source=header)
    amount = specs.get("amount")
    if amount is not None and amount.source is None and amount.expression is None:
        quantity = specs.get("quantity")
        price = _find_header(columns, _UNIT_PRICE_SYNONYMS, path, "unit_price")
        if quantity is not None and quantity.source is not None and price is not None:
            text = f"{quantity.source} * {price}"
            expression = ast.BinOp(
                left=ast.Name(id=quantity.source, ctx=ast.Load()),
                op=ast.Mult(),
                right=ast.Name(id=price, ctx=ast.Load()),
            )
            specs["amount"] = ColumnSpec(amount.field, expression=expression, text=text)
    for spec in specs.values():
        if spec.field.required and spec.source is None and spec.expression is None:
            raise SchemaError(
                f"required column '{spec.field.name}' of {table} is missing; map one of the "
                f"source's columns with --map {spec.field.name}=COLUMN "
                f"(the source's columns: {', '.join(columns) or 'none'})",
                path=path,
                column=spec.field.name,
            )
    if one_of and all(specs[name].source is None for name in one_of):
        raise SchemaError(
            f"{table} need at least one customer key column ({', '.join(one_of)}); map one "
            f"with --map {one_of[0]}=COLUMN (the source's columns: {', '.join(columns) or 'none'})",
            path=path,
            column=one_of[0],
        )
    return specs


def render_sql(expression: ast.expr, column_sql: Callable[[str], str]) -> str:
    """Render a parsed derivation to SQL; ``column_sql`` renders a source column."""
    if isinstance(expression, ast.Name):
        return column_sql(expression.id)
    if isinstance(expression, ast.Constant):
        value = expression.value
        assert isinstance(value, int | float)
        return repr(float(value))
    if isinstance(expression, ast.UnaryOp):
        sign = "-" if isinstance(expression.op, ast.USub) else "+"
        return f"({sign}{render_sql(expression.operand, column_sql)})"
    if isinstance(expression, ast.BinOp):
        symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}[type(expression.op)]
        left = render_sql(expression.left, column_sql)
        right = render_sql(expression.right, column_sql)
        if symbol == "/":
            return f"({left} / nullif({right}, 0))"
        return f"({left} {symbol} {right})"
    raise ConfigError(f"unsupported expression element {ast.dump(expression)}")  # pragma: no cover
