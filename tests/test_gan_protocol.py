"""The generic GAN step protocol of `GANTrainer`: FQ-BigGAN's losses are unchanged by it (reference values recorded
with the trainer as it was before the protocol was generalised), and a toy model shaped like U-GAT-IT (two
generators, two discriminators, two-domain batches) trains through it."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_gan_trainer import make_trainer  # noqa: E402
from tolerances import FP32_STEPS_RTOL, assert_fp32_close  # noqa: E402

from hf_dgm.training.image_data import load_digits_dataset  # noqa: E402


# (mode, loss) of every model call over 3 G steps (2 D steps each) of the tiny FQ-BigGAN preset, seed 0, batch 8,
# with `fq_update_in_generator_step=False` (dictionaries updated in D steps only, the option that was our default),
# recorded with GANTrainer at commit fd827d8 (before the generic protocol), with that commit's quantizer patched to
# draw its dictionary from a private generator (the change that keeps the quantizers out of the global RNG).
FQ_BIGGAN_REFERENCE_D_ONLY = [
    ("discriminator", 9.215272903442383),
    ("discriminator", 14.672736167907715),
    ("generator", 3.9578990936279297),
    ("discriminator", 6.913992404937744),
    ("discriminator", 4.883795738220215),
    ("generator", 2.2673897743225098),
    ("discriminator", 4.4626007080078125),
    ("discriminator", 2.711437463760376),
    ("generator", 0.5309683084487915),
]

# The same run with the default `fq_update_in_generator_step=True` (the original's second dictionary update in the G
# step), recorded at commit 1ee252b + the change that made it the default. The first three calls precede any G-step
# update, so they equal the reference above.
FQ_BIGGAN_REFERENCE = FQ_BIGGAN_REFERENCE_D_ONLY[:3] + [
    ("discriminator", 6.911365032196045),
    ("discriminator", 4.882066249847412),
    ("generator", 2.267077922821045),
    ("discriminator", 4.460875511169434),
    ("discriminator", 2.709662914276123),
    ("generator", 0.5309431552886963),
]


@pytest.mark.parametrize("in_g_step", [True, False], ids=["default", "d_steps_only"])
def test_fq_biggan_losses_unchanged(tmp_path, in_g_step):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference values were recorded single-threaded (reductions differ across threads)
    try:
        _run_fq_biggan_reference(tmp_path, in_g_step)
    finally:
        torch.set_num_threads(threads)


def _run_fq_biggan_reference(tmp_path, in_g_step):
    from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration

    reference = FQ_BIGGAN_REFERENCE if in_g_step else FQ_BIGGAN_REFERENCE_D_ONLY
    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset(
        "tiny", discriminator_steps=2, num_classes=10, class_names=[str(i) for i in range(10)],
        fq_update_in_generator_step=in_g_step,
    )
    model = FQBigGANForImageGeneration(config)
    trainer = make_trainer(
        tmp_path, model=model, dataset=load_digits_dataset().select(range(64)), max_steps=3, per_device_train_batch_size=8
    )
    assert type(trainer.steps).__name__ == "FQBigGANSteps"  # found through the family's registry entry
    calls = []
    for network in ("discriminator", "generator"):  # record every step call, as the forward hook did before
        original = getattr(trainer.steps, f"{network}_step")

        def spy(batch, _network=network, _original=original, **counters):
            out = _original(batch, **counters)
            calls.append((_network, out.loss.item()))
            return out

        setattr(trainer.steps, f"{network}_step", spy)
    trainer.train()
    assert [mode for mode, _ in calls] == [mode for mode, _ in reference]
    # Three optimizer steps compound fp32 summation-order differences between CPUs (an AVX2-only AMD CPU gives
    # 9.21527099609375 for the first value): the shared tolerance for values after a few steps.
    for i, ((_, got), (_, want)) in enumerate(zip(calls, reference)):
        assert_fp32_close(got, want, rtol=FP32_STEPS_RTOL, msg=f"call {i}: {got!r} != {want!r}")


# ------------------------------------------------------------------------------------------------ U-GAT-IT-shaped toy
from torch import nn  # noqa: E402
from transformers import PreTrainedConfig, PreTrainedModel  # noqa: E402

from hf_dgm.modules.gan_protocol import DiscriminatorStepOutput, GANSteps, GeneratorStepOutput, step_output  # noqa: E402
from hf_dgm.training.gan_losses import least_squares_discriminator_loss, least_squares_generator_loss  # noqa: E402
from hf_dgm.training.gan_trainer import GANTrainer, GANTrainingArguments  # noqa: E402


class ToyTranslatorConfig(PreTrainedConfig):
    model_type = "toy_translator_for_tests"

    def __init__(self, resolution=8, discriminator_steps=1, generator_lr=1e-2, discriminator_lr=1e-2,
                 generator_betas=(0.5, 0.999), discriminator_betas=(0.5, 0.999), generator_weight_decay=1e-4,
                 discriminator_weight_decay=1e-4, r1_interval=2, **kwargs):  # fmt: skip
        self.resolution, self.discriminator_steps, self.r1_interval = resolution, discriminator_steps, r1_interval
        self.generator_lr, self.discriminator_lr = generator_lr, discriminator_lr
        self.generator_betas, self.discriminator_betas = list(generator_betas), list(discriminator_betas)
        self.generator_weight_decay, self.discriminator_weight_decay = generator_weight_decay, discriminator_weight_decay
        super().__init__(**kwargs)


class ToyGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.rho = nn.Parameter(torch.full((1,), 0.95))  # an AdaLIN-like mixing weight, clipped to [0, 1]

    def forward(self, x):
        return torch.tanh(self.rho * self.conv(x) + (1 - self.rho) * x)


class ToyTranslator(PreTrainedModel):
    """Two generators (A->B, B->A) and two discriminators, least-squares adversarial + cycle + identity losses,
    a lazy R1-like penalty every `r1_interval` D steps, rho clipping after each G step. Records every call."""

    config_class = ToyTranslatorConfig

    def __init__(self, config):
        super().__init__(config)
        self.gen_a2b, self.gen_b2a = ToyGenerator(), ToyGenerator()
        self.dis_a = nn.Conv2d(3, 1, 4, stride=2, padding=1)
        self.dis_b = nn.Conv2d(3, 1, 4, stride=2, padding=1)
        self.calls = []
        self.hook_steps = []
        self.ema_calls = []
        self.post_init()

    def _init_weights(self, module):
        pass

    def parameter_groups(self, network):
        if network == "generator":
            gens = [self.gen_a2b, self.gen_b2a]
            return [
                {"params": [p for g in gens for n, p in g.named_parameters() if n != "rho"]},
                {"params": [g.rho for g in gens], "weight_decay": 0.0},
            ]
        return [{"params": [*self.dis_a.parameters(), *self.dis_b.parameters()]}]

    @torch.no_grad()
    def after_generator_step(self, step):
        self.hook_steps.append(step)
        for gen in (self.gen_a2b, self.gen_b2a):
            gen.rho.clamp_(0.0, 1.0)

    def update_generator_ema(self, decay=None, step=None, batch_size=None, images_seen=None):
        self.ema_calls.append((decay, step, batch_size, images_seen, list(self.hook_steps)))

    @torch.no_grad()
    def sample_images(self, num_images, generator, batch):
        real_a = batch["pixel_values_a"][:num_images]
        return torch.cat([real_a, self.gen_a2b(real_a)])

    def sample_grid_columns(self, num_images):
        return num_images // 2


class ToyTranslatorSteps(GANSteps):
    """The toy's losses (the training side of the protocol). Records every call on the model."""

    def discriminator_step(self, batch, *, step=0, d_step=0):
        model, real_a, real_b = self.model, batch["pixel_values_a"], batch["pixel_values_b"]
        model.calls.append(("discriminator", step, d_step, real_a.clone(), real_b.clone()))
        with torch.no_grad():
            fake_b, fake_a = model.gen_a2b(real_a), model.gen_b2a(real_b)
        real_a = real_a.requires_grad_(True)
        logits_real_a = model.dis_a(real_a)
        loss_real_a, loss_fake_a = least_squares_discriminator_loss(logits_real_a, model.dis_a(fake_a))
        loss_real_b, loss_fake_b = least_squares_discriminator_loss(model.dis_b(real_b), model.dis_b(fake_b))
        loss = loss_real_a + loss_fake_a + loss_real_b + loss_fake_b
        out = {"loss_a": loss_real_a + loss_fake_a, "loss_b": loss_real_b + loss_fake_b}
        if d_step % model.config.r1_interval == 0:  # lazy regulariser, scaled by its interval
            (grad,) = torch.autograd.grad(logits_real_a.sum(), real_a, create_graph=True)
            out["r1"] = grad.square().flatten(1).sum(1).mean()
            loss = loss + model.config.r1_interval * 0.1 * out["r1"]
        return step_output(DiscriminatorStepOutput, loss, **out)

    def generator_step(self, batch, *, step=0):
        model, real_a, real_b = self.model, batch["pixel_values_a"], batch["pixel_values_b"]
        model.calls.append(("generator", step, None, real_a.clone(), real_b.clone()))
        fake_b, fake_a = model.gen_a2b(real_a), model.gen_b2a(real_b)
        adversarial = least_squares_generator_loss(model.dis_b(fake_b)) + least_squares_generator_loss(model.dis_a(fake_a))
        cycle = (model.gen_b2a(fake_b) - real_a).abs().mean() + (model.gen_a2b(fake_a) - real_b).abs().mean()
        identity = (model.gen_a2b(real_b) - real_b).abs().mean() + (model.gen_b2a(real_a) - real_a).abs().mean()
        loss = adversarial + 10 * cycle + 10 * identity
        return step_output(GeneratorStepOutput, loss, adversarial_loss=adversarial, cycle_loss=cycle,
                           identity_loss=identity, fake_b=fake_b)  # fmt: skip


