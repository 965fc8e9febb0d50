"""Our variants side by side with the paper's Tables 1 (mAP) and 2 (rank distance)."""
from __future__ import annotations

import pandas as pd

from .vocab import DATASETS, EVALUATED

VARIANT_ORDER = list(EVALUATED)
SAMPLING_NAME = {"base": "none (zero-shot)", "mono": "X-X-mono", "cross": "X-Y", "hybrid": "hybrid"}

# arXiv 2408.10536, Table 1 (mAP) and Table 2 (rank distance).
PAPER = pd.DataFrame(
    [
        ("XLM-R", "mono", .792, .674, .547, .648, .584, .473, 410.2, 287.5),
        ("XLM-R", "cross", .755, .700, .593, .626, .620, .508, 295.4, 226.7),
        ("XLM-R", "hybrid", .798, .705, .593, .648, .623, .512, 286.6, 227.1),
        ("LaBSE", "mono", .808, .752, .652, .681, .656, .550, 261.5, 225.3),
        ("LaBSE", "cross", .801, .762, .679, .671, .677, .576, 225.2, 198.3),
        ("LaBSE", "hybrid", .817, .767, .682, .686, .681, .579, 221.1, 195.0),
    ],
    columns=["init", "variant", "xquad_r.map.mono", "xquad_r.map.cross", "xquad_r.map.multi",
             "mlqa_r.map.mono", "mlqa_r.map.cross", "mlqa_r.map.multi",
             "xquad_r.rank_distance", "mlqa_r.rank_distance"],
)
HEADLINE = [f"{d}.map.{s}" for d in DATASETS for s in ("mono", "cross", "multi")] + [
    f"{d}.rank_distance" for d in DATASETS
]


def flatten(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def results_table(metrics_by_variant: dict, init: str) -> pd.DataFrame:
    """One row per run (ours and the paper's), headline columns in the paper's order."""
    ours = []
    for variant in [v for v in VARIANT_ORDER if v in metrics_by_variant]:
        row = flatten(metrics_by_variant[variant])
        ours.append({"source": "this run", "init": init, "variant": variant, **row})
    frame = pd.concat([pd.DataFrame(ours), PAPER.assign(source="paper")], ignore_index=True)
    first = ["source", "init", "variant"] + HEADLINE
    return frame[first + [c for c in frame.columns if c not in first]]


def _fmt(value, digits=3):
    if pd.isna(value):
        return "–"
    return f"{value:.1f}" if digits == 1 else f"{value:.{digits}f}"


def _fmt_ci(value, interval, digits=3):
    """`0.635 [0.620, 0.650]`: our number with its 95% bootstrap interval when one is known."""
    if interval is None or pd.isna(value) or pd.isna(interval[0]):
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} [{_fmt(interval[0], digits)}, {_fmt(interval[1], digits)}]"


def _signed(value, digits):
    return "–" if pd.isna(value) else f"{value:+.{digits}f}"


def significance_lines(pairs: pd.DataFrame, dataset: str) -> list[str]:
    """Markdown: every pair of variants on every headline metric (difference, 95% CI, p)."""
    metrics = [m for m in dict.fromkeys(pairs["metric"]) if m != "map.multi_micro"]
    lines = [f"### {DATASETS[dataset]}", "",
             "| metric | pair | difference | 95% CI | p | p (Holm) |", "|---|---|---|---|---|---|"]
    rows = pairs[pairs["dataset"] == dataset]
    for metric in metrics:
        digits = 1 if metric == "rank_distance" else 3
        for _, r in rows[rows["metric"] == metric].iterrows():
            lines.append(f"| {metric} | {SAMPLING_NAME[r['a']]} − {SAMPLING_NAME[r['b']]} | "
                         f"{_signed(r['diff'], digits)} | [{_signed(r['lo'], digits)}, {_signed(r['hi'], digits)}] | "
                         f"{_fmt(r['p'])} | {_fmt(r['p_holm'])} |")
    return lines + [""]


