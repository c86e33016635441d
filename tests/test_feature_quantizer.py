"""Tests of the shared EMA feature quantizer (hf_dgm/modules/feature_quantizer.py)."""

from __future__ import annotations

import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hf_dgm.modules.feature_quantizer import FeatureQuantizer
from tolerances import assert_fp32_close


def _quantizer(embed: torch.Tensor, decay: float = 0.5, commitment: float = 1.0, **kwargs) -> FeatureQuantizer:
    dim, k = embed.shape
    quantizer = FeatureQuantizer(dim, k, decay=decay, commitment=commitment, **kwargs)
    quantizer.embed.copy_(embed)
    quantizer.embed_avg.copy_(embed)
    quantizer.cluster_size.zero_()
    return quantizer


def test_ema_update_matches_hand_computation():
    # Dictionary: e0 = (0, 0), e1 = (10, 0), e2 = (0, 10). Four vectors: three near e0/e1, none near e2.
    embed = torch.tensor([[0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    quantizer = _quantizer(embed, decay=0.5).train()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 1.0], [2.0, 2.0]])  # (B, C) layout
    out = quantizer(x, update_dictionary=True)
    assert out.indices.tolist() == [0, 0, 1, 0]

    # counts n = (3, 1, 0); sums s0 = (3, 3), s1 = (9, 1), s2 = (0, 0); d = 0.5.
    # cluster_size = 0.5·0 + 0.5·n = (1.5, 0.5, 0)
    assert quantizer.cluster_size.tolist() == pytest.approx([1.5, 0.5, 0.0])
    # embed_avg = 0.5·E + 0.5·s: column 0 = (1.5, 1.5), column 1 = (0.5·10 + 4.5, 0.5) = (9.5, 0.5), column 2 = (0, 5)
    assert quantizer.embed_avg.flatten().tolist() == pytest.approx([1.5, 9.5, 0.0, 1.5, 0.5, 5.0])
    # N = 2; size_k = (c_k + 1e-5) / (2 + 3e-5) · 2
    eps, total = 1e-5, 2.0
    size = [(c + eps) / (total + 3 * eps) * total for c in (1.5, 0.5, 0.0)]
    expected = [[1.5 / size[0], 9.5 / size[1], 0.0 / size[2]], [1.5 / size[0], 0.5 / size[1], 5.0 / size[2]]]
    assert quantizer.embed.tolist()[0] == pytest.approx(expected[0], rel=1e-5)
    assert quantizer.embed.tolist()[1] == pytest.approx(expected[1], rel=1e-5)

    # The loss and output use the dictionary from BEFORE the update: q = (e0, e0, e1, e0).
    q = torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0], [0.0, 0.0]])
    assert out.loss.item() == pytest.approx(((q - x) ** 2).mean().item())
    assert torch.equal(out.quantized, q)


def test_perplexity_and_usage():
    embed = torch.tensor([[0.0, 10.0, 20.0, 30.0]])
    quantizer = _quantizer(embed).eval()
    out = quantizer(torch.tensor([[0.1], [0.2], [9.9], [10.1]]))
    assert out.perplexity.item() == pytest.approx(2.0, rel=1e-6)  # two entries, equally used
    assert out.usage.item() == pytest.approx(0.5)
    out = quantizer(torch.tensor([[0.1], [10.0], [20.0], [29.0]]))
    assert out.perplexity.item() == pytest.approx(4.0, rel=1e-6)
    assert out.usage.item() == 1.0


def test_gradients_pass_straight_through_and_commitment_gradient():
    torch.manual_seed(0)
    quantizer = FeatureQuantizer(4, 8, commitment=0.25, mode="straight_through").eval()
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = quantizer(x)
    weights = torch.randn_like(x)
    (out.output * weights).sum().backward()
    assert torch.equal(x.grad, weights)  # identity gradient through the quantization

    x.grad = None
    out = quantizer(x)
    out.loss.backward()
    q = out.quantized.detach()
    expected = 0.25 * 2 * (x.detach() - q) / x.numel()
    torch.testing.assert_close(x.grad, expected)
    # the output values are the dictionary entries
    entries = quantizer.embed.t()[out.indices]  # (B, H, W, C)
    torch.testing.assert_close(out.output.detach(), entries.permute(0, 3, 1, 2))


def test_modes_loss_only_returns_input_and_straight_through_returns_entries():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 2, 2)
    loss_only = FeatureQuantizer(5, 16, mode="loss_only").eval()
    straight = FeatureQuantizer(5, 16, mode="straight_through").eval()
    straight.load_state_dict(loss_only.state_dict())
    a, b = loss_only(x), straight(x)
    assert a.output is x
    assert not torch.allclose(b.output, x)
    torch.testing.assert_close(a.quantized, b.output)
    assert torch.equal(a.indices, b.indices) and a.loss.item() == pytest.approx(b.loss.item())