class TwoDomainDataset(torch.utils.data.Dataset):
    def __init__(self, n=24, resolution=8):
        generator = torch.Generator().manual_seed(0)
        self.a = torch.rand(n, 3, resolution, resolution, generator=generator) * 2 - 1
        self.b = -self.a.flip(0)  # domain B: inverted images (unpaired: another order)

    def __len__(self):
        return len(self.a)

    def __getitem__(self, i):
        return {"a": self.a[i], "b": self.b[i]}


def two_domain_collator(rows):
    return {"pixel_values_a": torch.stack([r["a"] for r in rows]), "pixel_values_b": torch.stack([r["b"] for r in rows])}


def test_two_domain_translator_trains_through_the_generic_protocol(tmp_path):
    torch.manual_seed(0)
    model = ToyTranslator(ToyTranslatorConfig())
    dataset = TwoDomainDataset()
    args = GANTrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4, d_steps_per_g_step=2, logging_steps=1,
        save_strategy="no", sample_steps=3, num_sample_images=4, report_to=[], use_cpu=True, seed=0,
        disable_tqdm=True, dataloader_num_workers=0, discriminator_weight_decay=0.5,
    )  # fmt: skip
    trainer = GANTrainer(model=model, args=args, train_dataset=dataset, data_collator=two_domain_collator,
                         steps=ToyTranslatorSteps(model))  # fmt: skip
    trainer.train()

    # 2 D steps + 1 G step per iteration; every call got both domains, 4 rows each; the counters are passed
    modes = [c[0] for c in model.calls]
    assert modes == ["discriminator", "discriminator", "generator"] * 6
    assert all(c[3].shape == c[4].shape == (4, 3, 8, 8) for c in model.calls)
    assert [c[2] for c in model.calls if c[0] == "discriminator"] == list(range(12))
    assert [c[1] for c in model.calls] == [s for s in range(6) for _ in range(3)]
    for it in range(6):  # the G step sees the real images of both domains: the rows of the iteration's first D step
        first_d, g = model.calls[3 * it], model.calls[3 * it + 2]
        assert torch.equal(first_d[3], g[3]) and torch.equal(first_d[4], g[4])
        assert not torch.equal(first_d[3], model.calls[3 * it + 1][3])  # D steps get different chunks
    assert model.hook_steps == [1, 2, 3, 4, 5, 6]
    # the EMA update follows the hook and gets what a half-life decay needs (batch of a G update, images seen)
    assert [c[:4] for c in model.ema_calls] == [(None, s, 4, 4 * s) for s in range(1, 7)]
    assert [c[4][-1] for c in model.ema_calls] == [1, 2, 3, 4, 5, 6]
    assert all(0.0 <= g.rho.item() <= 1.0 for g in (model.gen_a2b, model.gen_b2a))

    # parameter groups: config lr/betas/weight decay, a group's own weight decay wins, arguments override the config
    g_groups, d_groups = trainer.optimizer.param_groups, trainer.d_optimizer.param_groups
    assert [g["weight_decay"] for g in g_groups] == [1e-4, 0.0] and g_groups[0]["betas"] == (0.5, 0.999)
    assert g_groups[0]["lr"] == pytest.approx(1e-2) and d_groups[0]["weight_decay"] == 0.5

    # every scalar field of the outputs is logged under d_/g_ names; tensors with images are not
    logs = [r for r in trainer.state.log_history if "d_loss" in r]
    assert len(logs) == 6
    for row in logs:
        for key in ("loss", "d_loss_a", "d_loss_b", "g_adversarial_loss", "g_cycle_loss", "g_identity_loss"):
            assert key in row and math.isfinite(row[key]), key
        assert "g_fake_b" not in row
    assert sum("d_r1" in r for r in logs) == 6  # logged in every iteration (every 2nd D step computes it)
    assert logs[-1]["g_cycle_loss"] < logs[0]["g_cycle_loss"]

    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["step_0000003.png", "step_0000006.png"]
    expected = model.sample_images(4, None, two_domain_collator([dataset[i] for i in range(4)]))
    torch.testing.assert_close(trainer.generate_fixed_samples(), expected)