def claims_lines(claims: pd.DataFrame, sentence: str, coverage: str) -> list[str]:
    """Markdown section: the paper's claims with intervals, raw and Holm-adjusted p, verdicts, and Breuer et
    al.'s ER / delta RI against the paper's rows (hybrid_ir.claims.claims_table's frame)."""
    inits = list(dict.fromkeys(PAPER["init"]))
    lines = ["## The paper's claims", "", f"{coverage} {sentence}", "",
             "Difference oriented so that positive favours hybrid (rank distance: baseline − hybrid). Superiority: "
             "null 0; non-inferiority: null −margin, the margin a quarter of the paper's median specialist advantage "
             "(in mAP; for rank distance as a share of the candidate pool, printed here in ranks; see "
             "hybrid_ir/claims.py). p: "
             "two-sided paired bootstrap p of the difference minus the null; Holm: adjusted over every row of this "
             "table. Verdict: supported when the Holm-adjusted p < 0.05 and the interval lies above the null, "
             "contradicted when it lies below, not resolved otherwise (a tie is not agreement). ER and ΔRI "
             "(Breuer et al., SIGIR 2020; ΔRI = RI(paper) − RI(ours)) set our effect against the paper's "
             f"{' and '.join(inits)} rows: another encoder, other training data, other pools, so they say how large "
             "our effect is beside the paper's, not whether the claim holds.", "",
             "| dataset | query languages | claim | test (margin) | difference | 95% CI | p | p (Holm) | verdict | "
             + " | ".join(f"ER {i} | ΔRI {i}" for i in inits) + " |",
             "|" + "---|" * (9 + 2 * len(inits))]
    for r in claims.to_dict(orient="records"):
        digits = 1 if r["metric"] == "rank_distance" else 3
        test = r["test"] if r["test"] == "superiority" else f"{r['test']} ({_fmt(r['margin'], digits)})"
        effects = [f"{_fmt(r.get(f'er_{i}'), 2)} | {_signed(r.get(f'dri_{i}'), 3)}" for i in inits]
        lines.append(f"| {DATASETS[r['dataset']]} | {r['scope']} | hybrid {r['claim']} | {test} | "
                     f"{_signed(r['diff'], digits)} | [{_signed(r['lo'], digits)}, {_signed(r['hi'], digits)}] | "
                     f"{_fmt(r['p'])} | {_fmt(r['p_holm'])} | **{r['verdict']}** | {' | '.join(effects)} |")
    return lines + [""]


