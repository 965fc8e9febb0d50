"""Shared vocabularies: variants, datasets, languages, sources. A leaf module (imports nothing of the project)."""

VARIANTS = ("mono", "cross", "hybrid")  # the sampling variants, each trained from the base model
EVALUATED = ("base",) + VARIANTS  # every encoder that is encoded and evaluated; base is the untrained model
DATASETS = {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R"}  # LAReQA eval sets: key -> display name
POOL_TABLES = ("queries", "candidates")  # the two tables of an eval pool (data/eval/DATASET/NAME.parquet)
LAREQA_SETTINGS = ("mono", "cross", "multi")  # query and candidate languages equal, different, pooled

XQUAD_ARTICLES = 48  # XQuAD's articles (SQuAD v1.1 dev), split into training and held-out ones
XQUAD_R_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_R_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")
PAPER_TRAIN_LANGUAGES = ("ar", "de", "en", "es", "hi", "ru", "th", "tr", "zh")  # el and vi: its unseen languages

# Training sources (hybrid_ir/sources.py) and the languages each provides
SOURCE_LANGUAGES = {
    "xquad": ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"),
    "squad_mlqa": ("ar", "de", "en", "es", "hi", "vi", "zh"),
    "mmarco": ("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "nl", "pt", "ru", "vi", "zh"),
}

# FLORES-200 codes (NLLB) of the languages the MT stage can target; M2M-100 uses "__xx__" tokens
FLORES = {
    "ar": "arb_Arab", "bn": "ben_Beng", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "es": "spa_Latn",
    "fa": "pes_Arab", "fi": "fin_Latn", "fr": "fra_Latn", "hi": "hin_Deva", "id": "ind_Latn", "it": "ita_Latn",
    "ja": "jpn_Jpan", "ko": "kor_Hang", "nl": "nld_Latn", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl",
    "sw": "swh_Latn", "te": "tel_Telu", "th": "tha_Thai", "tr": "tur_Latn", "vi": "vie_Latn", "zh": "zho_Hans",
}

MIRACL_TOPICS_REPO = "miracl/miracl"
MIRACL_CORPUS_REPO = "miracl/miracl-corpus"
# Passages per MIRACL corpus (MIRACL paper, Table 1): disk estimates before any download
MIRACL_CORPUS_SIZES = {
    "ar": 2_061_414, "bn": 297_265, "de": 15_866_222, "en": 32_893_221, "es": 10_373_953, "fa": 2_207_172,
    "fi": 1_883_509, "fr": 14_636_953, "hi": 506_264, "id": 1_446_315, "ja": 6_953_614, "ko": 1_486_752,
    "ru": 9_543_918, "sw": 131_924, "te": 518_079, "th": 542_166, "yo": 49_043, "zh": 4_934_368,
}
MIRACL_LANGUAGES = tuple(sorted(MIRACL_CORPUS_SIZES))
PRECISIONS = ("auto", "bf16", "fp32", "fp16")  # train.precision; encode.precision takes the first three
POOLINGS = ("auto", "mean", "cls")  # model.pooling; auto: cls for LaBSE, else mean
LOSS_FORMS = ("infonce", "paper")  # train.loss_form (hybrid_ir.loss.info_nce_loss)
# train.schedule -> the transformers scheduler after the warm-up
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}
CROSS_PAIRINGS = ("per_triplet", "per_batch")  # sampler.cross_pairing: a language pair per triplet or per batch
SOURCE_WEIGHTS = ("proportional", "equal")  # pairs.source_weights: each source's share of question ids