def test_dictionary_updates_only_in_training_and_when_asked():
    torch.manual_seed(0)
    quantizer = FeatureQuantizer(3, 8)
    x = torch.randn(16, 3)
    reference = {k: v.clone() for k, v in quantizer.state_dict().items()}

    def unchanged() -> bool:
        return all(torch.equal(reference[k], v) for k, v in quantizer.state_dict().items())

    quantizer.eval()
    quantizer(x, update_dictionary=True)
    assert unchanged(), "eval mode must never update the dictionary"
    quantizer.train()
    quantizer(x, update_dictionary=False)
    assert unchanged()
    quantizer.update_dictionary = False
    quantizer(x)
    assert unchanged(), "the attribute is the default of the argument"
    quantizer(x, update_dictionary=True)
    assert not unchanged()
    assert quantizer.cluster_size.sum().item() == pytest.approx((1 - quantizer.decay) * 16)


def test_converges_to_cluster_means():
    torch.manual_seed(0)
    means = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [-5.0, -5.0], [5.0, -5.0]])
    # Start every entry in a different quadrant, far from its cluster mean.
    start = torch.tensor([[1.0, 0.5], [-0.5, 1.0], [-1.0, -0.5], [0.5, -1.0]]).t()
    quantizer = _quantizer(start, decay=0.8).train()
    for _ in range(100):
        points = means.repeat_interleave(64, 0) + 0.3 * torch.randn(256, 2)
        quantizer(points.view(4, 64, 2), update_dictionary=True)  # (B, N, C) layout
    torch.testing.assert_close(quantizer.embed.t(), means, atol=0.1, rtol=0)
    out = quantizer.eval()(means.view(1, 4, 2))
    assert out.indices.tolist() == [[0, 1, 2, 3]]
    assert out.perplexity.item() == pytest.approx(4.0, rel=1e-5)


def test_data_init_starts_with_every_entry_in_use():
    torch.manual_seed(0)
    x = torch.randn(16, 3)  # as many vectors as entries: the data init takes them all
    randn = FeatureQuantizer(3, 16).train()
    data = FeatureQuantizer(3, 16, dictionary_init="data").train()
    data.eval()(x, update_dictionary=True)
    assert data.cluster_size.sum() == 0, "no data init outside a training update"
    out = data.train()(x, update_dictionary=True)
    assert out.usage.item() == 1.0 and out.loss.item() == 0.0  # the entries are the vectors of the batch
    # one pseudo-observation per entry, then the EMA: cluster_size = d·1 + (1 − d)·counts
    torch.testing.assert_close(data.cluster_size, 0.8 + 0.2 * torch.bincount(out.indices.flatten(), minlength=16).float())
    before = data.embed.clone()
    data(torch.randn(64, 3), update_dictionary=True)  # later updates never re-initialise
    assert (data.embed - before).abs().max() < 1.0
    assert randn(x, update_dictionary=True).usage.item() < 1.0
    with pytest.raises(ValueError, match="dictionary_init"):
        FeatureQuantizer(3, 16, dictionary_init="kmeans")


def test_layouts_agree():
    torch.manual_seed(0)
    quantizer = FeatureQuantizer(6, 10).eval()
    x = torch.randn(2, 6, 3, 4)
    out4 = quantizer(x)
    assert out4.indices.shape == (2, 3, 4)
    tokens = x.permute(0, 2, 3, 1).reshape(2, 12, 6)  # (B, N, C)
    out3 = quantizer(tokens)
    assert out3.indices.shape == (2, 12)
    assert torch.equal(out3.indices.reshape(2, 3, 4), out4.indices)
    torch.testing.assert_close(out3.quantized.reshape(2, 3, 4, 6).permute(0, 3, 1, 2), out4.quantized)
    torch.testing.assert_close(out3.per_sample_loss, out4.per_sample_loss)
    out2 = quantizer(tokens[:, 0])
    assert out2.indices.shape == (2,) and torch.equal(out2.indices, out3.indices[:, 0])


def test_bad_inputs_and_arguments_raise():
    quantizer = FeatureQuantizer(4, 8)
    with pytest.raises(ValueError, match="C = 4"):
        quantizer(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match="channels last"):
        quantizer(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="accepts"):
        quantizer(torch.randn(4))
    for kwargs in (dict(decay=1.0), dict(decay=-0.1), dict(commitment=-1.0), dict(eps=0.0), dict(mode="paper")):
        with pytest.raises(ValueError):
            FeatureQuantizer(4, 8, **kwargs)
    with pytest.raises(ValueError):
        FeatureQuantizer(0, 8)
    with pytest.raises(ValueError):
        FeatureQuantizer(4, 0)


