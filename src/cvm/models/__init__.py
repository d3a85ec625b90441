"""Probabilistic customer-base models (one model per module)."""

from cvm.models.base import BaseModel, load_model
from cvm.models.bgnbd import BetaGeoModel

__all__ = ["BaseModel", "BetaGeoModel", "load_model"]
