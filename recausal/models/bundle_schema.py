"""The one check of a bundle's JSON parts: types and ranges of config.json, meta.json, items.json.

Every problem is a :class:`~recausal.errors.BundleError` that names the file, the field (as a
dotted path such as ``recbole.hidden_size``), the value found and what is allowed. Fields that
recausal and RecBole's model constructors read are typed; other entries are kept as they are
(bundles may carry more, e.g. RecBole's run settings). Whether the weights fit the config is
checked when the network is built (:func:`recausal.models.loading.from_bundle`).

A little over 400 lines, most of them the declarative field lists of the three files' schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from recausal.errors import BundleError

FORMAT = "recausal-bundle"
FORMAT_VERSION = 1

# Bounds on the architecture: far above any sequential recommender, low enough that a shape
# check of the network (built without memory, see loading.py) stays quick.
MAX_ITEMS = 1_000_000_000
MAX_SEQUENCE = 100_000
MAX_WIDTH = 65_536
MAX_DEPTH = 64
MAX_HEADS = 1_024

Size = Annotated[StrictInt, Field(ge=1, le=MAX_WIDTH)]
Depth = Annotated[StrictInt, Field(ge=1, le=MAX_DEPTH)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Count = Annotated[StrictInt, Field(ge=0)]
Digest = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]


class _Section(BaseModel):
    """A JSON object: typed fields checked strictly (no "64" for 64), other keys kept."""

    model_config = ConfigDict(strict=True, extra="allow")


class RecBoleSettings(_Section):
    """``config.json``'s ``recbole``: the settings RecBole's model constructors read.

    The typed settings may be absent (a family that does not read them), but not null: a
    constructor would take ``None`` and fail later, when the model scores. Which of them a
    family needs is :data:`FAMILY_SETTINGS`.
    """

    MAX_ITEM_LIST_LENGTH: Annotated[StrictInt, Field(ge=2, le=MAX_SEQUENCE)]
    ITEM_ID_FIELD: Name
    LIST_SUFFIX: StrictStr
    ITEM_LIST_LENGTH_FIELD: Name
    NEG_PREFIX: StrictStr
    USER_ID_FIELD: Name | None = None
    model: Name | None = None
    # absent or a value, never null (see the class docstring)
    hidden_size: Size = Field(default=None)
    embedding_size: Size = Field(default=None)
    inner_size: Size = Field(default=None)
    k_interests: Size = Field(default=None)
    n_layers: Depth = Field(default=None)
    num_layers: Depth = Field(default=None)
    block_num: Depth = Field(default=None)
    step: Depth = Field(default=None)
    n_heads: Annotated[StrictInt, Field(ge=1, le=MAX_HEADS)] = Field(default=None)
    kernel_size: Annotated[StrictInt, Field(ge=1, le=MAX_SEQUENCE)] = Field(default=None)
    dilations: Annotated[
        list[Annotated[StrictInt, Field(ge=1, le=MAX_SEQUENCE)]],
        Field(min_length=1, max_length=MAX_DEPTH),
    ] = Field(default=None)
    hidden_dropout_prob: Probability = Field(default=None)
    attn_dropout_prob: Probability = Field(default=None)
    dropout_prob: Probability = Field(default=None)
    dropout_probs: Annotated[list[Probability], Field(min_length=2, max_length=MAX_DEPTH)] = Field(
        default=None
    )
    mask_ratio: Probability = Field(default=None)
    ft_ratio: Probability = Field(default=None)
    sess_dropout: Probability = Field(default=None)
    item_dropout: Probability = Field(default=None)
    weight: Probability = Field(default=None)
    layer_norm_eps: Positive = Field(default=None)
    temperature: Positive = Field(default=None)
    initializer_range: NonNegative = Field(default=None)
    reg_weight: NonNegative = Field(default=None)
    joint_train: StrictBool = Field(default=None)
    hidden_act: Literal["gelu", "relu", "swish", "tanh", "sigmoid"] = Field(default=None)
    loss_type: Literal["CE", "BPR"] = Field(default=None)
    dnn_type: Literal["trm", "ave"] = Field(default=None)


_TRANSFORMER = (
    "n_layers",
    "n_heads",
    "inner_size",
    "hidden_dropout_prob",
    "attn_dropout_prob",
    "hidden_act",
    "layer_norm_eps",
    "initializer_range",
    "loss_type",
)

#: the typed settings each supported RecBole family's constructor reads (besides the
#: required ones of :class:`RecBoleSettings`)
FAMILY_SETTINGS: dict[str, tuple[str, ...]] = {
    "SASRec": ("hidden_size", *_TRANSFORMER),
    "BERT4Rec": ("hidden_size", *_TRANSFORMER, "mask_ratio"),
    "GCSAN": ("hidden_size", *_TRANSFORMER, "step", "weight", "reg_weight"),
    "LightSANs": ("hidden_size", *_TRANSFORMER, "k_interests"),
    "CORE": (
        "embedding_size",
        *_TRANSFORMER,
        "dnn_type",
        "sess_dropout",
        "item_dropout",
        "temperature",
    ),
    "GRU4Rec": ("embedding_size", "hidden_size", "num_layers", "dropout_prob", "loss_type"),
    "NARM": ("embedding_size", "hidden_size", "n_layers", "dropout_probs", "loss_type"),
    "STAMP": ("embedding_size", "loss_type"),
    "NextItNet": ("embedding_size", "block_num", "dilations", "kernel_size", "loss_type"),
    "SRGNN": ("embedding_size", "step", "loss_type"),
    "RepeatNet": ("embedding_size", "hidden_size", "dropout_prob", "joint_train"),
}


class BundleConfig(_Section):
    """``config.json``: the model family, its number of item ids, its RecBole settings."""

    model: Name
    n_items: Annotated[StrictInt, Field(ge=2, le=MAX_ITEMS)]
    recbole: RecBoleSettings


class DatasetMeta(_Section):
    """``meta.json``'s ``dataset``: the data the model was trained on."""

    name: StrictStr | None = None
    directory: StrictStr | None = None
    fingerprint: StrictStr | None = None
    repeated_interactions: StrictBool | None = None


