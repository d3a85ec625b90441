"""Shared by the per-library runners; runs in every peer's virtualenv.

Only the standard library, numpy, pandas and pyarrow (whichever versions the
venv has: numpy 1.26–2.x, pandas 1.5–3.x), never cvm, so that each runner
measures one library alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

__all__ = [
    "CLV_MONTHS",
    "DAYS_PER_YEAR",
    "HORIZON_DAYS",
    "MONTHLY_DISCOUNT",
    "Stopwatch",
    "annual_discount",
    "facts",
    "load_summary",
    "package_version",
]

#: Horizon of the expected-purchases prediction, in days.
HORIZON_DAYS = 90.0
#: CLV horizon in months, and the discount rate per month.
CLV_MONTHS = 12
MONTHLY_DISCOUNT = 0.01
DAYS_PER_YEAR = 365.2425


def annual_discount() -> float:
    """Return the annual rate equivalent to :data:`MONTHLY_DISCOUNT` compounded monthly."""
    return float((1.0 + MONTHLY_DISCOUNT) ** 12 - 1.0)


def load_summary(path: str) -> Any:
    """Read the simulated summary as a pandas DataFrame (``customer_id`` a column)."""
    import pyarrow.parquet as pq

    frame = pq.read_table(path).to_pandas()
    for column in ("frequency", "recency", "T"):
        frame[column] = frame[column].astype("float64")
    return frame


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or ``None``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def facts(values: Any) -> dict[str, float | int]:
    """Mean and count of non-finite values of a prediction (to compare libraries)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(array)
    mean = float(array[finite].mean()) if finite.any() else math.nan
    return {"mean": mean, "nonfinite": int((~finite).sum()), "n": int(array.size)}


class Stopwatch:
    """Named wall-clock timings (``time.perf_counter``) of the parts of a step."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        """Time the ``with`` block under ``name`` (added up if repeated)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.times[name] = round(self.times.get(name, 0.0) + elapsed, 4)

    def call(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func`` under the stopwatch and return its result."""
        with self.time(name):
            return func(*args, **kwargs)
