"""One rule-based sentence splitter for texts without sentence breaks (SQuAD, MLQA translate-train, XQuAD ro).

The rule, in order:

1. A *terminator* is a run of ``. ! ? …`` or the Arabic ``؟``, the Devanagari danda ``। ॥`` or the
   CJK full stops ``。 ！ ？ ｡``, optionally followed by closing quotes and brackets.
2. After a CJK terminator a sentence ends (CJK puts no space between sentences).
3. After any other terminator a sentence ends only where whitespace follows and the next
   character is neither a lower-case letter nor another terminator (a spaced ellipsis ``. . .``);
   scripts without case, such as Arabic or Hindi, always qualify.
4. A bracketed note right after an end (``[citation needed]``) stays with the sentence before it;
   the sentence ends after the note when the next one does not start in lower case.
5. A full stop does not end a sentence after an abbreviation: a single letter (initials such as
   ``J. R. R.``), a dotted abbreviation (``U.S.``, ``e.g.``, ``z.B.``), a word in :data:`ABBREVIATIONS`,
   or, in German and Turkish, a number of at most three digits (ordinals: ``3. Oktober``, ``19. yüzyıl``).
6. No boundary is put inside a protected span (an answer), so an answer never straddles two sentences.

Sentences are ``(start, end)`` character spans, trimmed of surrounding whitespace, in order; the text
between spans is whitespace. Thai marks no sentence end with punctuation, so a Thai paragraph is
mostly one span. :func:`agreement` measures the rule against XQuAD-R's own ``sentence_breaks``
(the README and ``reports/sentences.json`` hold the figures).
"""
from __future__ import annotations

import re
from pathlib import Path

CJK_TERMINATORS = "。！？｡"
TERMINATORS = ".!?…؟।॥" + CJK_TERMINATORS
CLOSERS = "\"'”’»)]}」』）】〕›"
ABBREVIATIONS = frozenset("""
    mr mrs ms dr prof st jr sr mt ft vs approx ca inc ltd co corp no nos vol fig gen col lt sgt capt rev gov
    sen rep pres jan feb mar apr jun jul aug sep sept oct nov dec
    bzw nr hr fr ggf vgl sog
    sra srta dra ud uds pág núm ee uu
    гг им ул св тыс млн млрд
""".split())
ORDINAL_LANGUAGES = frozenset({"de", "tr"})

_BOUNDARY = re.compile(rf"[{re.escape(TERMINATORS)}]+[{re.escape(CLOSERS)}]*")


def _ends_with_abbreviation(text: str, dot: int, lang: str | None) -> bool:
    """True when the full stop at `dot` closes an abbreviation, not a sentence."""
    start = dot
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "([{\"'«“":
        start -= 1
    word = text[start:dot]
    if not word or word[-1] in CLOSERS:
        return False
    if len(word) == 1 and word.isalpha():
        return True  # an initial
    if "." in word and all(len(part) <= 2 and part.isalpha() for part in word.split(".")):
        return True  # U.S, e.g, z.B
    if word.casefold() in ABBREVIATIONS:
        return True
    return lang in ORDINAL_LANGUAGES and word.isdigit() and len(word) <= 3


def _after_bracket(text: str, start: int) -> int | None:
    """End of a bracketed note opening at `start` (``[citation needed]``) when a sentence follows it."""
    close = text.find("]", start, start + 60)
    if close < 0:
        return None
    nxt = close + 1
    while nxt < len(text) and text[nxt].isspace():
        nxt += 1
    return close + 1 if nxt < len(text) and not text[nxt].islower() else None


def _boundaries(text: str, lang: str | None):
    """Character offsets where a sentence ends (exclusive end of the terminator run)."""
    for match in _BOUNDARY.finditer(text):
        run, end = match.group(0), match.end()
        nxt = end
        while nxt < len(text) and text[nxt].isspace():
            nxt += 1
        if nxt < len(text) and text[nxt] == "[":  # the note belongs to the sentence before it
            after = _after_bracket(text, nxt)
            if after is not None:
                yield after
            continue
        if any(ch in CJK_TERMINATORS for ch in run):
            yield end
            continue
        if end >= len(text) or not text[end].isspace():
            continue
        if nxt == len(text) or text[nxt].islower() or text[nxt] in TERMINATORS:
            continue
        first = match.start()
        if run[0] == "." and run.rstrip(CLOSERS) == "." and _ends_with_abbreviation(text, first, lang):
            continue
        yield end


def split_spans(text: str, lang: str | None = None, protect=()) -> list[tuple[int, int]]:
    """Sentence spans of `text`; no boundary falls inside a (start, end) span of `protect`."""
    cuts = sorted({b for b in _boundaries(text, lang) if not any(s < b < e for s, e in protect)})
    spans, start = [], 0
    for cut in cuts + [len(text)]:
        seg_start, seg_end = start, cut
        while seg_start < seg_end and text[seg_start].isspace():
            seg_start += 1
        while seg_end > seg_start and text[seg_end - 1].isspace():
            seg_end -= 1
        if seg_end > seg_start:
            spans.append((seg_start, seg_end))
        start = cut
    return spans


def split(text: str, lang: str | None = None) -> list[str]:
    return [text[s:e] for s, e in split_spans(text, lang)]


def _starts(text: str, spans) -> set[int]:
    """Internal boundaries as the offset of the first non-space character of each later sentence."""
    out = set()
    for start, _ in list(spans)[1:]:
        while start < len(text) and text[start].isspace():
            start += 1
        out.add(start)
    return out


def agreement(xquad_r_dir: Path, languages) -> dict:
    """Per language: how the splitter agrees with XQuAD-R's `sentence_breaks`.

    `boundary_precision` / `boundary_recall` / `boundary_f1` compare internal sentence starts;
    `paragraphs_exact` is the share of paragraphs split exactly alike; `answer_sentence` is the share
    of questions whose answer-bearing sentence (the training positive) is the same text both ways.
    """
    from .corpora import answer_sentence, iter_paragraphs, qa_answer_start, read_squad

    out = {}
    for lang in sorted(languages):
        path = Path(xquad_r_dir) / f"{lang}.json"
        tp = n_pred = n_gold = exact = paras = same = questions = 0
        for _, _, para in iter_paragraphs(read_squad(path), path):
            context, gold = para["context"], para["sentence_breaks"]
            pred = split_spans(context, lang)
            g, p = _starts(context, gold), _starts(context, pred)
            tp, n_pred, n_gold = tp + len(g & p), n_pred + len(p), n_gold + len(g)
            paras += 1
            exact += g == p
            for qa in para["qas"]:
                where = f"{path} question {qa.get('id', '?')}"
                start = qa_answer_start(qa, where)
                gs, ge = gold[answer_sentence(gold, start, where)]
                hits = [(s, e) for s, e in pred if s <= start < e]
                questions += 1
                same += bool(hits) and context[hits[0][0]:hits[0][1]].strip() == context[gs:ge].strip()
        precision = tp / n_pred if n_pred else 1.0
        recall = tp / n_gold if n_gold else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[lang] = {
            "paragraphs": paras, "paragraphs_exact": round(exact / paras, 4),
            "boundary_precision": round(precision, 4), "boundary_recall": round(recall, 4),
            "boundary_f1": round(f1, 4), "answer_sentence": round(same / questions, 4),
        }
    return out