# ------------------------------------------------------------------------------------------------ the protocol as types
GAN_FAMILIES = {"fq_biggan": "FQBigGANSteps", "fq_stylegan": "FQStyleGANSteps", "fq_ugatit": "FQUGATITSteps"}


@pytest.mark.parametrize("model_type", sorted(GAN_FAMILIES))
def test_every_gan_family_registers_its_steps_and_its_forward_has_no_mode(model_type):
    import inspect

    from hf_dgm.modules.gan_protocol import GANModel
    from hf_dgm.registry import get_family, resolve_callable
    from hf_dgm.training.gan_trainer import gan_steps_for

    spec = get_family(model_type)
    steps_class = resolve_callable(spec.gan_steps)
    assert steps_class.__name__ == GAN_FAMILIES[model_type] and issubclass(steps_class, GANSteps)
    assert steps_class.__module__ == f"hf_dgm.training.{model_type}.loss"  # training code, next to the trainer
    model_class = spec.auto_models["AutoModel"]
    assert "mode" not in inspect.signature(model_class.forward).parameters
    model = model_class(spec.config_class.from_preset("tiny") if hasattr(spec.config_class, "from_preset")
                        else spec.config_class(image_size=32, ngf=4, ndf=4, n_res_blocks=1, light=True))  # fmt: skip
    assert isinstance(model, GANModel)
    steps = gan_steps_for(model)
    assert type(steps) is steps_class and steps.model is model


