"""recausal: causal explanations for transformer-based sequential recommenders."""

from recausal.errors import RecausalError

__version__ = "0.1.0"

__all__ = ["RecausalError", "__version__"]