def test_state_is_buffers_and_saved():
    quantizer = FeatureQuantizer(4, 8)
    assert list(quantizer.parameters()) == []
    assert set(quantizer.state_dict()) == {"embed", "cluster_size", "embed_avg"}
    assert quantizer.embed.shape == (4, 8) and quantizer.cluster_size.shape == (8,)
    torch.testing.assert_close(quantizer.embed_avg, quantizer.embed)


# --------------------------------------------------------------------------------------------------------------------
# torch.distributed: two CPU processes (gloo) keep identical dictionaries, equal to one process on both batches.
# --------------------------------------------------------------------------------------------------------------------
def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)  # same initial dictionary on every rank
        quantizer = FeatureQuantizer(3, 6, decay=0.7).train()
        data = torch.randn(world_size, 4, 3, 3, 3, generator=torch.Generator().manual_seed(1))
        for _ in range(3):
            quantizer(data[rank] * (rank + 1), update_dictionary=True)
        torch.save(quantizer.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
        torch.manual_seed(rank)  # different sampling on each rank: the data init must still agree (broadcast)
        from_data = FeatureQuantizer(3, 6, decay=0.7, dictionary_init="data").train()
        from_data(data[rank] * (rank + 1), update_dictionary=True)
        torch.save(from_data.state_dict(), os.path.join(out_dir, f"data_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_distributed_all_reduce_keeps_ranks_identical():
    world_size = 2
    with tempfile.TemporaryDirectory() as out_dir:
        init_file = os.path.join(out_dir, "init")
        # fork: the workers inherit the imported modules (spawn would re-import transformers in each, ~10 s).
        mp.start_processes(
            _ddp_worker, args=(world_size, init_file, out_dir), nprocs=world_size, join=True, start_method="fork"
        )
        states = [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=True) for r in range(world_size)]
        data_states = [torch.load(os.path.join(out_dir, f"data_rank{r}.pt"), weights_only=True) for r in range(2)]

    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), f"{key} differs across ranks"
        assert torch.equal(data_states[0][key], data_states[1][key]), f"{key} differs across ranks (data init)"

    # Single process on the concatenation of both ranks' batches gives the same dictionary.
    torch.manual_seed(0)
    single = FeatureQuantizer(3, 6, decay=0.7).train()
    data = torch.randn(world_size, 4, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    both = torch.cat([data[r] * (r + 1) for r in range(world_size)], dim=0)
    for _ in range(3):
        single(both, update_dictionary=True)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(states[0][key], value, rtol=1e-5, atol=1e-5)
    assert math.isclose(states[0]["cluster_size"].sum().item(), single.cluster_size.sum().item(), rel_tol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# The quantizer's random draws stay out of the global RNG
# ----------------------------------------------------------------------------------------------------------------
def test_building_initialising_and_data_init_leave_the_global_rng_alone():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    quantizer = FeatureQuantizer(8, 32, dictionary_init="data").train()
    quantizer.init_dictionary()
    quantizer(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), update_dictionary=True)  # data init
    assert quantizer.cluster_size.sum() > 0
    assert torch.equal(torch.get_rng_state(), state)
    # reproducible: the same global state gives the same dictionary; another shape gives another one
    torch.manual_seed(0)
    again, twin, other = FeatureQuantizer(8, 32), FeatureQuantizer(8, 32), FeatureQuantizer(8, 16)
    assert torch.equal(again.embed, twin.embed) and torch.equal(again.embed_avg, again.embed)
    assert not torch.equal(other.embed, again.embed[:, :16])
    assert abs(again.embed.mean().item()) < 0.3 and 0.7 < again.embed.std().item() < 1.3  # still N(0, 1)


def _fq_pair(family: str):
    """The tiny model of `family` with and without FQ, each built right after `torch.manual_seed(0)`."""
    models = []
    for use_fq in (True, False):
        torch.manual_seed(0)
        if family == "fq_biggan":
            from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration

            models.append(FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", use_fq=use_fq)))
        elif family == "fq_stylegan":
            from hf_dgm.models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration

            models.append(FQStyleGANForImageGeneration(FQStyleGANConfig.from_preset("tiny", use_fq=use_fq)))
        else:
            from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel

            config = FQUGATITConfig(
                image_size=32, ngf=4, n_res_blocks=2, ndf=4, global_discriminator_layers=5, local_discriminator_layers=4,
                use_fq=use_fq,
            )  # fmt: skip
            models.append(FQUGATITModel(config))
    return models


@pytest.mark.parametrize("family", ["fq_biggan", "fq_stylegan", "fq_ugatit"])
def test_fq_and_no_fq_models_at_one_seed_share_every_other_weight(family):
    """An FQ/no-FQ comparison at one seed compares FQ alone: both models start from the same G and D weights."""
    with_fq, without_fq = _fq_pair(family)
    assert any(isinstance(m, FeatureQuantizer) for m in with_fq.modules())
    assert not any(isinstance(m, FeatureQuantizer) for m in without_fq.modules())
    plain = without_fq.state_dict()
    shared = {k: v for k, v in with_fq.state_dict().items() if k in plain}
    assert set(shared) == set(plain), "the FQ model holds every tensor of the plain one"
    for name, tensor in plain.items():
        assert torch.equal(shared[name], tensor), f"{family}: {name} differs between the FQ and the no-FQ model"


# -- TF's zero-debiased EMA (FQ-GAN's FQ-StyleGAN / FQ-U-GAT-IT) ---------------------------------------------------
# Verified against TensorFlow 2.21 (tensorflow-cpu, graph mode via tf.compat.v1) running FQ-GAN's own
# `VectorQuantizerEMA` (FQ-StyleGAN/training/networks_stylegan2.py, commit bc43d45): every buffer, the per-sample loss
# and the perplexity agree to <= 3e-7 relative over 5 updates (see benchmarks/parity/fq_stylegan.py --tf-python).
# These tests pin the closed form that check established.


def test_zero_debias_matches_closed_form():
    torch.manual_seed(0)
    dim, k, decay = 3, 4, 0.8
    embed = torch.randn(dim, k)
    quantizer = FeatureQuantizer(dim, k, decay=decay, zero_debias=True).train()
    quantizer.embed.copy_(embed)
    quantizer.embed_avg.copy_(embed)
    batches = [torch.randn(6, dim) * (1 + t) for t in range(4)]
    counts_hist, sums_hist = [], []
    for t, x in enumerate(batches, start=1):
        out = quantizer(x, update_dictionary=True)
        one_hot = torch.nn.functional.one_hot(out.indices, k).double()
        counts_hist.append(one_hot.sum(0))
        sums_hist.append(x.double().t() @ one_hot)
        # TF: biased EMA from zero, divided by 1 - d^t; the initial embed_avg plays no part.
        weights = [(1 - decay) * decay ** (t - 1 - i) for i in range(t)]
        correction = 1 - decay**t
        cluster = sum(w * c for w, c in zip(weights, counts_hist)) / correction
        avg = sum(w * s for w, s in zip(weights, sums_hist)) / correction
        assert_fp32_close(quantizer.cluster_size, cluster.float())
        assert_fp32_close(quantizer.embed_avg, avg.float())
        n = cluster.sum()
        size = (cluster + 1e-5) / (n + k * 1e-5) * n
        assert_fp32_close(quantizer.embed, (avg / size).float())
        assert float(quantizer.ema_steps) == t
    # After the first update embed_avg is exactly the first batch's sums (what separates it from the plain EMA).
    fresh = FeatureQuantizer(dim, k, decay=decay, zero_debias=True).train()
    fresh.embed.copy_(embed)
    fresh.embed_avg.copy_(embed)
    out = fresh(batches[0], update_dictionary=True)
    one_hot = torch.nn.functional.one_hot(out.indices, k).float()
    assert_fp32_close(fresh.embed_avg, batches[0].t() @ one_hot)
    assert_fp32_close(fresh.cluster_size, one_hot.sum(0))


def test_zero_debias_state_only_in_that_mode_and_from_config():
    plain = FeatureQuantizer(4, 8)
    assert not plain.zero_debias
    assert "ema_steps" not in plain.state_dict()
    debiased = FeatureQuantizer(4, 8, zero_debias=True)
    assert {"cluster_size_biased", "embed_avg_biased", "ema_steps"} <= set(debiased.state_dict())

    class Cfg:
        fq_num_embeddings, fq_decay, fq_commitment, fq_eps = 8, 0.8, 1.0, 1e-5
        fq_mode, fq_dictionary_init, fq_zero_debias = "loss_only", "randn", True

    assert FeatureQuantizer.from_config(Cfg, 4).zero_debias
    Cfg.fq_zero_debias = "yes"
    with pytest.raises(ValueError, match="zero_debias"):
        FeatureQuantizer.from_config(Cfg, 4)


def test_zero_debias_data_init_counts_as_first_update():
    torch.manual_seed(0)
    quantizer = FeatureQuantizer(2, 4, decay=0.5, zero_debias=True, dictionary_init="data").train()
    x = torch.randn(16, 2)
    quantizer(x, update_dictionary=True)
    assert float(quantizer.ema_steps) == 2  # the seeding, then the batch's update
    assert torch.isfinite(quantizer.embed).all() and bool((quantizer.cluster_size > 0).all())