def test_trainer_refuses_what_the_protocol_lacks(tmp_path):
    args = GANTrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, report_to=[],
                                use_cpu=True, save_strategy="no", sample_steps=0)  # fmt: skip

    class NoParameters(nn.Module):
        def generator_parameters(self):
            return []

    with pytest.raises(TypeError, match="discriminator_parameters"):
        GANTrainer(model=NoParameters(), args=args)
    model = ToyTranslator(ToyTranslatorConfig())
    with pytest.raises(TypeError, match="steps="):  # an unregistered model needs its steps passed
        GANTrainer(model=model, args=args, train_dataset=TwoDomainDataset(), data_collator=two_domain_collator)

    class Incomplete(GANSteps):  # no generator_step
        def discriminator_step(self, batch, *, step=0, d_step=0):
            return step_output(DiscriminatorStepOutput, torch.zeros(()))

    with pytest.raises(TypeError, match="generator_step"):
        Incomplete(model)

    class Untyped(ToyTranslatorSteps):  # returns a plain dict instead of a step output
        def discriminator_step(self, batch, *, step=0, d_step=0):
            return {"loss": super().discriminator_step(batch, step=step, d_step=d_step).loss}

    trainer = GANTrainer(model=model, args=args, train_dataset=TwoDomainDataset(), data_collator=two_domain_collator,
                         steps=Untyped(model))  # fmt: skip
    with pytest.raises(TypeError, match="must return a GANStepOutput"):
        trainer.train()


def test_fq_config_fields_are_declared_once():
    import inspect

    from hf_dgm.models.fq_biggan import FQBigGANConfig
    from hf_dgm.models.fq_stylegan import FQStyleGANConfig
    from hf_dgm.models.fq_ugatit import FQUGATITConfig
    from hf_dgm.modules.feature_quantizer import FQ_CONFIG_DEFAULTS, FeatureQuantizerConfigMixin
    from hf_dgm.modules.validation import check_config_keys

    expected = {  # each family's defaults (its original's), unchanged by the move
        FQBigGANConfig: {"fq_layers": [0, 1, 2, 3], "fq_num_embeddings": 1024, "fq_commitment": 1.0,
                         "fq_zero_debias": False},
        FQStyleGANConfig: {"fq_commitment": 0.25, "fq_zero_debias": True, "fq_decay": 0.8},
        FQUGATITConfig: {"fq_layers": [1, 2, 3], "fq_num_embeddings": [64, 128, 128], "fq_decay": 0.85,
                         "fq_commitment": 2.0, "fq_zero_debias": True},
    }  # fmt: skip
    for config_class, defaults in expected.items():
        assert issubclass(config_class, FeatureQuantizerConfigMixin)
        own = [p for p in inspect.signature(config_class.__init__).parameters if p.startswith("fq_") or p == "use_fq"]
        assert own == [], f"{config_class.__name__} declares {own} itself"
        check_config_keys(config_class, dict.fromkeys(FQ_CONFIG_DEFAULTS), "overrides")  # still accepted keys
        config = config_class()
        assert config.use_fq is True and config.fq_update_in_generator_step is True
        for name, value in defaults.items():
            assert getattr(config, name) == value, (config_class.__name__, name)
        assert "num_channels" in inspect.signature(config_class.__init__).parameters  # one channel name
    with pytest.raises(ValueError, match="fq_update_in_generator_step"):
        FQBigGANConfig(fq_update_in_generator_step="yes")
