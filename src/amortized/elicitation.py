"""Prior elicitation from expert statements about data (``bf.elicitation``): see
:mod:`amortized.simulators.elicitation`.

>>> sorted(n for n in __all__)
['ElicitationError', 'ElicitedPrior', 'Quantiles', 'elicit']
"""

from .simulators.elicitation import ElicitationError, ElicitedPrior, Quantiles, elicit

__all__ = ["ElicitationError", "ElicitedPrior", "Quantiles", "elicit"]
