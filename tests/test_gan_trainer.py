"""GANTrainer: alternating D/G steps, step ratio, gradient accumulation, exact resume (both optimizers, EMA,
quantizer state, RNG), divergence guard, sample grids, logging; image data helpers; FQ-BigGAN integration; a real
2-process DDP run (slow)."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel

from hf_dgm.modules.gan_protocol import DiscriminatorStepOutput, GANSteps, GeneratorStepOutput, step_output
from hf_dgm.training.image_data import ImageGANCollator, dataset_from_arrays, load_digits_dataset, load_image_dataset
from hf_dgm.training.gan_trainer import GANTrainer, GANTrainingArguments, GANTrainingDivergedError
from hf_dgm.training.plots import image_grid

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ a toy GAN
class ToyGANConfig(PreTrainedConfig):
    model_type = "toy_gan_for_tests"

    def __init__(self, resolution=8, num_classes=3, dim_z=4, hidden=16, num_codes=4, discriminator_steps=2,
                 generator_lr=1e-3, discriminator_lr=2e-3, generator_betas=(0.0, 0.999),
                 discriminator_betas=(0.5, 0.99), ema_start=2, ema_decay=0.9, **kwargs):  # fmt: skip
        self.resolution, self.num_classes, self.dim_z, self.hidden = resolution, num_classes, dim_z, hidden
        self.num_codes, self.discriminator_steps = num_codes, discriminator_steps
        self.generator_lr, self.discriminator_lr = generator_lr, discriminator_lr
        self.generator_betas, self.discriminator_betas = list(generator_betas), list(discriminator_betas)
        self.ema_start, self.ema_decay = ema_start, ema_decay
        super().__init__(**kwargs)


class ToyGAN(PreTrainedModel):
    """Follows the FQ-BigGAN training protocol with MLPs and a 4-entry EMA dictionary (a miniature quantizer
    whose state lives in buffers and is updated only in D steps). `nan_at_d_call` / `nan_at_g_call` poison the
    loss of the n-th D / G step (1-based) to test the divergence guard."""

    config_class = ToyGANConfig

    def __init__(self, config):
        super().__init__(config)
        pixels = 3 * config.resolution**2
        self.generator = nn.Sequential(nn.Linear(config.dim_z + config.num_classes, pixels), nn.Tanh())
        self.generator_ema = nn.Sequential(nn.Linear(config.dim_z + config.num_classes, pixels), nn.Tanh())
        self.generator_ema.requires_grad_(False)
        self.disc_body = nn.Sequential(nn.Linear(pixels, config.hidden), nn.LeakyReLU(0.2))
        self.disc_head = nn.Linear(config.hidden, 1)
        self.disc_embed = nn.Embedding(config.num_classes, config.hidden)
        self.register_buffer("codes", torch.randn(config.num_codes, config.hidden) * 0.1)
        self.nan_at_d_call = None
        self.nan_at_g_call = None
        self.d_calls = 0
        self.g_calls = 0
        self.post_init()
        self.generator_ema.load_state_dict(self.generator.state_dict())

    def _init_weights(self, module):
        pass  # keep PyTorch's default init (seeded by the test)

    def generator_parameters(self):
        return self.generator.parameters()

    def discriminator_parameters(self):
        return [*self.disc_body.parameters(), *self.disc_head.parameters(), *self.disc_embed.parameters()]

    def _gen(self, net, z, labels):
        onehot = nn.functional.one_hot(labels, self.config.num_classes).float()
        r = self.config.resolution
        return net(torch.cat([z, onehot], 1)).view(-1, 3, r, r)

    def _disc(self, images, labels, update):
        h = self.disc_body(images.flatten(1))
        logits = self.disc_head(h).squeeze(1) + (self.disc_embed(labels) * h).sum(1)
        dist = torch.cdist(h.detach(), self.codes)
        idx = dist.argmin(1)
        if update:
            with torch.no_grad():
                for k in idx.unique():
                    self.codes[k].mul_(0.5).add_(0.5 * h.detach()[idx == k].mean(0))
        q_loss = ((h - self.codes[idx]) ** 2).mean()
        usage = torch.bincount(idx, minlength=self.config.num_codes).float() / idx.numel()
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        return logits, q_loss, perplexity, (usage > 0).float().mean()

    @torch.no_grad()
    def update_generator_ema(self, decay=None, step=None):
        if step is not None and step < self.config.ema_start:
            decay = 0.0
        elif decay is None:
            decay = self.config.ema_decay
        for t, s in zip(self.generator_ema.parameters(), self.generator.parameters()):
            t.mul_(decay).add_(s, alpha=1 - decay)
        return decay

    @torch.no_grad()
    def generate(self, labels, truncation=1.0, generator=None, use_ema=True, batch_size=None):
        z = torch.randn(len(labels), self.config.dim_z, generator=generator)
        return self._gen(self.generator_ema if use_ema else self.generator, z, labels)

    def sample_images(self, num_images, generator=None, use_ema=True):
        return self.generate(torch.arange(num_images) % self.config.num_classes, generator=generator, use_ema=use_ema)

    def sample_grid_columns(self, num_images):
        return self.config.num_classes


class ToyGANSteps(GANSteps):
    """The toy's losses (the training side of the protocol): hinge loss + the dictionary's commitment term."""

    def discriminator_step(self, batch, *, step=0, d_step=0):
        model, pixel_values, labels = self.model, batch["pixel_values"], batch["labels"]
        model.d_calls += 1
        b = pixel_values.shape[0]
        fake_labels = torch.randint(0, model.config.num_classes, (b,), device=pixel_values.device)
        with torch.no_grad():
            fake = model._gen(model.generator, torch.randn(b, model.config.dim_z), fake_labels)
        logits, q, ppl, use = model._disc(torch.cat([fake, pixel_values]), torch.cat([fake_labels, labels]), True)
        loss_real = torch.relu(1 - logits[b:]).mean()
        loss_fake = torch.relu(1 + logits[:b]).mean()
        loss = loss_real + loss_fake + q
        if model.d_calls == model.nan_at_d_call:
            loss = loss * float("nan")
        return step_output(DiscriminatorStepOutput, loss, d_loss_real=loss_real, d_loss_fake=loss_fake,
                           quantization_loss=q, fq_perplexity=ppl, fq_usage=use)  # fmt: skip

    def generator_step(self, batch, *, step=0):
        model = self.model
        model.g_calls += 1
        labels = batch.get("labels")
        if labels is None:
            labels = torch.randint(0, model.config.num_classes, (batch["pixel_values"].shape[0],))
        images = model._gen(model.generator, torch.randn(labels.shape[0], model.config.dim_z), labels)
        logits, q, ppl, use = model._disc(images, labels, False)
        g_loss = -logits.mean()
        loss = g_loss + q
        if model.g_calls == model.nan_at_g_call:
            loss = loss * float("inf")
        return step_output(GeneratorStepOutput, loss, g_loss=g_loss, quantization_loss=q, images=images)


def toy_dataset(n=48, resolution=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, resolution, resolution, 3), dtype=np.uint8)
    return dataset_from_arrays(images, rng.integers(0, 3, size=n), label_names=["a", "b", "c"])


def make_trainer(tmp_path, model=None, dataset=None, **overrides):
    torch.manual_seed(0)
    model = model if model is not None else ToyGAN(ToyGANConfig())
    dataset = dataset if dataset is not None else toy_dataset()
    kwargs = dict(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=4, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, seed=0, disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    kwargs.update(overrides)
    args = GANTrainingArguments(**kwargs)
    collator = ImageGANCollator.for_dataset(dataset, resolution=model.config.resolution)
    steps = ToyGANSteps(model) if isinstance(model, ToyGAN) else None  # a registered family: its FamilySpec.gan_steps
    return GANTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator, steps=steps)


def _count_steps(optimizer):
    counter = {"n": 0}
    optimizer.register_step_post_hook(lambda *args: counter.__setitem__("n", counter["n"] + 1))
    return counter


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------ tests
def test_steps_update_both_networks_with_d_to_g_ratio(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=4, sample_steps=2, num_sample_images=6)
    model = trainer.model
    before = _snapshot(model)
    trainer.create_optimizer()
    d_count, g_count = _count_steps(trainer.d_optimizer), _count_steps(trainer.optimizer)
    trainer.train()

    assert trainer.d_steps_per_g_step == 2  # from the model config
    assert g_count["n"] == 4 and d_count["n"] == 8 and trainer.num_d_updates == 8 and trainer.num_g_updates == 4
    # each D step saw its own chunk: 4 images per D step, 2 D steps per G step
    assert model.d_calls == 8 and model.g_calls == 4
    after = model.state_dict()
    for prefix in ("generator.", "generator_ema.", "disc_body.", "disc_head.", "disc_embed.", "codes"):
        changed = [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]
        assert changed, f"{prefix} did not change"
    # Optimizer settings: from the model config (G betas (0, .999), D betas (.5, .99), lrs 1e-3 / 2e-3).
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert trainer.d_optimizer.param_groups[0]["betas"] == (0.5, 0.99)
    assert trainer.d_optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)
    assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in model.generator.parameters()
    }

    logs = [r for r in trainer.state.log_history if "d_loss" in r]
    assert len(logs) == 4
    for row in logs:
        for key in ("loss", "g_loss", "d_loss", "d_loss_real", "d_loss_fake", "d_quantization_loss",
                    "g_quantization_loss", "d_fq_perplexity", "d_fq_usage", "d_learning_rate"):  # fmt: skip
            assert key in row and math.isfinite(row[key]), (key, row)
        assert 1.0 <= row["d_fq_perplexity"] <= 4.0
        assert "g_images" not in row  # only scalar fields are logged
        # D loss is the sum of its parts
        assert row["d_loss"] == pytest.approx(row["d_loss_real"] + row["d_loss_fake"] + row["d_quantization_loss"], abs=1e-4)

    grids = sorted(os.listdir(tmp_path / "samples"))
    assert grids == ["step_0000002.png", "step_0000004.png"]
    img = Image.open(tmp_path / "samples" / grids[-1])
    assert img.mode == "RGB" and img.size[0] >= 3 * 8
    # Fixed z and classes: the grid is exactly what generate() gives with the sample seed.
    expected = model.generate(torch.arange(6) % 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(trainer.generate_fixed_samples(), expected)


def test_args_override_config_and_gradient_accumulation(tmp_path):
    trainer = make_trainer(
        tmp_path, max_steps=2, gradient_accumulation_steps=2, d_steps_per_g_step=3, discriminator_learning_rate=5e-4,
        discriminator_adam_beta1=0.1, ema_start=100,
    )  # fmt: skip
    trainer.create_optimizer()
    d_count, g_count = _count_steps(trainer.d_optimizer), _count_steps(trainer.optimizer)
    ema_before = _snapshot(trainer.model.generator_ema)
    trainer.train()
    assert trainer.d_optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert trainer.d_optimizer.param_groups[0]["betas"] == (0.1, 0.99)
    # every D step and the G step accumulate over 2 micro-batches
    assert g_count["n"] == 2 and d_count["n"] == 6
    assert trainer.model.d_calls == 2 * 3 * 2 and trainer.model.g_calls == 2 * 2
    # before ema_start the EMA is a copy of G
    for k, v in trainer.model.generator_ema.state_dict().items():
        assert torch.equal(v, trainer.model.generator.state_dict()[k]) and not torch.equal(v, ema_before[k])


def test_resume_restores_everything_and_continues_identically(tmp_path):
    full = make_trainer(tmp_path / "full", max_steps=6, save_strategy="steps", save_steps=3)
    full.train()
    ckpt = tmp_path / "full" / "checkpoint-3"
    for name in ("d_optimizer.pt", "d_scheduler.pt", "gan_state.json", "optimizer.pt", "model.safetensors"):
        assert (ckpt / name).is_file(), name
    assert json.loads((ckpt / "gan_state.json").read_text())["num_d_updates"] == 6
    d_state = torch.load(ckpt / "d_optimizer.pt", weights_only=True)

    resumed = make_trainer(tmp_path / "resumed", max_steps=6, save_strategy="steps", save_steps=3)
    loaded = {}
    original_load = resumed._load_optimizer_and_scheduler

    def spy(checkpoint):
        original_load(checkpoint)
        first_param = resumed.d_optimizer.param_groups[0]["params"][0]
        loaded.update({k: v.clone() for k, v in resumed.d_optimizer.state[first_param].items()})

    resumed._load_optimizer_and_scheduler = spy
    resumed.train(resume_from_checkpoint=str(ckpt))
    # the D optimizer's Adam moments were restored from the checkpoint
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(loaded[key], d_state["state"][0][key], rtol=0, atol=0)

    def losses(trainer):
        return [(r["step"], r["loss"], r["d_loss"], r["d_fq_perplexity"]) for r in trainer.state.log_history if "d_loss" in r]

    # (the resumed history starts with the checkpoint's logs of steps 1-3)
    full_tail = [row for row in losses(full) if row[0] > 3]
    resumed_tail = [row for row in losses(resumed) if row[0] > 3]
    assert resumed_tail == full_tail and len(full_tail) == 3
    final_full, final_resumed = full.model.state_dict(), resumed.model.state_dict()
    for k in final_full:  # G, D, G-EMA and the dictionary buffer
        assert torch.equal(final_full[k], final_resumed[k]), k
    assert resumed.num_d_updates == full.num_d_updates == 12

    os.remove(ckpt / "d_optimizer.pt")
    again = make_trainer(tmp_path / "again", max_steps=6)
    with pytest.raises(FileNotFoundError, match="d_optimizer.pt"):
        again.train(resume_from_checkpoint=str(ckpt))


@pytest.mark.parametrize("network", ["discriminator", "generator"])
def test_divergence_guard_stops_and_keeps_last_good_checkpoint(tmp_path, network):
    torch.manual_seed(0)
    model = ToyGAN(ToyGANConfig())
    if network == "discriminator":
        model.nan_at_d_call = 5  # first D step of global step 3 (2 D steps per G step)
    else:
        model.nan_at_g_call = 3  # G step of global step 3
    trainer = make_trainer(tmp_path, model=model, max_steps=5, save_strategy="steps", save_steps=1)
    with pytest.raises(GANTrainingDivergedError, match=rf"{network} loss is (nan|inf).*global step 3.*checkpoint-2"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "checkpoint-2" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())


def _tensorboard_events(folder: Path) -> dict:
    """{"scalars": {tag: {step: value}}, "images": {tag: {step: (height, width)}}} over every event file below."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {"scalars": {}, "images": {}}
    for directory in sorted({p.parent for p in folder.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(directory), size_guidance={"images": 0, "scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            found["scalars"].setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
        for tag in acc.Tags()["images"]:
            found["images"].setdefault(tag, {}).update({e.step: (e.height, e.width) for e in acc.Images(tag)})
    return found


def test_sample_grids_and_scalars_reach_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    trainer = make_trainer(tmp_path, max_steps=4, sample_steps=2, num_sample_images=6, report_to=["tensorboard"])
    trainer.train()
    events = _tensorboard_events(tmp_path / "runs")
    grid = Image.open(tmp_path / "samples" / "step_0000002.png")
    # every grid (steps 2 and 4, and the end-of-training one at step 4), as the PNG on disk
    assert events["images"]["samples"] == {2: (grid.height, grid.width), 4: (grid.height, grid.width)}
    for tag in ("train/loss", "train/d_loss", "train/d_fq_perplexity", "train/g_quantization_loss"):
        assert sorted(events["scalars"][tag]) == [1, 2, 3, 4], tag
    logged = {row["step"]: row["d_loss"] for row in trainer.state.log_history if "d_loss" in row}
    assert events["scalars"]["train/d_loss"] == pytest.approx(logged, rel=1e-6)  # float32 in the event file
    # after training (the callback closed its writer): reopened in the same folder
    assert trainer.log_images({"extra": np.zeros((5, 7), dtype=np.uint8)}, step=9) == ["tensorboard"]
    assert _tensorboard_events(tmp_path / "runs")["images"]["extra"] == {9: (5, 7)}
    # no tracker: nothing to send, nothing fails
    quiet = make_trainer(tmp_path / "quiet", max_steps=2, sample_steps=1, num_sample_images=3)
    quiet.train()
    assert quiet.log_images({"x": np.zeros((2, 2, 3), dtype=np.uint8)}) == [] and not (tmp_path / "quiet" / "runs").exists()


def test_bf16_and_fp16_policy(tmp_path):
    with pytest.raises(ValueError, match="fp16"):
        GANTrainingArguments(output_dir=str(tmp_path), fp16=True, use_cpu=True)
    trainer = make_trainer(tmp_path, max_steps=1, bf16=True)
    trainer.train()
    assert all(math.isfinite(r["d_loss"]) for r in trainer.state.log_history if "d_loss" in r)


def test_image_data_helpers(tmp_path, monkeypatch):
    # image folder with two classes, non-square images
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 10), color).save(tmp_path / "imgs" / cls / f"{i}.png")
    ds = load_image_dataset(tmp_path / "imgs")
    collator = ImageGANCollator.for_dataset(ds, resolution=4)
    assert collator.label_column == "label" and ds.features["label"].names == ["cat", "dog"]
    batch = collator([ds[i] for i in range(len(ds))])
    assert batch["pixel_values"].shape == (6, 3, 4, 4) and batch["pixel_values"].dtype == torch.float32
    red = batch["pixel_values"][batch["labels"] == 0]
    assert torch.allclose(red[:, 0], torch.ones(3, 4, 4)) and torch.allclose(red[:, 2], -torch.ones(3, 4, 4))

    digits = load_digits_dataset()
    assert len(digits) == 1797 and digits.features["label"].num_classes == 10
    b = ImageGANCollator.for_dataset(digits, resolution=16)([digits[i] for i in range(2)])
    assert b["pixel_values"].shape == (2, 3, 16, 16) and b["pixel_values"].min() >= -1 and b["labels"].tolist() == [0, 1]

    arrays = dataset_from_arrays(np.zeros((2, 3, 5, 5), dtype=np.float32) + 0.5, [1, 0], value_range=(0.0, 1.0))
    assert ImageGANCollator.for_dataset(arrays, 5)([arrays[0]])["pixel_values"].abs().max() < 0.01
    with pytest.raises(ValueError, match="labels must lie"):
        dataset_from_arrays(np.zeros((2, 4, 4), dtype=np.uint8), [0, 5], label_names=["a", "b"])

    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="(?s)uoft-cs/cifar10.*local image folder"):
        load_image_dataset("uoft-cs/cifar10")


