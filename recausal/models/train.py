"""Train a RecBole sequential recommender and write a recausal model bundle."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recausal.errors import InvalidInputError
from recausal.models.bundle import bundle_meta, save_bundle
from recausal.models.recbole_settings import jsonable, model_config_from_recbole

SUPPORTED_TRAIN_MODELS = ("SASRec", "BERT4Rec")

# Settings every recausal training run starts from (a config file overrides any of them).
DEFAULTS: dict[str, Any] = {
    "USER_ID_FIELD": "user_id",
    "ITEM_ID_FIELD": "item_id",
    "TIME_FIELD": "timestamp",
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "MAX_ITEM_LIST_LENGTH": 50,
    "train_neg_sample_args": None,
    "loss_type": "CE",
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "mode": "full",
        "group_by": "user",
    },
    "metrics": ["Hit", "NDCG"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "epochs": 30,
    "stopping_step": 3,
    "train_batch_size": 256,
    "eval_batch_size": 2048,
    "learning_rate": 0.001,
    "seed": 2020,
    "reproducibility": True,
    "use_gpu": False,
    "device": "cpu",
    "show_progress": False,
    "save_dataset": False,
    "save_dataloaders": False,
    "log_wandb": False,
}


@dataclass(frozen=True)
class TrainResult:
    """What ``recausal train`` produced: the bundle and RecBole's own metrics."""

    bundle: Path
    model: str
    dataset: str
    best_epoch: int
    epochs_run: int
    seconds: float
    valid: dict[str, float]
    test: dict[str, float]
    stopped_early: bool
    history: list[dict[str, Any]]


def load_train_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training YAML file (RecBole keys plus ``model`` and ``dataset``).

    Args:
        path: the YAML file.

    Returns:
        Its settings.

    Raises:
        InvalidInputError: the file is missing, not a mapping, or names no trainable model.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"training config {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"training config {path} is not valid YAML: {exc}") from None
    if not isinstance(cfg, dict):
        raise InvalidInputError(f"training config {path} must be a mapping of settings")
    for key in ("model", "dataset"):
        if key not in cfg:
            raise InvalidInputError(f"training config {path} has no '{key}' entry")
    if cfg["model"] not in SUPPORTED_TRAIN_MODELS:
        raise InvalidInputError(
            f"model {cfg['model']!r} in {path} is not trainable here; "
            f"choose one of {', '.join(SUPPORTED_TRAIN_MODELS)}"
        )
    return cfg


