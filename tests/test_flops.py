"""FLOP counts of the encoder (hybrid_ir.flops): a hand count on a tiny config, and torch's own count."""
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel

from hybrid_ir import flops

TINY = {"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 3}


def test_hand_count_on_a_tiny_config():
    # per layer: weights 4*4^2 + 2*4*8 = 128; linear 2*128*(2+3) = 1280; attention 4*4*(2^2+3^2) = 208
    assert flops.linear_params(TINY) == 128
    assert flops.layer_forward_flops(TINY, [2, 3]) == {"linear": 1280, "attention": 208}
    assert flops.forward_flops(TINY, [2, 3]) == 3 * 1488
    assert flops.forward_flops(TINY, [2, 3], layers=1) == 1488
    # 1 frozen layer forward, 2 trainable at 3x, less the first trainable layer's Q/K/V input grads 2*3*4^2*5
    assert flops.train_step_flops(TINY, [2, 3], frozen_layers=1) == 1488 + 3 * 2 * 1488 - 480
    assert flops.train_step_flops(TINY, [2, 3], frozen_layers=0, input_grad=True) == 3 * 3 * 1488
    assert flops.train_step_flops(TINY, [2, 3], frozen_layers=3) == 3 * 1488
    with pytest.raises(ValueError, match="frozen_layers"):
        flops.train_step_flops(TINY, [2, 3], frozen_layers=4)


def test_padded_lengths_sort_then_pad_per_batch():
    assert flops.padded_lengths([3, 1, 2, 5], 2).tolist() == [5, 5, 2, 2]
    # sorted by another key (sentence-transformers sorts by characters): batches [1, 5] and [3, 2]
    assert flops.padded_lengths([3, 1, 2, 5], 2, keys=[1, 9, 0, 8]).tolist() == [5, 5, 3, 3]
    assert flops.padded_lengths(np.array([4]), 8).tolist() == [4]


def test_counts_equal_torch_flop_counter_on_a_tiny_bert():
    cfg = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=3, num_attention_heads=2,
                     intermediate_size=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg._attn_implementation = "eager"  # matmul attention: the counter sees its bmm (not CPU flash attention's)
    torch.manual_seed(0)
    model = BertModel(cfg, add_pooling_layer=False)
    ids = torch.randint(5, 50, (2, 5))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=ids)
    assert counter.get_total_flops() == flops.forward_flops(cfg, [5, 5])
    for p in [*model.embeddings.parameters(), *model.encoder.layer[0].parameters()]:
        p.requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids).last_hidden_state.sum().backward()
    assert counter.get_total_flops() == flops.train_step_flops(cfg, [5, 5], frozen_layers=1)
