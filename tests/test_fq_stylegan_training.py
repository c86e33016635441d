"""FQ-StyleGAN training: the D and G steps of the GAN step protocol, lazy R1 and path length, G-EMA by half-life,
and a short CPU run of the offline digits recipe through GANTrainer."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from hf_dgm.models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration
from hf_dgm.training.fq_stylegan.loss import FQStyleGANSteps


REPO = Path(__file__).resolve().parents[1]


def tiny(**overrides) -> FQStyleGANConfig:
    return FQStyleGANConfig.from_preset("tiny", **overrides)


def test_lazy_r1_equals_autograd():
    torch.manual_seed(0)
    config = tiny(use_fq=False, r1_gamma=3.0, r1_interval=16, lazy_regularization="folded")
    model = FQStyleGANForImageGeneration(config).double().eval()  # eval: nothing updates between the two calls
    reals = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1
    torch.manual_seed(1)
    with_r1 = FQStyleGANSteps(model).discriminator_step({"pixel_values": reals}, d_step=32)
    torch.manual_seed(1)
    without = FQStyleGANSteps(model).discriminator_step({"pixel_values": reals}, d_step=33)
    assert without.term("r1_penalty") is None and with_r1.term("r1_penalty") is not None
    torch.testing.assert_close(with_r1.term("d_loss_fake"), without.term("d_loss_fake"))

    x = reals.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.discriminator(x).logits.sum(), x, create_graph=True)
    r1 = grad.square().sum(dim=[1, 2, 3]).mean()
    torch.testing.assert_close(with_r1.term("r1_penalty"), r1.detach())
    torch.testing.assert_close(with_r1.loss - without.loss, r1 * 3.0 / 2 * 16)

    # the input gradient itself, by central finite differences of Σ D at a few pixels (minibatch stddev couples
    # the samples, so every logit depends on every image)
    for index in [(0, 0, 5, 7), (2, 1, 31, 0), (3, 2, 16, 16)]:
        step = torch.zeros_like(reals)
        step[index] = 1e-6
        with torch.no_grad():
            plus = model.discriminator(reals + step).logits.sum()
            minus = model.discriminator(reals - step).logits.sum()
        torch.testing.assert_close((plus - minus) / 2e-6, grad[index].detach(), rtol=1e-5, atol=1e-7)

    # D is trained on the penalty: its gradient w.r.t. a D weight matches double backprop of the formula
    weight = model.discriminator.blocks[1].conv0.weight
    (through_step,) = torch.autograd.grad(with_r1.loss - without.loss, weight)
    (direct,) = torch.autograd.grad(r1 * 3.0 / 2 * 16, weight)
    torch.testing.assert_close(through_step, direct)

    # Default "separate" (StyleGAN2-ADA's Dreg phase): its own step, loss = interval · γ/2 · R1, same penalty.
    model.config.lazy_regularization = "separate"
    assert FQStyleGANSteps(model).regularization_due("discriminator", 32) and not FQStyleGANSteps(model).regularization_due("discriminator", 33)
    main = FQStyleGANSteps(model).discriminator_step({"pixel_values": reals}, d_step=32)
    assert main.term("r1_penalty") is None
    reg = FQStyleGANSteps(model).discriminator_regularization_step({"pixel_values": reals}, d_step=32)
    torch.testing.assert_close(reg.term("r1_penalty"), r1.detach())
    torch.testing.assert_close(reg.loss, r1 * 3.0 / 2 * 16)


def test_separate_path_length_step_keeps_the_mean_in_the_graph():
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny(pl_interval=4, style_mixing_prob=0.0)).double().train()
    assert FQStyleGANSteps(model).regularization_due("generator", 8) and not FQStyleGANSteps(model).regularization_due("generator", 9)
    z = torch.randn(8, model.config.z_dim, dtype=torch.float64)
    model.training_state.pl_mean.fill_(0.3)
    out = FQStyleGANSteps(model).generator_regularization_step(z=z, generator=torch.Generator().manual_seed(5))
    assert out.term("fakes").shape[0] == 4, "B // pl_batch_shrink images"
    assert math.isclose(float(out.term("pl_mean")), 0.3 + 0.01 * (float(out.term("path_length")) - 0.3), rel_tol=1e-9)
    torch.testing.assert_close(out.loss, out.term("pl_penalty") * model.config.pl_weight * 4)
    out.loss.backward()
    assert model.generator.mapping.layers[0].weight.grad is not None


def test_w_avg_moves_on_every_training_mode_mapping_call_as_ada():
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny(style_mixing_prob=0.0)).train()
    reals = torch.rand(8, 3, 32, 32) * 2 - 1
    before = model.generator.mapping.w_avg.clone()
    FQStyleGANSteps(model).discriminator_step({"pixel_values": reals})
    assert not torch.equal(before, model.generator.mapping.w_avg), "the D step's generator run updates w_avg"
    model.eval()
    before = model.generator.mapping.w_avg.clone()
    FQStyleGANSteps(model).discriminator_step({"pixel_values": reals})
    model.generate(batch_size=2)
    assert torch.equal(before, model.generator.mapping.w_avg), "eval mode leaves w_avg alone"


def test_generator_step_updates_the_dictionaries_by_default_as_fq_gan_tf():
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny()).train()
    assert model.config.fq_zero_debias and model.config.fq_update_in_generator_step
    assert all(q.zero_debias for q in model.discriminator.quantizers.values())
    before = {k: q.embed.clone() for k, q in model.discriminator.quantizers.items()}
    FQStyleGANSteps(model).generator_step(batch_size=8)
    assert all(not torch.equal(before[k], q.embed) for k, q in model.discriminator.quantizers.items())
    before = {k: q.embed.clone() for k, q in model.discriminator.quantizers.items()}
    FQStyleGANSteps(model).generator_step(batch_size=8, update_dictionary=False)
    assert all(torch.equal(before[k], q.embed) for k, q in model.discriminator.quantizers.items())
    with pytest.raises(TypeError, match="noise"):
        FQStyleGANSteps(model).generator_step(batch_size=8, noise=None)


def test_generator_step_path_length_and_w_avg():
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny(pl_interval=4, lazy_regularization="folded")).train()
    reals = torch.zeros(8, 3, 32, 32)
    w_avg = model.generator.mapping.w_avg.clone()
    out = FQStyleGANSteps(model).generator_step({"pixel_values": reals}, step=4)
    assert out.term("pl_penalty") is not None and out.term("path_length") > 0
    assert model.training_state.pl_mean > 0, "the running mean path length moved"
    assert not torch.equal(w_avg, model.generator.mapping.w_avg), "w_avg tracks the mapping output in G steps"
    out.loss.backward()
    assert model.generator.synthesis.blocks[0].const.grad is not None
    assert all(p.grad is None for p in model.generator_ema.parameters())
    quiet = FQStyleGANSteps(model).generator_step(batch_size=8, step=5)
    assert quiet.term("pl_penalty") is None and quiet.term("path_length") is None
    torch.testing.assert_close(quiet.loss, quiet.term("g_loss") + quiet.term("quantization_loss"))
    with pytest.raises(ValueError, match="unconditional"):
        FQStyleGANSteps(model).generator_step({"pixel_values": reals, "labels": torch.zeros(8, dtype=torch.long)})
    with pytest.raises(ValueError, match="mode"):
        FQStyleGANSteps(model).generator_step({"pixel_values": reals, "mode": "both"})  # no mode flag


def test_discriminator_step_updates_dictionaries_and_losses_add_up():
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny()).train()
    before = {k: q.embed.clone() for k, q in model.discriminator.quantizers.items()}
    out = FQStyleGANSteps(model).discriminator_step({"pixel_values": torch.rand(8, 3, 32, 32) * 2 - 1}, d_step=1)
    assert all(not torch.equal(before[k], q.embed) for k, q in model.discriminator.quantizers.items())
    torch.testing.assert_close(out.loss, out.term("d_loss_real") + out.term("d_loss_fake") + out.term("quantization_loss"))
    assert out.term("quantization_loss") > 0 and out.term("fq_usage") > 0
    out.loss.backward()
    assert all(p.grad is None for p in model.generator.parameters()), "fakes are made without gradient to G"


def test_generator_ema_half_life_and_lazy_optimizer_defaults():
    config = tiny(ema_kimg=0.1)
    assert math.isclose(config.discriminator_lr, config.learning_rate * 16 / 17)
    assert math.isclose(config.generator_lr, config.learning_rate * 4 / 5)
    assert math.isclose(config.generator_betas[1], 0.99 ** (4 / 5)) and config.discriminator_steps == 1
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(config).train()
    FQStyleGANSteps(model).generator_step(batch_size=8, step=1)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
        model.generator.mapping.w_avg.fill_(2.0)
    ema_before = {k: v.clone() for k, v in model.generator_ema.named_parameters()}
    decay = model.update_generator_ema()
    assert math.isclose(decay, 0.5 ** (8 / 100))
    for name, p in model.generator.named_parameters():
        torch.testing.assert_close(model.generator_ema.get_parameter(name), decay * ema_before[name] + (1 - decay) * p)
    assert torch.equal(model.generator_ema.mapping.w_avg, model.generator.mapping.w_avg), "buffers are copied"


def _load_train_gan():
    spec = importlib.util.spec_from_file_location("train_gan", REPO / "training" / "train_gan.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_gan"] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_recipes_parse():
    train_gan = _load_train_gan()
    for name in ("fq_stylegan_ffhq256", "fq_stylegan_ffhq1024", "fq_stylegan_digits_cpu"):
        family, arguments, _, _ = train_gan.parse_args(
            ["--recipe", str(REPO / "training/recipes" / f"{name}.yaml"), "--output_dir", "unused", "--use_cpu", "true"]
        )
        assert family.__name__ == "hf_dgm.training.fq_stylegan.gan_run"
        assert arguments["GANRunArguments"].model_type == "fq_stylegan"
        model_args, data_args = arguments["ModelArguments"], arguments["DataArguments"]
        overrides = model_args.config_overrides or {}
        overrides = json.loads(overrides) if isinstance(overrides, str) else overrides
        config = FQStyleGANConfig.from_preset(model_args.preset, **overrides)
        assert config.resolution == data_args.resolution
        if name != "fq_stylegan_digits_cpu":
            assert data_args.random_flip and config.r1_gamma == 100 and config.fq_resolutions == [32, 16]


def test_digits_recipe_is_greyscale_and_scored_by_pixel_precision_recall(tmp_path):
    """The offline recipe trains on one greyscale channel, and its evaluation reports the samples' precision and recall
    in pixel space next to those of held-out real digits (here of an untrained model: no sample looks real)."""
    train_gan = _load_train_gan()
    recipe = ["--recipe", str(REPO / "training/recipes/fq_stylegan_digits_cpu.yaml"), "--output_dir", str(tmp_path)]
    family, arguments, training_args, _ = train_gan.parse_args(
        [*recipe, "--eval_num_samples", "100", "--fid_feature_extractor", ""]
    )
    assert arguments["EvalArguments"].eval_pixel_precision_recall
    torch.manual_seed(0)
    setup = family.build(arguments, training_args)
    batch = setup.data_collator([setup.train_dataset[i] for i in range(4)])
    resolution = setup.model.config.resolution
    assert setup.model.config.num_channels == 1 and batch["pixel_values"].shape == (4, 1, resolution, resolution)
    results = family.evaluate(setup, arguments, training_args)
    assert results["num_pixel_pr_generated"] == 100 and results["num_pixel_pr_real_reference"] == 1437
    assert results["pixel_precision_real_held_out"] > 0.8 and results["pixel_recall_real_held_out"] > 0.8
    assert results["pixel_precision"] < 0.05 and results["pixel_recall"] < 0.05  # noise from an untrained G
    assert 1 <= results["fq_used_entries_layer0"] <= setup.model.config.fq_num_embeddings
    family, arguments, training_args, _ = train_gan.parse_args([*recipe, "--eval_classifier", "true"])
    with pytest.raises(ValueError, match="unconditional"):
        family.build(arguments, training_args)


@pytest.mark.slow  # about 25 s on a loaded 2-core machine
def test_digits_cpu_run(tmp_path):
    """A short CPU run of the offline recipe: D's loss moves, sample grids and the model folder are written."""
    train_gan = _load_train_gan()
    out = tmp_path / "run"
    train_gan.main(
        ["--recipe", str(REPO / "training/recipes/fq_stylegan_digits_cpu.yaml"), "--output_dir", str(out),
         "--max_steps", "4", "--save_steps", "4", "--sample_steps", "2", "--logging_steps", "1",
         "--per_device_train_batch_size", "8", "--num_sample_images", "9", "--eval_num_samples", "0",
         "--disable_tqdm", "true"]
    )  # fmt: skip
    for name in ("model.safetensors", "config.json", "samples/step_0000002.png", "samples/final.png",
                 "checkpoint-4/d_optimizer.pt", "losses.png"):  # fmt: skip
        assert (out / name).is_file(), name
    logs = [row for row in json.loads((out / "train_log.json").read_text()) if "d_loss" in row]
    d_losses = [row["d_loss"] for row in logs]
    assert len(d_losses) == 4 and all(math.isfinite(v) for v in d_losses)
    assert max(d_losses) - min(d_losses) > 1e-3, f"D loss did not move: {d_losses}"
    assert "d_reg_r1_penalty" in logs[0] and "g_reg_pl_penalty" in logs[0], "lazy regularisers run at step 0"
    model = FQStyleGANForImageGeneration.from_pretrained(out)
    assert model.training_state.images_seen == 4 * 8
    images = model.generate(batch_size=2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()
