"""What the continuous-time repeat-purchase models share.

BG/NBD, MBG/NBD and Pareto/NBD all learn from each customer's (x, t_x, T) — repeat
purchases, time of the last one, age — and answer the same questions: P(alive), the
expected purchases in the next t time units, and E[X(t)] for a new customer. This base
reads and checks the data once, compresses identical customers, and declares that
interface, so that validation and CLV can rely on it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from cvm.models.base import Array, BaseModel, unique_rows
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
    def _alive(self, rfm: RFM) -> Array:
        """Return P(alive) per customer of ``rfm``."""

    @abstractmethod
    def _while_alive(self, x: Array, age: Array, horizon: npt.ArrayLike) -> Array:
        """Return E[purchases in the next ``horizon`` | alive now, x, T], broadcast over rows."""

    def probability_alive(self, data: Any) -> Array:
        """Return P(alive | x, t_x, T) per customer."""
        return self._alive(self._rfm(data))

    def expected_purchases(self, data: Any, t: float | npt.ArrayLike) -> Array:
        """Return the expected repeat purchases in the next ``t`` time units, per customer.

        The expectation is P(alive) times what a customer known to be alive buys, which
        depends on (x, T) alone; for one horizon that part is computed once per distinct
        (x, T) pair.
        """
        rfm = self._rfm(data)
        horizon = np.asarray(t, dtype=np.float64)
        if horizon.ndim == 0:
            single: Array = self._expected_path(rfm, [float(horizon)])[0]
            return single
        result: Array = self._while_alive(rfm.frequency, rfm.age, horizon) * self._alive(rfm)
        return result

    def expected_purchases_path(self, data: Any, horizons: Sequence[float]) -> Array:
        """Return expected repeat purchases over several horizons at once.

        Parameters
        ----------
        data
            Per-customer ``frequency``, ``recency`` and ``t``.
        horizons
            Future lengths, in the model's time units.

        Returns
        -------
        numpy.ndarray
            Shape (len(horizons), customers); row k is :meth:`expected_purchases` at
            ``horizons[k]``. P(alive) is computed once, and the rest once per horizon
            and distinct (x, T) pair, which is what makes CLV scoring cheap.
        """
        return self._expected_path(self._rfm(data), [float(h) for h in horizons])

    def _expected_path(self, rfm: RFM, horizons: Sequence[float]) -> Array:
        alive = self._alive(rfm)
        (x, age), _, inverse = unique_rows(rfm.frequency, rfm.age)
        out = np.empty((len(horizons), len(alive)))
        for k, horizon in enumerate(horizons):
            np.multiply(self._while_alive(x, age, horizon)[inverse], alive, out=out[k])
        return out

    @abstractmethod
    def expected_purchases_new(self, t: float | npt.ArrayLike) -> Array:
        """Return E[X(t)] for a customer just acquired."""
