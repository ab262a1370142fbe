"""A training step's forward and backward pass for every family, on CPU."""

import pytest
import torch
import torch.nn.functional as F

from fer_core.models import create_model


def _step(model, x, y):
    model.train()
    out = model(x)
    logits, aux = out if isinstance(out, tuple) else (out, None)
    loss = F.cross_entropy(logits, y) + (0.4 * F.cross_entropy(aux, y) if aux is not None else 0)
    loss.backward()
    return logits, aux


def _trainable_without_grad(model):
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.slow
def test_autofernet_trains_with_aux_head_and_drop_path():
    torch.manual_seed(0)
    model = create_model("autofernet")
    model.drop_path_prob = 0.2
    x, y = torch.rand(4, 1, 44, 44), torch.randint(0, 7, (4,))
    logits, aux = _step(model, x, y)
    assert logits.shape == aux.shape == (4, 7)
    assert _trainable_without_grad(model) == []
    # Drop-path makes two training passes differ; eval mode is deterministic and aux-free.
    with torch.no_grad():
        assert not torch.equal(model(x)[0], model(x)[0])
        model.eval()
        assert torch.equal(model(x), model(x))


def test_autofernet_l20_forward_backward():
    model = create_model("autofernet-l20", channels=8)  # narrow, to stay fast
    logits, aux = _step(model, torch.rand(2, 1, 48, 48), torch.tensor([0, 6]))
    assert logits.shape == aux.shape == (2, 7)
    assert _trainable_without_grad(model) == []


@pytest.mark.parametrize("name", ["zennet-m-sa", "zennet-r-sa"])
@pytest.mark.parametrize("lw_att", [False, True])
def test_zennet_forward_backward(name, lw_att):
    model = create_model(name, lw_att=lw_att)
    logits, _ = _step(model, torch.rand(2, 3, 112, 112), torch.tensor([1, 2]))
    assert logits.shape == (2, 7)
    assert _trainable_without_grad(model) == []


def test_vgg_forward_backward():
    model = create_model("vgg-fer")
    logits, _ = _step(model, torch.rand(4, 1, 40, 40), torch.tensor([0, 1, 2, 3]))
    assert logits.shape == (4, 7)
    assert _trainable_without_grad(model) == []


@pytest.mark.slow
def test_poster_v2_forward_backward_keeps_the_landmark_stream_frozen():
    torch.manual_seed(0)
    model = create_model("poster-v2-8")
    frozen = model.face_landback
    stats_before = {k: v.clone() for k, v in frozen.state_dict().items()}
    logits, _ = _step(model, torch.rand(2, 3, 224, 224), torch.tensor([3, 7]))
    assert logits.shape == (2, 8)
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
    # Train mode leaves the frozen stream's BN statistics alone (the original code lets them drift).
    assert not frozen.training
    assert all(torch.equal(v, frozen.state_dict()[k]) for k, v in stats_before.items())
    # Everything trainable on the executed path receives a gradient.
    assert _trainable_without_grad(model) == []
