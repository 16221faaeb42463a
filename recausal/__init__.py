"""recausal: causal explanations for transformer-based sequential recommenders.

The public surface: load a model (:func:`load_model`, :func:`from_recbole`), learn causal
graphs over a history (:func:`discover`), explain a recommendation (:func:`get_explainer`,
then ``explain``), and compare explainers offline (``recausal.evaluate.evaluate``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from recausal._lazy import lazy_getattr
from recausal._version import __version__
from recausal.errors import RecausalError

# OpenMP threads that sleep while they wait instead of spinning. Before torch loads (it is
# imported lazily): with one other busy process on 2 cores, spinning threads made the causal
# explainer on BERT4Rec 2.1x slower, sleeping ones not slower, for ~15% more time on an idle
# machine (``benchmarks/run.py --parts contention``). Set OMP_WAIT_POLICY (or
# GOMP_SPINCOUNT) yourself to choose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from recausal.discovery import discover
    from recausal.explain import Explanation, get_explainer
    from recausal.models import from_recbole, load_model

# Imported on first use: keeps `import recausal` light (no torch until a model is needed).
# No module may share a name listed here: importing ``recausal.<name>`` would rebind the
# package attribute to that module (``discover`` lives in ``recausal.discovery`` for that).
_LAZY = {
    "load_model": "recausal.models",
    "from_recbole": "recausal.models",
    "discover": "recausal.discovery",
    "get_explainer": "recausal.explain",
    "Explanation": "recausal.explain",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "Explanation",
    "RecausalError",
    "__version__",
    "discover",
    "from_recbole",
    "get_explainer",
    "load_model",
]
