"""Probabilistic customer-base models, one model per module.

Repeat purchasing (non-contractual, continuous time): :class:`BetaGeoModel` (BG/NBD),
:class:`ModifiedBetaGeoModel` (MBG/NBD), :class:`ParetoNBDModel` (Pareto/NBD);
discrete opportunities: :class:`BetaGeoBetaBinomModel` (BG/BB); contractual retention:
:class:`ShiftedBetaGeoModel` (sBG); spend per purchase: :class:`GammaGammaModel`.
Every model follows the estimator contract of :class:`BaseModel` and saves to JSON;
:func:`load_model` reads any of them back.
"""

from cvm.models.base import BaseModel, load_model, model_from_dict
from cvm.models.bgbb import BetaGeoBetaBinomModel
from cvm.models.bgnbd import BetaGeoModel
from cvm.models.gamma_gamma import GammaGammaModel, SpendFrequencyCorrelationWarning
from cvm.models.mbgnbd import ModifiedBetaGeoModel
from cvm.models.pareto_nbd import ParetoNBDModel
from cvm.models.repeat import RepeatPurchaseModel
from cvm.models.sbg import ShiftedBetaGeoModel

__all__ = [
    "BaseModel",
    "BetaGeoBetaBinomModel",
    "BetaGeoModel",
    "GammaGammaModel",
    "ModifiedBetaGeoModel",
    "ParetoNBDModel",
    "RepeatPurchaseModel",
    "ShiftedBetaGeoModel",
    "SpendFrequencyCorrelationWarning",
    "load_model",
    "model_from_dict",
]