def test_image_grid_layout():
    images = torch.stack([torch.full((3, 2, 2), v) for v in (-1.0, 1.0, -1.0)])
    grid = image_grid(images, ncol=2, padding=1)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1, 3)
    assert grid[1, 1, 0] == 0 and grid[1, 4, 0] == 255 and grid[4, 1, 0] == 0 and grid[4, 4, 0] == 255  # pad=white


def test_save_image_grid_greyscale_and_rgb(tmp_path):
    from PIL import Image

    from hf_dgm.training.plots import save_image_grid

    grey = torch.linspace(-1, 1, 4 * 16).reshape(4, 1, 4, 4)
    save_image_grid(grey, tmp_path / "grey.png", ncol=2, scale=1)
    with Image.open(tmp_path / "grey.png") as img:
        assert img.mode == "L" and img.size == (2 * (4 + 2) + 2, 2 * (4 + 2) + 2)
        assert np.array_equal(np.asarray(img), image_grid(grey, ncol=2, padding=2)[..., 0])
    save_image_grid(grey.repeat(1, 3, 1, 1), tmp_path / "rgb.png", ncol=2, scale=1)
    with Image.open(tmp_path / "rgb.png") as img:
        assert img.mode == "RGB"


def test_fq_biggan_integration(tmp_path):
    from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration

    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset("tiny", discriminator_steps=2, num_classes=10, class_names=[str(i) for i in range(10)])
    model = FQBigGANForImageGeneration(config)
    digits = load_digits_dataset().select(range(64))
    before = _snapshot(model)
    trainer = make_trainer(tmp_path, model=model, dataset=digits, max_steps=2, per_device_train_batch_size=8,
                           sample_steps=2, num_sample_images=10)  # fmt: skip
    trainer.train()
    logs = [r for r in trainer.state.log_history if "d_loss" in r]
    assert len(logs) == 2 and all(math.isfinite(r["d_fq_perplexity"]) and r["d_fq_perplexity"] >= 1 for r in logs)
    after = model.state_dict()
    quantizer_buffers = [k for k in after if k.endswith(".embed") or k.endswith("cluster_size")]
    assert quantizer_buffers and any(not torch.equal(before[k], after[k]) for k in quantizer_buffers)
    for prefix in ("generator.", "generator_ema.", "discriminator."):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix)), prefix
    assert (tmp_path / "samples" / "step_0000002.png").is_file()
    trainer.save_model(str(tmp_path / "final"))
    reloaded = FQBigGANForImageGeneration.from_pretrained(str(tmp_path / "final"))
    for k, v in reloaded.state_dict().items():
        assert torch.equal(v, after[k]), k


