"""Customer value: realized (and, in later stages, potential and influence) value."""

from cvm.value.realized import realized_value

__all__ = ["realized_value"]