def _round(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {str(k): round(float(v), 6) for k, v in (metrics or {}).items()}


def train(
    config_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    verbose: bool = True,
    checkpoints: str | os.PathLike | None = None,
    *,
    device: Any = None,
) -> TrainResult:
    """Train the model a config describes with RecBole's trainer and write a bundle to ``out``.

    Each epoch is followed by a validation pass; training stops when the validation metric
    (``valid_metric``, ndcg@10 by default) has not improved for ``stopping_step`` evaluations,
    or after ``epochs``, and the best epoch's weights go into the bundle. After every epoch
    the run is checkpointed (see :mod:`recausal.models.checkpoint`): a run that is stopped
    resumes from its last completed epoch when called again with the same settings, and ends
    exactly where an uninterrupted run would. The device and ``threads`` are not part of the
    settings a checkpoint must match, so a run can resume on another machine (bit for bit only
    on the same kind of device).

    Args:
        config_path: the training YAML file (RecBole keys plus ``model`` and ``dataset``).
        out: the bundle directory [default: ``bundles/<model>-<dataset>``].
        overrides: settings that replace the file's.
        verbose: log one line per epoch (and RecBole's progress bars on a terminal).
        checkpoints: the checkpoint folder. By default ``<out>.partial``, removed once the
            bundle is written; a folder given here is kept, so that a run can be extended
            later with more ``epochs``.
        device: where to train: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` [default:
            the config's ``device`` setting, else ``"cpu"``].

    Returns:
        The bundle's path with the run's metrics and learning curve.

    Raises:
        InvalidInputError: the config is invalid, ``device`` is not available, or the
            checkpoint folder holds a damaged checkpoint or one of other settings.
    """
    import shutil

    from recausal._compat import (
        in_memory_trainer_class,
        quiet_recbole_dataset_warnings,
        quiet_trainer_side_effects,
        recbole_config,
    )
    from recausal.data import resolve_dataset
    from recausal.models.checkpoint import (
        TrainingState,
        legacy_settings_digest,
        load_checkpoint,
        save_checkpoint,
        settings_digest,
    )
    from recausal.models.device import check_device, keep_visible_devices

    cfg = load_train_config(config_path)
    cfg.update(overrides or {})
    target = check_device(cfg.get("device", "cpu") if device is None else device)
    files = resolve_dataset(cfg["dataset"], cfg.get("data_path"))
    settings = {**DEFAULTS, **{k: v for k, v in cfg.items() if k not in ("model", "dataset")}}
    settings["data_path"] = str(files.data_path)
    out = Path(out or Path("bundles") / f"{cfg['model'].lower()}-{files.name}")
    keep_checkpoints = checkpoints is not None
    checkpoint_dir = Path(checkpoints) if checkpoints else out.with_name(out.name + ".partial")
    identity = {
        "model": cfg["model"],
        "dataset": files.fingerprint(),
        **settings,
        "data_path": None,
    }
    digest = settings_digest(identity)
    # checkpoints written before the device and threads were left out of the digest
    accepted = (digest, legacy_settings_digest(identity))
    settings.update(device=str(target), use_gpu=target.type == "cuda")

    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import early_stopping, get_model, init_seed

    logger = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    if verbose:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="recausal-train-") as scratch:
            settings["checkpoint_dir"] = scratch
            with keep_visible_devices():
                config = recbole_config(cfg["model"], files.name, settings)
            config["device"] = target  # RecBole's Config picks "cuda" from gpu_id otherwise
            init_seed(config["seed"], config["reproducibility"])
            torch.set_num_threads(int(cfg.get("threads", torch.get_num_threads())))
            with quiet_recbole_dataset_warnings():
                dataset = create_dataset(config)
            train_data, valid_data, test_data = data_preparation(config, dataset)
            init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
            model = get_model(config["model"])(config, train_data.dataset).to(target)
            with quiet_trainer_side_effects():
                trainer = in_memory_trainer_class()(config, model)
                generators = {"train_loader": train_data.generator}
                restored = load_checkpoint(
                    checkpoint_dir, accepted, model, trainer.optimizer, generators
                )
                if restored is None:
                    bigger = bool(trainer.valid_metric_bigger)
                    state = TrainingState(best_score=float("-inf" if bigger else "inf"))
                else:
                    state, trainer.best_state_dict = restored
                    logger.info(
                        "resuming from %s after epoch %d", checkpoint_dir, state.epochs_done - 1
                    )
                trainer.eval_collector.data_collect(train_data)
                show_bars = verbose and sys.stderr.isatty()
                epochs = int(config["epochs"])
                while state.epochs_done < epochs and not state.stopped:
                    epoch = state.epochs_done
                    began = time.perf_counter()
                    loss = trainer._train_epoch(train_data, epoch, show_progress=show_bars)
                    loss = float(sum(loss) if isinstance(loss, tuple) else loss)
                    score, result = trainer._valid_epoch(valid_data, show_progress=show_bars)
                    state.best_score, state.stale_evals, state.stopped, improved = early_stopping(
                        score,
                        state.best_score,
                        state.stale_evals,
                        max_step=trainer.stopping_step,
                        bigger=trainer.valid_metric_bigger,
                    )
                    if improved:
                        trainer._save_checkpoint(epoch)
                        state.best_epoch, state.best_valid = epoch, _round(result)
                    state.epochs_done = epoch + 1
                    state.history.append(
                        {
                            "epoch": epoch,
                            "loss": round(loss, 6),
                            "valid": _round(result),
                            "seconds": round(time.perf_counter() - began, 1),
                        }
                    )
                    save_checkpoint(
                        checkpoint_dir,
                        state,
                        digest,
                        model,
                        trainer.best_state_dict,
                        trainer.optimizer,
                        generators,
                    )
                    logger.info(_progress_line(state, epochs, trainer.stopping_step, config))
                test = trainer.evaluate(test_data, load_best_model=True)
            items = [str(t) for t in dataset.field2id_token[config["ITEM_ID_FIELD"]]]
            model_config = model_config_from_recbole(config, dataset.num(config["ITEM_ID_FIELD"]))
            repeats = _has_repeated_interactions(dataset, config)
    finally:
        logger.removeHandler(handler)
    seconds = time.perf_counter() - start
    meta = bundle_meta(
        cfg["model"],
        files,
        dataset_extra={"repeated_interactions": repeats},
        training={
            "config_file": Path(config_path).name,
            "settings": {k: v for k, v in cfg.items() if jsonable(v)},
            "device": str(target),
            "best_epoch": state.best_epoch,
            "epochs_run": state.epochs_done,
            "stopped_early": state.stopped,
            "seconds": round(sum(h["seconds"] for h in state.history), 1),
            "history": state.history,
        },
        metrics={
            "source": "RecBole trainer, full ranking, leave-one-out by time",
            "valid": state.best_valid,
            "test": _round(test),
        },
    )
    bundle_path = save_bundle(
        out, trainer.best_state_dict or model.state_dict(), model_config, items, meta
    )
    if not keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TrainResult(
        bundle=bundle_path,
        model=cfg["model"],
        dataset=files.name,
        best_epoch=state.best_epoch,
        epochs_run=state.epochs_done,
        seconds=seconds,
        valid=state.best_valid,
        test=_round(test),
        stopped_early=state.stopped,
        history=state.history,
    )


def _progress_line(state: Any, epochs: int, patience: int, config: Any) -> str:
    last = state.history[-1]
    metric = str(config["valid_metric"]).lower()
    line = (
        f"epoch {last['epoch'] + 1}/{epochs}: loss {last['loss']:.4f}, valid {metric} "
        f"{last['valid'].get(metric, float('nan')):.4f} (best {state.best_score:.4f} at epoch "
        f"{state.best_epoch + 1}; {state.stale_evals}/{patience} without improvement), "
        f"{last['seconds']:.0f}s"
    )
    return line + ("; validation stopped improving" if state.stopped else "")


def _has_repeated_interactions(dataset: Any, config: Any) -> bool:
    """Whether any user interacted with the same item more than once in the data."""
    import numpy as np

    users = np.asarray(dataset.inter_feat[config["USER_ID_FIELD"]], dtype=np.int64)
    items = np.asarray(dataset.inter_feat[config["ITEM_ID_FIELD"]], dtype=np.int64)
    pairs = users * (int(items.max(initial=0)) + 1) + items
    return bool(np.unique(pairs).size < pairs.size)