# ------------------------------------------------------------------------------------------------ DDP (slow)
DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    sys.path.insert(0, {tests!r})
    from test_gan_trainer import make_trainer
    from hf_dgm.training.image_data import load_digits_dataset
    from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
    from pathlib import Path

    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", discriminator_steps=2))
    trainer = make_trainer(Path({out!r}), model=model, dataset=load_digits_dataset().select(range(128)),
                           max_steps=3, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                           save_strategy="steps", save_steps=3)
    trainer.train()
    rank = trainer.args.process_index
    digest = {{k: hashlib.sha256(v.detach().cpu().numpy().tobytes()).hexdigest() for k, v in model.state_dict().items()}}
    logs = [r for r in trainer.state.log_history if "d_loss" in r]
    with open(os.path.join({out!r}, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"world": trainer.args.world_size, "digest": digest, "logs": logs,
                   "d_updates": trainer.num_d_updates}}, f)
    """
)


@pytest.mark.slow
def test_two_process_ddp_cpu(tmp_path):
    script = tmp_path / "ddp_gan.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), out=str(tmp_path)))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]  # fmt: skip
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    # identical weights, EMA and FQ dictionaries on both processes after DDP training
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert ranks[0]["d_updates"] == 6 and len(ranks[0]["logs"]) == 3
    assert (tmp_path / "checkpoint-3" / "d_optimizer.pt").is_file()


# ------------------------------------------------------------------------------------------------ training script
def _load_train_gan():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_gan", REPO / "training" / "train_gan.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_gan"] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_train_gan_recipe_parsing_and_offline_message(tmp_path, monkeypatch):
    from hf_dgm.models.fq_biggan import FQBigGANConfig

    train_gan = _load_train_gan()
    recipes = sorted((REPO / "training" / "recipes").glob("fq_biggan_*.yaml"))
    assert {p.stem for p in recipes} >= {"fq_biggan_cifar10", "fq_biggan_cifar100", "fq_biggan_imagenet64",
                                         "fq_biggan_imagenet128", "fq_biggan_digits_cpu"}  # fmt: skip
    for recipe in recipes:  # every recipe parses and builds a valid config
        family, arguments, _, _ = train_gan.parse_args(
            ["--recipe", str(recipe), "--output_dir", str(tmp_path), "--use_cpu", "true"]
        )
        assert arguments["GANRunArguments"].model_type == "fq_biggan" and family.__name__.endswith("fq_biggan.gan_run")
        model_args = arguments["ModelArguments"]
        overrides = model_args.config_overrides or {}  # recipes keep mappings as mappings
        assert isinstance(overrides, dict)
        FQBigGANConfig.from_preset(model_args.preset, **overrides)
    _, arguments, training_args, _ = train_gan.parse_args(
        ["--recipe", str(REPO / "training/recipes/fq_biggan_cifar10.yaml"), "--output_dir", str(tmp_path),
         "--d_steps_per_g_step", "2", "--use_fq", "false", "--use_cpu", "true"]
    )  # fmt: skip
    assert arguments["DataArguments"].dataset == "uoft-cs/cifar10" and training_args.per_device_train_batch_size == 64
    assert training_args.d_steps_per_g_step == 2 and arguments["ModelArguments"].use_fq is False  # CLI wins
    with pytest.raises(ValueError, match="No GAN run code for model_type 'no_such_gan'"):
        train_gan.parse_args(["--model_type", "no_such_gan", "--output_dir", str(tmp_path)])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_type: fq_biggan\npreset: tiny\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="unknown keys"):
        train_gan.parse_args(["--recipe", str(bad), "--output_dir", str(tmp_path)])

    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit, match="(?s)uoft-cs/cifar10.*offline digits recipe"):
        train_gan.main(["--recipe", str(REPO / "training/recipes/fq_biggan_cifar10.yaml"), "--output_dir",
                        str(tmp_path), "--use_cpu", "true"])  # fmt: skip


def test_train_gan_digits_recipe_end_to_end(tmp_path):
    train_gan = _load_train_gan()
    out = tmp_path / "run"
    results = train_gan.main(
        ["--recipe", str(REPO / "training/recipes/fq_biggan_digits_cpu.yaml"), "--output_dir", str(out),
         "--max_steps", "2", "--save_steps", "2", "--sample_steps", "1", "--logging_steps", "1",
         "--eval_num_samples", "40", "--kid_subset_size", "20", "--kid_num_subsets", "5", "--disable_tqdm", "true",
         "--report_to", "tensorboard"]
    )  # fmt: skip
    for name in ("model.safetensors", "config.json", "losses.png", "eval_results.json", "samples/final.png",
                 "samples/step_0000001.png", "checkpoint-2/d_optimizer.pt"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")), "run folders stay pickle-free (the Hub publisher refuses pickles)"
    assert (out / "training_args.json").is_file() and (out / "run_metadata.json").is_file()
    assert (out / "recipe.yaml").is_file() and (out / "metrics.json").is_file()  # the shared run-folder writer
    assert results["comparable_to_published"] is False and "fid" not in results
    assert results["randomconv_fid"] > 0 and "NOT comparable" in results["note"]
    # the recipe's classifier evaluation and dictionary usage are measured and written to metrics.json
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["classifier_accuracy_generated"] <= 1.0 and metrics["num_classifier_generated"] == 40
    assert metrics["classifier_accuracy_real_held_out"] > 0.8  # the classifier itself reads real digits
    assert len(metrics["classifier_accuracy_generated_per_class"]) == 10
    assert 1 <= metrics["fq_used_entries_layer0"] <= metrics["num_fq_dictionary_entries"]
    optimization = json.loads((out / "run_metadata.json").read_text())["optimization"]
    assert optimization["generator_updates"] == 2 and optimization["generator"]["optimizer"] == "Adam"
    from hf_dgm.models.fq_biggan import FQBigGANForImageGeneration

    model = FQBigGANForImageGeneration.from_pretrained(str(out))
    assert model.config.num_classes == 10 and model.config.id2label[3] == "3"
    assert model.config.num_channels == 1 and model.generate([0, 1]).shape == (2, 1, 16, 16)  # greyscale digits
    assert optimization["generator"]["lr"] == model.config.generator_lr
    # the trackers got the sample grids, the evaluation's numbers and the run's figures
    events = _tensorboard_events(out / "runs")
    assert sorted(events["images"]["samples"]) == [1, 2]
    for tag in ("figures/samples_final", "figures/losses"):
        assert events["images"][tag].keys() == {2}, tag
    assert events["images"]["figures/losses"][2] == Image.open(out / "losses.png").size[::-1]
    assert events["scalars"]["eval/randomconv_fid"][2] == pytest.approx(results["randomconv_fid"], rel=1e-6)
    assert events["scalars"]["eval/classifier_accuracy_generated"][2] == pytest.approx(metrics["classifier_accuracy_generated"])
    assert events["scalars"]["eval/classifier_accuracy_generated_per_class/3"][2] == pytest.approx(
        metrics["classifier_accuracy_generated_per_class"][3])
    assert "train/loss" in events["scalars"]