class TrainingMeta(_Section):
    """``meta.json``'s ``training``: how recausal trained the model."""

    config_file: StrictStr | None = None
    settings: dict[str, Any] | None = None
    best_epoch: Annotated[StrictInt, Field(ge=-1)] | None = None
    epochs_run: Count | None = None
    seconds: NonNegative | None = None
    stopped_early: StrictBool | None = None
    history: list[dict[str, Any]] | None = None


class ImportedMeta(_Section):
    """``meta.json``'s ``imported``: the RecBole checkpoint a bundle was converted from."""

    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)

    source_kind: StrictStr | None = Field(default=None, alias="from")
    source: StrictStr | None = None
    source_sha256: Digest | None = None
    reader: StrictStr | None = None
    epoch: Count | None = None
    trained_on: StrictStr | None = None
    recbole_version: StrictStr | None = None


class MetricsMeta(_Section):
    """``meta.json``'s ``metrics``: the scores recorded when the bundle was made."""

    source: StrictStr | None = None
    valid: dict[str, float] | None = None
    test: dict[str, float] | None = None
    valid_metric: StrictStr | None = None
    best_valid_score: float | None = None


class BundleMeta(_Section):
    """``meta.json``: provenance, dataset, training, metrics and the weights' digest."""

    format: Literal["recausal-bundle"]
    format_version: Literal[1]
    recausal_version: StrictStr | None = None
    created: StrictStr | None = None
    model: Name | None = None
    source: StrictStr | None = None
    # Each section may be absent, but when present it must be an object (readers look into
    # it without checking for null).
    dataset: DatasetMeta = Field(default=None)
    training: TrainingMeta = Field(default=None)
    imported: ImportedMeta = Field(default=None)
    metrics: MetricsMeta = Field(default=None)
    weights_sha256: Digest | None = None


