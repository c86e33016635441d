"""FQ-U-GAT-IT through GANTrainer: ρ clipping after G steps, both domains reaching both steps, the offline digits
recipe (cycle loss falls, A→B translations move towards the B style), unpaired data and schedule helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from hf_dgm.training.fq_ugatit.gan_run import lr_decay_kwargs
from hf_dgm.training.gan_trainer import GANTrainer, GANTrainingArguments
from hf_dgm.training.unpaired_data import (
    UnpairedImageCollator,
    UnpairedImageDataset,
    digits_two_domains,
    load_two_domains,
)


torch.set_num_threads(1)
RECIPE = Path(__file__).resolve().parents[1] / "training" / "recipes" / "fq_ugatit_digits_cpu.yaml"


def tiny_config(**kwargs):
    base = dict(
        image_size=16, ngf=4, n_res_blocks=1, light=True, ndf=4, global_discriminator_layers=4,
        local_discriminator_layers=3, fq_layers=[1, 2], fq_num_embeddings=[8, 8], generator_lr=2e-3,
        discriminator_lr=2e-3,
    )  # fmt: skip
    base.update(kwargs)
    return FQUGATITConfig(**base)


def test_digits_domains_are_unpaired_and_styled():
    domains = digits_two_domains()
    assert len(domains["train_a"]) == len(domains["train_b"]) == 800 and len(domains["test_a"]) == 197
    a = np.asarray(domains["train_a"][0], dtype=float)
    b = np.asarray(domains["train_b"][0], dtype=float)
    assert a.shape == b.shape == (8, 8, 3)
    assert np.allclose(a[..., 0], a[..., 2])  # grey
    assert b[..., 0].mean() > b[..., 2].mean()  # warm paper dominates
    # the test split shows the same digit in both styles: B's ink is where A is bright
    ta = np.asarray(domains["test_a"][3], dtype=float).mean(-1)
    tb = np.asarray(domains["test_b"][3], dtype=float).mean(-1)
    assert np.corrcoef(ta.ravel(), tb.ravel())[0, 1] < -0.9


def test_unpaired_dataset_and_collator():
    domains = digits_two_domains()
    dataset = UnpairedImageDataset(domains["train_a"][:5], domains["train_b"][:3])
    assert len(dataset) == 5
    batch = UnpairedImageCollator(16, crop_margin=2)([dataset[i] for i in range(4)])
    assert batch["pixel_values_a"].shape == batch["pixel_values_b"].shape == (4, 3, 16, 16)
    assert batch["pixel_values_a"].min() >= -1 and batch["pixel_values_a"].max() <= 1
    plain = UnpairedImageCollator(16, augment=False).transform(domains["test_a"][0])
    assert plain.shape == (3, 16, 16)
    # no margin and no flip: the training transform is the plain resize; with flips, some images come back mirrored
    fixed = UnpairedImageCollator(16, crop_margin=0, random_flip=False)
    assert all(torch.equal(fixed.transform(domains["test_a"][0]), plain) for _ in range(8))
    flipping = UnpairedImageCollator(16, crop_margin=0)
    torch.manual_seed(0)
    outputs = [flipping.transform(domains["test_a"][0]) for _ in range(16)]
    assert any(torch.equal(o, plain.flip(-1)) for o in outputs) and any(torch.equal(o, plain) for o in outputs)
    with pytest.raises(ValueError, match="both domains"):
        UnpairedImageDataset([], domains["train_b"])
    with pytest.raises(ValueError, match="image_a"):
        UnpairedImageCollator(16)([{"image": domains["train_a"][0]}])


def test_two_folders_load_as_domains(tmp_path):
    domains = digits_two_domains()
    for name, images in (("trainA", domains["train_a"][:3]), ("trainB", domains["train_b"][:4])):
        (tmp_path / name).mkdir()
        for i, image in enumerate(images):
            image.save(tmp_path / name / f"{i}.png")
    a, b = load_two_domains(source_a=str(tmp_path / "trainA"), source_b=str(tmp_path / "trainB"))
    assert (len(a), len(b)) == (3, 4) and a.column_names == ["image"]
    with pytest.raises(ValueError, match="column_a"):
        load_two_domains(source=str(tmp_path / "trainA"))


def test_second_half_linear_decay():
    kwargs = lr_decay_kwargs(10)
    assert kwargs == {"num_decay_steps": 5, "decay_type": "linear"}
    from transformers.optimization import get_scheduler

    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_scheduler("warmup_stable_decay", optimizer, num_warmup_steps=0, num_training_steps=10,
                              scheduler_specific_kwargs=kwargs)  # fmt: skip
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:6] == [1.0] * 6
    assert all(math.isclose(r, 1.0 - k / 5, abs_tol=1e-6) for k, r in zip(range(1, 5), rates[6:]))


def test_trainer_clips_rho_and_feeds_both_domains(tmp_path):
    torch.manual_seed(0)
    model = FQUGATITModel(tiny_config())
    rhos = list(model.generator_a2b.rho_parameters()) + list(model.generator_b2a.rho_parameters())
    with torch.no_grad():
        for i, rho in enumerate(rhos):
            rho.fill_(1.5 if i % 2 else -0.5)
    seen = []
    domains = digits_two_domains()
    args = GANTrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, use_cpu=True, report_to="none",
        save_strategy="no", logging_steps=1, sample_steps=0, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    trainer = GANTrainer(
        model=model, args=args, train_dataset=UnpairedImageDataset(domains["train_a"][:16], domains["train_b"][:16]),
        data_collator=UnpairedImageCollator(16, crop_margin=2),
    )  # fmt: skip
    for network in ("discriminator", "generator"):  # record every step call and the batch entries it got
        original = getattr(trainer.steps, f"{network}_step")

        def spy(batch, _network=network, _original=original, **counters):
            seen.append((_network, sorted(k for k in batch if k.startswith("pixel_values"))))
            return _original(batch, **counters)

        setattr(trainer.steps, f"{network}_step", spy)
    trainer.train()
    assert all(float(r.detach().min()) >= 0.0 and float(r.detach().max()) <= 1.0 for r in rhos)
    assert {m for m, _ in seen} == {"discriminator", "generator"}
    assert all(keys == ["pixel_values_a", "pixel_values_b"] for _, keys in seen)
    # the config's training defaults reached both optimizers: lr 2e-3, betas (0.5, 0.999), weight decay 1e-4
    for optimizer in (trainer.optimizer, trainer.d_optimizer):
        group = optimizer.param_groups[0]
        assert group["betas"] == (0.5, 0.999) and group["weight_decay"] == 1e-4
    logged = [row for row in trainer.state.log_history if "g_cycle_loss" in row]
    assert logged and all(key in logged[0] for key in ("g_cam_loss", "g_identity_loss", "d_quantization_loss"))


@pytest.mark.slow
def test_digits_recipe_learns_the_translation(tmp_path):
    """~60 generator steps of the offline recipe on CPU (about 20 s idle, minutes on a loaded machine)."""
    from hf_dgm.training.gan_run import main

    out = tmp_path / "run"
    results = main([
        "--recipe", str(RECIPE), "--output_dir", str(out), "--max_steps", "60", "--logging_steps", "10",
        "--save_strategy", "no", "--sample_steps", "0", "--lr_decay_second_half", "false", "--eval_kid", "false",
        "--num_translation_images", "6",
    ])  # fmt: skip
    assert results["global_step"] == 60
    log = json.loads((out / "train_log.json").read_text())
    cycle = [row["g_cycle_loss"] for row in log if "g_cycle_loss" in row]
    assert len(cycle) >= 4
    assert np.mean(cycle[-2:]) < np.mean(cycle[:2])
    assert (out / "translations.png").is_file()

    trained = FQUGATITModel.from_pretrained(out).eval()
    torch.manual_seed(0)
    untrained = FQUGATITModel(trained.config).eval()
    domains = digits_two_domains()
    collator = UnpairedImageCollator(16, augment=False)
    test_a = torch.stack([collator.transform(image) for image in domains["test_a"]])
    test_b = torch.stack([collator.transform(image) for image in domains["test_b"]])  # the same digits, B style
    with torch.no_grad():
        translated = trained.translate(test_a, "A2B").images
        baseline = untrained.translate(test_a, "A2B").images
    distance = (translated - test_b).abs().mean().item()
    assert distance < (test_a - test_b).abs().mean().item()  # closer to the B rendering than the input is
    assert distance < (baseline - test_b).abs().mean().item()  # and closer than before training
    # colour statistics: the translations' mean colour approaches domain B's paper-dominated mean colour
    mean_b = test_b.mean(dim=(0, 2, 3))
    assert (translated.mean(dim=(0, 2, 3)) - mean_b).abs().sum() < (test_a.mean(dim=(0, 2, 3)) - mean_b).abs().sum()


class _PairedTranslator(torch.nn.Module):
    """Translates the i-th test digit into the i-th test digit of the other domain (a perfect digit-keeping model)."""

    def __init__(self, targets: dict[str, torch.Tensor]):
        super().__init__()
        self.targets, self.served = targets, {"A2B": 0, "B2A": 0}

    def translate(self, x, direction):
        start = self.served[direction]
        self.served[direction] += x.shape[0]
        return type("Out", (), {"images": self.targets[direction][start : start + x.shape[0]]})


def test_digits_kept_scores_a_perfect_translator_at_the_ceiling_and_an_untrained_one_near_chance():
    from hf_dgm.training.fq_ugatit.gan_run import evaluate_digits_kept, translate_test_sets
    from hf_dgm.training.unpaired_data import digits_two_domains_labels

    domains = digits_two_domains()
    labels = digits_two_domains_labels()
    assert [len(labels[k]) for k in ("labels_train_a", "labels_train_b", "labels_test")] == [
        len(domains["train_a"]), len(domains["train_b"]), len(domains["test_a"])]  # fmt: skip
    collator = UnpairedImageCollator(16, augment=False)
    stack = lambda images: torch.stack([collator.transform(image) for image in images])  # noqa: E731
    perfect = _PairedTranslator({"A2B": stack(domains["test_b"]), "B2A": stack(domains["test_a"])})
    results = evaluate_digits_kept(translate_test_sets(perfect, domains, collator, 50, "cpu"), domains, collator)
    for direction in ("A2B", "B2A"):
        assert results[f"paired_l1_{direction}"] == 0.0
        assert results[f"digits_classifier_real_held_out_{direction}"] > 0.9
        assert results[f"digits_kept_{direction}"] > 0.9  # the classes line up with the test digits
        assert len(results[f"digits_kept_{direction}_per_class"]) == 10
    torch.manual_seed(0)
    translations = translate_test_sets(FQUGATITModel(tiny_config()), domains, collator, 50, "cpu")
    untrained = evaluate_digits_kept(translations, domains, collator)
    for direction in ("A2B", "B2A"):
        assert untrained[f"digits_kept_{direction}"] < 0.4
        assert untrained[f"paired_l1_{direction}"] > 0.1


def test_digits_kept_needs_the_digits():
    from hf_dgm.training.gan_run import parse_args

    family, arguments, training_args, _ = parse_args(
        ["--recipe", str(RECIPE), "--output_dir", "unused", "--dataset", "some/hub-dataset", "--eval_digits_kept", "true"]
    )
    with pytest.raises(ValueError, match="eval_digits_kept needs --dataset sklearn-digits-styles"):
        family.build(arguments, training_args)
