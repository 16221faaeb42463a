"""Train a RecBole sequential recommender and write a recausal model bundle."""

from __future__ import annotations

import datetime as _dt
import json
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
from recausal.models.bundle import save_bundle

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

# Entries of RecBole's final config that describe the run rather than the model.
_RUN_ONLY_KEYS = {"data_path", "checkpoint_dir", "device", "gpu_id", "use_gpu", "local_rank"}


class _TimeBudgetReached(Exception):
    def __init__(self, epoch: int) -> None:
        super().__init__(epoch)
        self.epoch = epoch


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


def load_train_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training YAML file (RecBole keys plus ``model`` and ``dataset``)."""
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


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def model_config_from_recbole(config: Any, n_items: int) -> dict[str, Any]:
    """The JSON model config of a bundle, taken from a RecBole ``Config``."""
    final = config.final_config_dict
    params = {
        k: v
        for k, v in final.items()
        if k not in _RUN_ONLY_KEYS and _jsonable(v) and not k.startswith("_")
    }
    return {"model": config["model"], "n_items": int(n_items), "recbole": params}


def _round(metrics: dict[str, Any] | None) -> dict[str, float]:
    return {str(k): round(float(v), 6) for k, v in (metrics or {}).items()}


def train(
    config_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train the model a config describes with RecBole's trainer and write a bundle to ``out``.

    Progress (epochs, loss, validation metric) is logged; training stops early on the
    validation metric; the best epoch's weights are kept.
    """
    from recausal import __version__
    from recausal._compat import in_memory_trainer_class, quiet_trainer_side_effects, recbole_config
    from recausal.data import resolve_dataset

    cfg = load_train_config(config_path)
    cfg.update(overrides or {})
    files = resolve_dataset(cfg["dataset"], cfg.get("data_path"))
    settings = {**DEFAULTS, **{k: v for k, v in cfg.items() if k not in ("model", "dataset")}}
    settings["data_path"] = str(files.data_path)
    out = Path(out or Path("bundles") / f"{cfg['model'].lower()}-{files.name}")

    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

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
            config = recbole_config(cfg["model"], files.name, settings)
            init_seed(config["seed"], config["reproducibility"])
            torch.set_num_threads(int(cfg.get("threads", torch.get_num_threads())))
            dataset = create_dataset(config)
            train_data, valid_data, test_data = data_preparation(config, dataset)
            init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
            model = get_model(config["model"])(config, train_data.dataset).to("cpu")
            budget_s = 60.0 * float(cfg.get("time_budget_minutes", 0) or 0)

            def stop_when_over_budget(epoch: int, score: float) -> None:
                if budget_s and time.perf_counter() - start > budget_s:
                    raise _TimeBudgetReached(epoch)

            with quiet_trainer_side_effects():
                trainer = in_memory_trainer_class()(config, model)
                try:
                    trainer.fit(
                        train_data, valid_data, saved=True, callback_fn=stop_when_over_budget
                    )
                except _TimeBudgetReached as stop:
                    logger.info(
                        "time budget reached after epoch %d; keeping the best epoch", stop.epoch
                    )
                valid = trainer.best_valid_result
                test = trainer.evaluate(test_data, load_best_model=True)
            items = [str(t) for t in dataset.field2id_token[config["ITEM_ID_FIELD"]]]
            model_config = model_config_from_recbole(config, dataset.num(config["ITEM_ID_FIELD"]))
            best_epoch = int(getattr(trainer, "best_epoch", -1))
            epochs_run = len(trainer.train_loss_dict)
    finally:
        logger.removeHandler(handler)
    seconds = time.perf_counter() - start
    meta = {
        "recausal_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": cfg["model"],
        "dataset": {
            "name": files.name,
            "directory": str(files.directory.resolve()),
            "fingerprint": files.fingerprint(),
        },
        "training": {
            "config_file": Path(config_path).name,
            "settings": {k: v for k, v in cfg.items() if _jsonable(v)},
            "best_epoch": best_epoch,
            "epochs_run": epochs_run,
            "seconds": round(seconds, 1),
        },
        "metrics": {
            "source": "RecBole trainer, full ranking, leave-one-out by time",
            "valid": _round(valid),
            "test": _round(test),
        },
    }
    bundle_path = save_bundle(
        out, trainer.best_state_dict or model.state_dict(), model_config, items, meta
    )
    return TrainResult(
        bundle=bundle_path,
        model=cfg["model"],
        dataset=files.name,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=seconds,
        valid=_round(valid),
        test=_round(test),
    )
