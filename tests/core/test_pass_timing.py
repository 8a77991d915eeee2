"""The fwd+bwd yardstick: one backward per batch into every parameter, and the model left as found."""

import torch

from grin_core.scoring.pass_timing import forward_backward_seconds

RECORDS = [
    {"question": f"Where was author {i} born?", "answer": f"Author {i} was born in Porto in 19{50 + i}."}
    for i in range(12)
]


def test_one_backward_per_batch_reaches_every_parameter(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0)
    counts = {name: 0 for name, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(lambda _, name=name: counts.__setitem__(name, counts[name] + 1))
    model.lm_head.weight.requires_grad_(False)  # frozen before the pass: it still gets its gradient

    seconds = forward_backward_seconds(model, tiny_tokenizer, RECORDS, batch_size=5)

    assert seconds > 0
    assert set(counts.values()) == {3}  # ceil(12 / 5) batches, each one backward into every parameter


def test_weights_flags_gradients_and_mode_are_restored(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0).train()
    model.lm_head.weight.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    forward_backward_seconds(model, tiny_tokenizer, RECORDS, batch_size=4)

    assert model.training
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
        assert p.grad is None, name
        assert p.requires_grad == flags[name], name