_PHRASES = {
    "missing": "is missing",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a JSON list",
    "string_too_short": "must not be empty",
    "string_too_long": "must have at most {max_length} characters",
    "too_short": "must have at least {min_length} entries",
    "too_long": "must have at most {max_length} entries",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be {expected}",
    "string_pattern_mismatch": "must match {pattern}",
}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _problem(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    phrase = _PHRASES.get(kind)
    if phrase is not None:
        try:
            phrase = phrase.format(**(error.get("ctx") or {}))
        except (KeyError, IndexError, ValueError):
            phrase = None
    if phrase is None:
        msg = str(error.get("msg", "is not allowed"))
        phrase = msg.replace("Input should", "should").replace("Value error, ", "")
    if kind == "missing":
        return f"field {_field(error['loc'])!r} {phrase}"
    return f"field {_field(error['loc'])!r} {phrase}; got {_short(error.get('input'))}"


def _raise_invalid(file: Path, exc: ValidationError) -> NoReturn:
    errors = exc.errors(include_url=False)
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    raise BundleError(f"bundle file {file}: {_problem(errors[0])}{more}") from None


def check_config(config: Any, file: Path) -> dict[str, Any]:
    """Check a bundle's ``config.json`` content.

    Args:
        config: the parsed JSON.
        file: the file it came from (named in messages).

    Returns:
        ``config`` itself (unchanged: entries that are not typed are kept as they are).

    Raises:
        BundleError: a field is missing, of the wrong type or out of range.
    """
    if not isinstance(config, dict):
        raise BundleError(f"bundle file {file} must hold a JSON object; got {_short(config)}")
    try:
        parsed = BundleConfig.model_validate(config)
    except ValidationError as exc:
        _raise_invalid(file, exc)
    for key in FAMILY_SETTINGS.get(parsed.model, ()):
        if key not in config["recbole"]:
            raise BundleError(
                f"bundle file {file}: field 'recbole.{key}' is missing (a {parsed.model} "
                "network is built from it)"
            )
    inner = parsed.recbole.model
    if inner is not None and inner != parsed.model:
        raise BundleError(
            f"bundle file {file}: field 'recbole.model' is {inner!r} but field 'model' is "
            f"{parsed.model!r}; they must name the same RecBole model"
        )
    return config


def check_meta(meta: Any, file: Path) -> dict[str, Any]:
    """Check a bundle's ``meta.json`` content.

    Args:
        meta: the parsed JSON.
        file: the file it came from (named in messages).

    Returns:
        ``meta`` itself.

    Raises:
        BundleError: it is not a recausal bundle's metadata, has another format version, or
            a field is of the wrong type.
    """
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(
            f"{file} is not a recausal bundle's metadata (field 'format' must be {FORMAT!r})"
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleError(
            f"bundle file {file}: field 'format_version' is {_short(version)} (format version "
            f"{_short(version)}); this recausal reads version {FORMAT_VERSION}"
        )
    try:
        BundleMeta.model_validate(meta)
    except ValidationError as exc:
        _raise_invalid(file, exc)
    return meta


def check_items(items: Any, file: Path) -> list[str]:
    """Check a bundle's ``items.json``: a list of distinct item tokens (index = internal id).

    Args:
        items: the parsed JSON.
        file: the file it came from (named in messages).

    Returns:
        ``items`` itself.

    Raises:
        BundleError: it is not a list of strings, or a token appears twice (which would make
            one of the two items unreachable).
    """
    if not isinstance(items, list):
        raise BundleError(
            f"bundle file {file} must be a JSON list of item tokens; got {_short(items)}"
        )
    if len(items) < 2:
        raise BundleError(
            f"bundle file {file} has {len(items)} entries; it needs the padding token and at "
            "least one item token"
        )
    seen: dict[str, int] = {}
    for index, token in enumerate(items):
        if not isinstance(token, str):
            raise BundleError(
                f"bundle file {file}: entry [{index}] must be a string (an item token); "
                f"got {_short(token)}"
            )
        first = seen.setdefault(token, index)
        if first != index:
            raise BundleError(
                f"bundle file {file}: token {_short(token)} appears at ids {first} and {index}; "
                "each item id needs its own token"
            )
    return items


def check_parts(path: Path, config: Any, items: Any, meta: Any) -> None:
    """Check the JSON parts of the bundle at ``path`` and that they agree with each other.

    Args:
        path: the bundle folder (named in messages).
        config: ``config.json``'s content.
        items: ``items.json``'s content.
        meta: ``meta.json``'s content.

    Raises:
        BundleError: a part is invalid, ``items.json``'s length is not ``n_items``, or
            ``meta.json`` names another model than ``config.json``.
    """
    check_meta(meta, path / "meta.json")
    check_config(config, path / "config.json")
    check_items(items, path / "items.json")
    if len(items) != config["n_items"]:
        raise BundleError(
            f"bundle {path}: items.json has {len(items)} tokens but config.json's field "
            f"'n_items' is {config['n_items']}; they must be equal (padding included)"
        )
    recorded = meta.get("model")
    if recorded is not None and recorded != config["model"]:
        raise BundleError(
            f"bundle {path}: meta.json's field 'model' is {recorded!r} but config.json's is "
            f"{config['model']!r}; they must name the same RecBole model"
        )
