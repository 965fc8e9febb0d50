"""Tokenizer loading, without transformers 4.57's false "incorrect regex pattern" alarm."""
from __future__ import annotations

import json
import logging

# transformers 4.57.3-4.57.6 (tokenization_utils_base._patch_mistral_regex) log this for every local
# directory whose config.json says it was written by transformers 4.57.3-4.x: the check reads only that
# version, not the tokenizer. The alarm is about the Split regex of Mistral tokenizers; XLM-R/e5 tokenizers
# pre-tokenize with Metaspace, which has no regex (and `fix_mistral_regex=True` fails on them).
ALARM = "with an incorrect regex pattern"
ALARM_LOGGER = "transformers.tokenization_utils_base"


class _HoldAlarm(logging.Filter):
    """Holds back the alarm's records (only those) logged while it is attached."""

    def __init__(self):
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if ALARM in record.getMessage():
            self.held.append(record)
            return False
        return True


def load_tokenizer(path, **kwargs):
    """AutoTokenizer.from_pretrained(path); the regex alarm is dropped unless the tokenizer has a regex."""
    from transformers import AutoTokenizer

    logger = logging.getLogger(ALARM_LOGGER)
    hold = _HoldAlarm()
    logger.addFilter(hold)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
    finally:
        logger.removeFilter(hold)
    if hold.held and has_split_regex(tokenizer):
        for record in hold.held:  # could be the real thing: let it through
            logger.handle(record)
    return tokenizer


def has_split_regex(tokenizer) -> bool:
    """Whether the fast tokenizer pre-tokenizes with a Split regex (what the Mistral fix replaces)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer: the fix does not apply
        return False
    return _split_regex(json.loads(backend.to_str()).get("pre_tokenizer"))


def _split_regex(node) -> bool:
    if isinstance(node, dict):
        if node.get("type") == "Split" and "Regex" in (node.get("pattern") or {}):
            return True
        return any(_split_regex(v) for v in node.values())
    if isinstance(node, list):
        return any(_split_regex(v) for v in node)
    return False
