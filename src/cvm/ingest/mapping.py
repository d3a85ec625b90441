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
    "CUSTOMER_FIELDS",
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
    """A canonical column: its kind and the headers recognised as it."""

    name: str
    kind: str  # "id", "text", "number", "timestamp"
    required: bool
    synonyms: tuple[str, ...] = ()


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
        If a mapping or derivation names an unknown canonical column or is malformed.
    """
    known = {f.name: f for f in fields}
    for name in [*mapping, *derive]:
        if name not in known:
            raise ConfigError(
                f"'{name}' is not a column of {table} (known: {', '.join(known)})",
                key=f"ingest.{table}",
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