def markdown_report(metrics_by_variant: dict, init: str, notes: list[str], intervals=None, pairs=None,
                    n_boot: int = 0, seed: int = 0, extra: list[str] | None = None, claims: list[str] | None = None,
                    coverage: str | None = None) -> tuple[str, pd.DataFrame]:
    """results.md text and table; with hybrid_ir.statistics or hybrid_ir.resampling frames, our numbers
    carry 95% intervals (coverage: the sentence saying what they resample; None = question ids); claims:
    the claims_lines section."""
    table = results_table(metrics_by_variant, init)
    ci = {} if intervals is None else {
        (r.variant, f"{r.dataset}.{r.metric}"): (r.lo, r.hi) for r in intervals.itertuples()}
    lines = ["# Results", "", *notes, ""]
    for dataset, title in DATASETS.items():
        lines += [f"## {title}: mAP and rank distance", "",
                  "| source | init | sampling | mAP mono | mAP cross | mAP multi | R@1 mono | R@10 multi | rank distance |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for _, r in table.iterrows():
            cols = ["map.mono", "map.cross", "map.multi", "recall.mono_r1", "recall.multi_r10", "rank_distance"]
            lines.append("| " + " | ".join([r["source"], r["init"], SAMPLING_NAME[r["variant"]]] + [
                _fmt_ci(r.get(f"{dataset}.{c}"), ci.get((r["variant"], f"{dataset}.{c}")) if r["source"] == "this run"
                        else None, 1 if c == "rank_distance" else 3) for c in cols
            ]) + " |")
        lines.append("")
    if intervals is not None:
        lines.insert(lines.index("## XQuAD-R: mAP and rank distance"),
                     (f"Our numbers: point estimate [95% percentile interval]. {coverage}\n" if coverage else
                      f"Our numbers: point estimate [95% percentile bootstrap interval over questions, "
                      f"B = {n_boot}, seed {seed}].\n"))
    lines += bias_lines(table, ci)
    lines += claims or []
    if pairs is not None:
        unit = "resamples" if coverage else "bootstrap resamples of question ids"
        lines += ["## Paired differences between variants", "",
                  f"Every variant is scored on the same {n_boot} {unit} (seed {seed}; a "
                  "question id carries all its translations). Difference = first − second; 95% percentile "
                  "interval of the resampled difference; p: two-sided bootstrap p-value, "
                  "2·min(#{d* ≤ 0} + 1, #{d* ≥ 0} + 1) / (B + 1), capped at 1 (smallest possible "
                  f"{2 / (n_boot + 1):.3f}); Holm: adjusted over the variant pairs of one metric. "
                  "Rank distance and language η²: lower is better; PEER and rank correlation: higher is better. " + (coverage or "These intervals cover question sampling only, "
                                                        "not training seeds."), ""]
        for dataset in DATASETS:
            if (pairs["dataset"] == dataset).any():
                lines += significance_lines(pairs, dataset)
    lines += extra or []
    return "\n".join(lines), table


# hybrid_ir.bias, in the order of the report's bias table; rank distance beside them
BIAS_COLUMNS = {"rank_distance": "rank distance ↓", "bias.peer": "PEER ↑", "bias.language_eta2": "language η² ↓",
                "bias.rank_corr": "rank corr. of translations ↑",
                "bias.same_lang_top10": "same-language share of top 10"}
BIAS_NOTE = (
    "Multi setting, full depth. PEER (Yang et al., SIGIR 2024): the Kruskal-Wallis p-value that candidates of "
    "every language have equal expected rank, averaged over the relevant and the non-relevant candidates (weights "
    "0.5, 0.5). With one relevant candidate per language the relevant half is a constant of the pool (0.440 with "
    "11 languages), so only the non-relevant half separates variants, and with thousands of candidates it is near 0 "
    "for any measurable language effect. Language η²: the effect size behind it, the share of the non-relevant "
    "candidates' rank variance explained by their language (0: none). Rank correlation: Spearman between the full "
    "rankings of two translations of one question, mean over its language pairs, then over question ids "
    "(arXiv 2509.06195). Same-language share of the top 10: macro over query languages; a language-blind ranker "
    "gives the query language's share of the pool (last row; its macro average is 1 / the number of languages, "
    "the per-language bars below show the spread).")


def bias_lines(table: pd.DataFrame, ci: dict) -> list[str]:
    """Markdown: our variants' language-bias measures beside rank distance, with intervals (none if absent)."""
    ours = table[table["source"] == "this run"]
    lines = []
    for dataset, title in DATASETS.items():
        cols = [f"{dataset}.{c}" for c in BIAS_COLUMNS]
        if any(c not in ours.columns or ours[c].isna().all() for c in cols[1:]):
            continue
        lines += [f"### {title}", "", "| sampling | " + " | ".join(BIAS_COLUMNS.values()) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        for _, r in ours.iterrows():
            lines.append(f"| {SAMPLING_NAME[r['variant']]} | " + " | ".join(
                _fmt_ci(r[c], ci.get((r["variant"], c)), 1 if c.endswith("rank_distance") else 3) for c in cols) + " |")
        key = f"{dataset}.bias.same_lang_top10_blind"  # a property of the pool: the same for every variant
        blind = ours[key].iloc[0] if key in ours else float("nan")
        lines += ["| language-blind ranker (expected) | – | – | – | – | " + _fmt(blind) + " |", ""]
    if lines:
        lines = ["## Language bias beside rank distance", "", BIAS_NOTE, "", *lines]
    return lines


SAME_LANGUAGE_LINES = [
    "## Same-language share of the top 10", "", "Multi setting, per query language; black tick: the share a "
    "language-blind ranker gives (the language's share of the pool). Table: "
    "[plots/same_language_top10.csv](plots/same_language_top10.csv).", "",
    "![same-language share](plots/same_language_top10.png)", ""]


def pair_difference_lines(dataset: str, title: str, comparisons, n_boot: int) -> list[str]:
    """Markdown: the heatmap and CSV links of the per-language-pair paired differences of one dataset."""
    names = " and ".join(f"{SAMPLING_NAME[a]} − {SAMPLING_NAME[b]}" for a, b in comparisons)
    links = ", ".join(f"[matrices/{dataset}_diff_{a}_vs_{b}.csv](matrices/{dataset}_diff_{a}_vs_{b}.csv)"
                      for a, b in comparisons)
    return [f"{title}: {names}, mAP per language pair (cells ×100); hatched: the 95% interval of the paired "
            f"difference (B = {n_boot} resamples of question ids) includes 0, no adjustment for the many cells "
            "(the CSVs give p and Holm over the cells of one matrix).", "",
            f"![{title}: paired differences](plots/heatmap_{dataset}_diff.png)", "", f"Tables: {links}", ""]


MIRACL_MEASURES = {"ndcg_10": "nDCG@10", "recall_100": "Recall@100"}


def miracl_lines(metrics_by_variant: dict, intervals: pd.DataFrame | None, pairs: pd.DataFrame | None,
                 note: str) -> list[str]:
    """Markdown section: MIRACL per language and macro mean with 95% intervals, and paired differences."""
    lines = ["## MIRACL (monolingual retrieval)", ""]
    ran = {v: m for v, m in metrics_by_variant.items() if m}
    if not ran or intervals is None:
        return lines + ["Off: `miracl.languages` is empty (MIRACL is online: see the README).", ""]
    lines += [note, "", "| sampling | language | topics | passages | nDCG@10 | Recall@100 |", "|---|---|---|---|---|---|"]
    ci = {(r.variant, r.lang, r.metric): (r.estimate, (r.lo, r.hi)) for r in intervals.itertuples()}
    for v in [v for v in VARIANT_ORDER if v in ran]:
        langs = [k for k in ran[v] if k != "mean"] + ["mean"]
        for lang in langs:
            cells = [_fmt_ci(*ci[(v, lang, m)]) if (v, lang, m) in ci else "–" for m in MIRACL_MEASURES]
            topics = sum(ran[v][k]["topics"] for k in langs[:-1]) if lang == "mean" else ran[v][lang]["topics"]
            passages = "" if lang == "mean" else f"{ran[v][lang]['passages']:,}"
            lines.append(f"| {SAMPLING_NAME[v]} | {lang} | {topics} | {passages} | {' | '.join(cells)} |")
    lines += ["", "Paired differences (macro mean over languages; topics resampled within each language, the "
              "same resamples for every variant; Holm over the variant pairs of one metric):", "",
              "| metric | pair | difference | 95% CI | p | p (Holm) |", "|---|---|---|---|---|---|"]
    for _, r in pairs[pairs["lang"] == "mean"].iterrows():
        lines.append(f"| {MIRACL_MEASURES[r['metric']]} | {SAMPLING_NAME[r['a']]} − {SAMPLING_NAME[r['b']]} | "
                     f"{_signed(r['diff'], 3)} | [{_signed(r['lo'], 3)}, {_signed(r['hi'], 3)}] | "
                     f"{_fmt(r['p'])} | {_fmt(r['p_holm'])} |")
    return lines + [""]


def run_notes(model_source: str, train, mono_ratio: float, eval_articles: int, ev, best: str) -> list[str]:
    """The report's opening notes: what was trained and evaluated."""
    return [
        f"Encoder: `{model_source}`; at most {train.steps} steps of batch {train.batch_size} per variant, "
        f"weights of the best validation loss ({train.val_questions} held-out question ids; best step: "
        f"{best or 'n/a'}); hybrid mono_ratio {mono_ratio}; training seeds {', '.join(map(str, train.seeds))} "
        "(every trained number is the mean over them).",
        f"XQuAD-R: {eval_articles} held-out articles, {len(ev.xquad_r_languages)} languages. "
        f"MLQA-R: {ev.mlqa_r_question_ids or 'all'} sampled question ids, {len(ev.mlqa_r_languages)} languages "
        "(zero-shot: no MLQA-R data is trained on; the leak guard drops training articles sharing an id, "
        "title or sentence with either evaluation set).",
        "mAP multi is the macro average over query languages (`map.multi_micro` in the metrics files is "
        "LAReQA's plain mean over questions). Paper rows: XLM-R / LaBSE trained on its in-house data.",
    ]


def best_steps(per_run_metrics: dict) -> str:
    """`mono-13 100, ...`: the step early stopping kept, per trained run."""
    return ", ".join(f"{name} {m['train']['best_step']}" for name, m in per_run_metrics.items()
                     if m.get("train", {}).get("best_step") is not None)


def miracl_note(split: str, index: str, max_docs: int, n_boot: int) -> str:
    return (f"`{split}` topics with a relevant passage; index `{index}`"
            + (f"; only the first {max_docs:,} passages of each corpus (a smoke run, not comparable with "
               "published MIRACL numbers)" if max_docs else "")
            + f". Point estimate [95% bootstrap interval over topics, B = {n_boot}].")


def per_language_plot(per_lang: pd.DataFrame) -> pd.DataFrame:
    """reports/plots/per_language_map.csv: mono and multi mAP per variant, dataset and query language."""
    plot = per_lang[per_lang["setting"] != "cross"][["variant", "dataset", "setting", "query_lang", "map"]]
    return plot.assign(series=plot["dataset"] + "/" + plot["setting"] + "/" + plot["query_lang"])
