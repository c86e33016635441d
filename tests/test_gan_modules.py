"""Shared GAN layers in hf_dgm.modules: losses, R1 and path length, EMA, truncation, spectral norm, FQ config."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from hf_dgm.modules.feature_quantizer import (
    FQ_CONFIG_DEFAULTS,
    FeatureQuantizer,
    fq_num_embeddings_for,
    validate_feature_quantizer_config,
)
from hf_dgm.modules.gan_ema import copy_weights, ema_decay_at_step, ema_decay_from_half_life, update_ema
from hf_dgm.training.gan_losses import (
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    nonsaturating_discriminator_loss,
    nonsaturating_generator_loss,
    path_length_penalty,
    r1_penalty,
)
from hf_dgm.modules.spectral_norm import SNConv2d, SNLinear
from hf_dgm.modules.truncation import sample_truncated_normal, truncate_w


def test_adversarial_losses_match_their_formulas():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 3.0])
    r, f = hinge_discriminator_loss(real, fake)
    assert r.item() == pytest.approx((0 + 0.5 + 2.0) / 3) and f.item() == pytest.approx((0 + 1 + 4) / 3)
    assert hinge_generator_loss(fake).item() == pytest.approx(-1 / 3)
    sig = torch.sigmoid
    r, f = nonsaturating_discriminator_loss(real, fake)
    assert r.item() == pytest.approx(-torch.log(sig(real)).mean().item(), rel=1e-6)
    assert f.item() == pytest.approx(-torch.log(1 - sig(fake)).mean().item(), rel=1e-6)
    assert nonsaturating_generator_loss(fake).item() == pytest.approx(-torch.log(sig(fake)).mean().item(), rel=1e-6)
    r, f = least_squares_discriminator_loss(real, fake)
    assert r.item() == pytest.approx((1 + 0.25 + 4) / 3) and f.item() == pytest.approx((4 + 0 + 9) / 3)
    assert least_squares_generator_loss(fake).item() == pytest.approx((9 + 1 + 4) / 3)


def test_r1_penalty_equals_the_analytic_gradient_and_trains():
    torch.manual_seed(0)
    weight = torch.randn(2 * 3 * 3, requires_grad=True)
    images = torch.randn(4, 2, 3, 3, requires_grad=True)
    logits = (images.flatten(1) @ weight) ** 2  # d logit_b / dx_b = 2 (x_b·w) w
    penalty = r1_penalty(logits, images)
    expected = (2 * (images.flatten(1) @ weight)) ** 2 * weight.square().sum()
    torch.testing.assert_close(penalty, expected.detach(), rtol=1e-5, atol=1e-6)
    penalty.mean().backward()  # differentiable w.r.t. D's weights
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(logits, images.detach())


def test_path_length_penalty_of_a_linear_generator():
    # g(w) = A w for every layer: the path length is ‖Aᵀ y‖ with y the projection noise.
    torch.manual_seed(0)
    a = torch.randn(3 * 4 * 4, 5)
    w = torch.randn(2, 1, 5, requires_grad=True)
    images = (w[:, 0] @ a.t()).view(2, 3, 4, 4)
    mean = torch.zeros(())
    gen = torch.Generator().manual_seed(1)
    penalty, lengths = path_length_penalty(images, w, mean, decay=0.5, generator=gen)
    y = torch.randn(images.shape, generator=torch.Generator().manual_seed(1)) / 4.0
    expected = (y.flatten(1) @ a).norm(dim=1)
    torch.testing.assert_close(lengths, expected)
    assert mean.item() == pytest.approx(0.5 * expected.mean().item(), rel=1e-6)
    torch.testing.assert_close(penalty.detach(), (expected - mean) ** 2)


def test_ema_decays_and_update():
    assert ema_decay_at_step(3, 0.9, start_step=5) == 0.0 and ema_decay_at_step(5, 0.9, start_step=5) == 0.9
    assert ema_decay_from_half_life(32, 10_000) == pytest.approx(0.5 ** (32 / 10_000))
    # after half_life images, the weight of the initial value is one half
    assert ema_decay_from_half_life(10, 1000) ** 100 == pytest.approx(0.5)
    assert ema_decay_from_half_life(32, 10_000, images_seen=1000, rampup=0.05) == pytest.approx(0.5 ** (32 / 50))
    with pytest.raises(ValueError, match="half_life"):
        ema_decay_from_half_life(32, 0)
    source, target = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        source.weight.fill_(3.0)
        source.num_batches_tracked.fill_(7)
        target.weight.fill_(1.0)
    assert update_ema(target, source, 0.75) == 0.75
    torch.testing.assert_close(target.weight, torch.full((2,), 1.5))
    assert target.num_batches_tracked.item() == 7
    copy_weights(target, source)
    torch.testing.assert_close(target.weight, source.weight)
    with pytest.raises(ValueError, match="decay"):
        update_ema(target, source, 1.5)


def test_truncation():
    z = sample_truncated_normal((4000, 2), 0.5, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    w_avg = torch.tensor([1.0, -1.0])
    w = torch.randn(3, 4, 2)
    torch.testing.assert_close(truncate_w(w, w_avg, psi=0.0), w_avg.expand(3, 4, 2))
    assert truncate_w(w, w_avg, psi=1.0) is w
    half = truncate_w(w, w_avg, psi=0.5, cutoff=2)
    torch.testing.assert_close(half[:, :2], w_avg + 0.5 * (w[:, :2] - w_avg))
    torch.testing.assert_close(half[:, 2:], w[:, 2:])
    with pytest.raises(ValueError, match="cutoff"):
        truncate_w(w[:, 0], w_avg, psi=0.5, cutoff=1)


def test_spectral_norm_normalises_the_weight():
    torch.manual_seed(0)
    for layer in (SNLinear(6, 4, iterations=1), SNConv2d(3, 5, 3)):
        for _ in range(30):  # power iterations converge over training-mode forwards
            layer.normalized_weight()
        matrix = layer.weight.reshape(layer.weight.shape[0], -1)
        sigma = torch.linalg.matrix_norm(matrix, ord=2)
        assert layer.weight_sigma.item() == pytest.approx(sigma.item(), rel=1e-3)
        normalized = layer.normalized_weight().reshape(matrix.shape)
        assert torch.linalg.matrix_norm(normalized, ord=2).item() == pytest.approx(1.0, rel=1e-3)
    assert set(SNLinear(2, 2).state_dict()) == {"weight", "bias", "weight_u", "weight_sigma"}


def test_feature_quantizer_config_surface():
    config = SimpleNamespace(**dict(FQ_CONFIG_DEFAULTS, fq_layers=[1, 3], fq_num_embeddings=[64, 128]))
    validate_feature_quantizer_config(config, num_layers=4)
    assert fq_num_embeddings_for(config, 3) == 128
    quantizer = FeatureQuantizer.from_config(config, dim=8, layer=1)
    assert (quantizer.dim, quantizer.num_embeddings, quantizer.decay) == (8, 64, 0.8)
    assert quantizer.update_dictionary is False
    for overrides, message in (
        (dict(fq_num_embeddings=[64]), "fq_num_embeddings"),
        (dict(fq_num_embeddings=0), "fq_num_embeddings"),
        (dict(fq_layers=[4]), "fq_layers"),
        (dict(fq_layers=[1, 1]), "fq_layers"),
        (dict(fq_decay=1.0), "fq_decay"),
        (dict(fq_mode="paper"), "fq_mode"),
    ):
        bad = SimpleNamespace(**{**vars(config), **overrides})
        with pytest.raises(ValueError, match=message):
            validate_feature_quantizer_config(bad, num_layers=4)


@pytest.mark.parametrize("detach_mean", [False, True])
def test_path_length_mean_is_in_the_graph_as_stylegan2_ada(detach_mean):
    # StyleGAN2-ADA loss.py: pl_mean = self.pl_mean.lerp(pl_lengths.mean(), decay); penalty = (pl_lengths - pl_mean)^2,
    # the new mean kept in the graph. Reference written out here with plain autograd.
    torch.manual_seed(0)
    a = torch.randn(3 * 4 * 4, 5)
    w = torch.randn(4, 2, 5, requires_grad=True)
    images = torch.tanh(w.mean(1) @ a.t()).view(4, 3, 4, 4)  # nonlinear: the path length depends on w
    noise = torch.randn(images.shape)
    start = torch.tensor(0.7)
    mean = start.clone()
    penalty, _ = path_length_penalty(images, w, mean, decay=0.25, noise=noise, detach_mean=detach_mean)
    (grad_ours,) = torch.autograd.grad(penalty.sum(), w, retain_graph=True)
    (g,) = torch.autograd.grad((images * noise / 4.0).sum(), w, create_graph=True)
    lengths = g.square().sum(2).mean(1).sqrt()
    ref_mean = start.lerp(lengths.mean(), 0.25)
    if detach_mean:
        ref_mean = ref_mean.detach()
    (grad_ref,) = torch.autograd.grad((lengths - ref_mean).square().sum(), w)
    torch.testing.assert_close(grad_ours, grad_ref)  # same kernels, same tensors, one process
    torch.testing.assert_close(mean, ref_mean.detach())
