"""What the continuous-time repeat-purchase models share.

BG/NBD, MBG/NBD and Pareto/NBD all learn from each customer's (x, t_x, T) — repeat
purchases, time of the last one, age — and answer the same questions: P(alive), the
expected purchases in the next t time units, and E[X(t)] for a new customer. This base
reads and checks the data once, compresses identical customers, and declares that
interface, so that validation and CLV can rely on it.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from cvm.models.base import Array, BaseModel
from cvm.models.data import RFM, rfm_data

__all__ = ["RepeatPurchaseModel"]


class RepeatPurchaseModel(BaseModel):
    """Base class of the BG/NBD-family models (see :class:`~cvm.models.base.BaseModel`)."""

    #: Mean customer age T of the fitted data: the scale of the starting values.
    _scale: float = 1.0

    def _prepare(self, data: Any) -> tuple[Array, Array, Array, Array]:
        """Check the data and compress it: unique (x, t_x, T) rows and their weights.

        Raises
        ------
        SchemaError, DataError
            From :func:`~cvm.models.data.rfm_data`, or when nobody bought twice.
        """
        rfm = rfm_data(data)
        rfm.require_repeat_purchases(type(self).__name__)
        (x, t_x, t), weights = rfm.compressed()
        self._scale = float(np.average(t, weights=weights)) or 1.0
        return x, t_x, t, weights

    def _rfm(self, data: Any) -> RFM:
        """Check that the model is fitted and read the customers to predict for."""
        self._check_fitted()
        return rfm_data(data)

    @abstractmethod
    def fit(self, data: Any) -> Self:
        """Fit by maximum likelihood on ``frequency``, ``recency`` and ``t`` per customer."""

    @abstractmethod
    def probability_alive(self, data: Any) -> Array:
        """Return P(alive | x, t_x, T) per customer."""

    @abstractmethod
    def expected_purchases(self, data: Any, t: float | npt.ArrayLike) -> Array:
        """Return the expected repeat purchases in the next ``t`` time units, per customer."""

    @abstractmethod
    def expected_purchases_new(self, t: float | npt.ArrayLike) -> Array:
        """Return E[X(t)] for a customer just acquired."""
