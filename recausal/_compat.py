"""The one place where recausal works around RecBole 1.2.1 on today's stack.

RecBole 1.2.1 (the latest release) predates numpy 2, pandas 3, setuptools 81 and torch 2.6.
The package pins numpy < 2, pandas < 3 and setuptools < 81 (see pyproject.toml). What is
left is handled here, and nowhere else:

* ``Config`` parses ``sys.argv`` for ``--key=value`` pairs, so recausal's own command-line
  flags would leak into it: :func:`recbole_config` hides ``sys.argv`` while it runs.
* The trainer pickles whole checkpoints with ``torch.save`` and reloads them with a bare
  ``torch.load``, which torch >= 2.6 refuses (``weights_only=True``). Pickles can run code,
  so :class:`InMemoryCheckpointTrainer` never writes or reads one: it keeps the best
  state dict in memory.
* The trainer creates a TensorBoard writer under ``./log_tensorboard``;
  :func:`quiet_trainer_side_effects` swaps it for a no-op so training leaves no litter.
* RecBole's dataset code fills missing values with ``df[column].fillna(..., inplace=True)``,
  which pandas >= 2.2 answers with a chained-assignment ``FutureWarning`` (the fill still
  happens under pandas < 3, which the package pins): :func:`quiet_recbole_dataset_warnings`
  hides exactly that warning while recausal builds a RecBole dataset.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

if int(np.__version__.split(".")[0]) >= 2:  # pragma: no cover - guarded by the pin
    from recausal.errors import RecausalError

    raise RecausalError(
        f"RecBole 1.2.1 needs numpy < 2 but numpy {np.__version__} is installed; "
        "reinstall recausal so that its pins apply"
    )


@contextlib.contextmanager
def _plain_argv() -> Iterator[None]:
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def recbole_config(model: str, dataset: str, config_dict: dict[str, Any]):
    """Build a RecBole ``Config`` without letting it read recausal's command line."""
    from recbole.config import Config

    with _plain_argv():
        return Config(model=model, dataset=dataset, config_dict=config_dict)


class _NullWriter:
    """Stands in for TensorBoard's SummaryWriter: accepts every call, writes nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def quiet_trainer_side_effects() -> Iterator[None]:
    """While active, RecBole trainers get a no-op TensorBoard writer."""
    import recbole.trainer.trainer as trainer_module

    saved = trainer_module.get_tensorboard
    trainer_module.get_tensorboard = lambda logger: _NullWriter()
    try:
        yield
    finally:
        trainer_module.get_tensorboard = saved


def in_memory_trainer_class():
    """Return RecBole's ``Trainer`` subclassed to checkpoint in memory (no pickles)."""
    from recbole.trainer import Trainer

    class InMemoryCheckpointTrainer(Trainer):
        """RecBole's trainer, keeping the best weights in memory instead of a pickle file."""

        best_state_dict: dict[str, Any] | None = None

        def _save_checkpoint(self, epoch, verbose=True, **kwargs):
            self.best_state_dict = {
                k: v.detach().clone() for k, v in self.model.state_dict().items()
            }
            self.best_epoch = epoch

        def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
            if load_best_model and self.best_state_dict is not None:
                self.model.load_state_dict(self.best_state_dict)
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    return InMemoryCheckpointTrainer


#: the start of pandas' warning about RecBole's ``df[column].fillna(..., inplace=True)``
_CHAINED_FILLNA = (
    r"A value is trying to be set on a copy of a DataFrame or Series through chained "
    r"assignment using an inplace method"
)


@contextlib.contextmanager
def quiet_recbole_dataset_warnings() -> Iterator[None]:
    """While active, pandas' chained-assignment ``FutureWarning`` is not shown.

    Only that warning (from RecBole's dataset code, see the module docstring) is hidden;
    every other warning is shown as usual.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CHAINED_FILLNA, category=FutureWarning)
        yield
