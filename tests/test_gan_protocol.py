"""The generic GAN step protocol of `GANTrainer`: FQ-BigGAN's losses are unchanged by it (reference values recorded
with the trainer as it was before the protocol was generalised), and a toy model shaped like U-GAT-IT (two
generators, two discriminators, two-domain batches) trains through it."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_gan_trainer import make_trainer  # noqa: E402

from hf_dgm.training.image_data import load_digits_dataset  # noqa: E402


# (mode, loss) of every model call over 3 G steps (2 D steps each) of the tiny FQ-BigGAN preset, seed 0, batch 8,
# recorded with GANTrainer at commit fd827d8 (before the generic protocol).
FQ_BIGGAN_REFERENCE = [
    ("discriminator", 37.03268814086914),
    ("discriminator", 16.8316650390625),
    ("generator", -9.304332733154297),
    ("discriminator", 11.64448356628418),
    ("discriminator", 2.8590104579925537),
    ("generator", 0.5018202662467957),
    ("discriminator", 3.794598340988159),
    ("discriminator", 3.446978807449341),
    ("generator", -2.856389045715332),
]


def test_fq_biggan_losses_unchanged(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference values were recorded single-threaded (reductions differ across threads)
    try:
        _run_fq_biggan_reference(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _run_fq_biggan_reference(tmp_path):
    from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration

    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset(
        "tiny", discriminator_steps=2, num_classes=10, class_names=[str(i) for i in range(10)]
    )
    model = FQBigGANForImageGeneration(config)
    calls = []
    model.register_forward_hook(
        lambda module, args, kwargs, out: calls.append((kwargs["mode"], out.loss.item())), with_kwargs=True
    )
    trainer = make_trainer(
        tmp_path, model=model, dataset=load_digits_dataset().select(range(64)), max_steps=3, per_device_train_batch_size=8
    )
    trainer.train()
    assert [mode for mode, _ in calls] == [mode for mode, _ in FQ_BIGGAN_REFERENCE]
    for (_, got), (_, want) in zip(calls, FQ_BIGGAN_REFERENCE):
        assert got == pytest.approx(want, abs=1e-6, rel=0)
