"""`posterior_init="pca"` (hf_dgm/training/optimus/latent_init.py): the posterior mean rows become the whitened
principal components of the encoder's pooled features, so μ starts centred, decorrelated and with unit variance across
the sentences it was fitted on."""

from __future__ import annotations

import pytest
import torch

from hf_dgm import OptimusConfig, OptimusForConditionalGeneration
from hf_dgm.training.optimus.latent_init import initialize_posterior_from_pca, pooled_features
from optimus_tiny import SENTENCES, bert_config, build_parts, gpt2_config


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    enc_dir, dec_dir = build_parts(tmp_path_factory.mktemp("parts"), "gpt2")
    torch.manual_seed(0)
    return OptimusForConditionalGeneration.from_encoder_decoder_pretrained(
        str(enc_dir), str(dec_dir), latent_size=4, latent_injection="prefix", pooling="mean"
    )


def test_pca_init_whitens_the_posterior_means(model):
    batch = model.processor(SENTENCES)
    features = pooled_features(model, batch["input_ids"], batch["attention_mask"], batch_size=3)
    assert features.shape == (len(SENTENCES), model.config.encoder.hidden_size)
    logvar_rows = model.posterior.weight[4:].detach().clone()
    stats = initialize_posterior_from_pca(model, features)
    assert stats["num_sentences"] == len(SENTENCES) and 0 < stats["explained_variance"] <= 1
    model.eval()
    with torch.no_grad():
        mean = model.encode(batch["input_ids"], batch["attention_mask"]).mean.double()
    # centred, unit variance, uncorrelated over the fitting sentences (fp32 head: 1e-4 of slack)
    torch.testing.assert_close(mean.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(mean.T), torch.eye(4, dtype=torch.float64), atol=1e-4, rtol=0)
    assert torch.equal(model.posterior.weight[4:], logvar_rows)  # the log-variance rows are untouched
    # the first direction keeps at least as much of the features' variance as any other unit direction
    direction = model.posterior.weight[0].double()
    centred = features.double() - features.double().mean(0)
    first = (centred @ (direction / direction.norm())).var()
    for other in torch.randn(16, features.shape[1], dtype=torch.float64):
        assert first >= (centred @ (other / other.norm())).var() - 1e-9


def test_pca_init_refuses_what_it_cannot_do(model):
    with pytest.raises(ValueError, match="number of sentences"):
        initialize_posterior_from_pca(model, torch.randn(4, model.config.encoder.hidden_size))
    with pytest.raises(ValueError, match="shape"):
        initialize_posterior_from_pca(model, torch.randn(20, 7))
    torch.manual_seed(0)
    bias_free = OptimusForConditionalGeneration(
        OptimusConfig(encoder=bert_config(40), decoder=gpt2_config(40), latent_size=4, posterior_logvar_bias=None)
    )
    with pytest.raises(ValueError, match="bias"):
        initialize_posterior_from_pca(bias_free, torch.randn(20, 32))


def test_trainer_argument_is_validated():
    from hf_dgm.training.optimus.trainer import OptimusTrainingArguments

    with pytest.raises(ValueError, match="posterior_init"):
        OptimusTrainingArguments(output_dir="unused", posterior_init="svd", use_cpu=True, report_to="none")


def test_run_initializes_from_the_first_training_sentences(model):
    """The training run's `posterior_init="pca"` step: the first `posterior_init_sentences` training rows, then the
    means over exactly those rows are whitened."""
    from datasets import Dataset

    from hf_dgm.training.optimus.run import _pca_posterior_init

    rows = Dataset.from_dict({"text": [s + " " for s in SENTENCES] + ["the dog is big ."] * 4})
    _pca_posterior_init(model, model.processor, rows, max_length=16, max_sentences=len(SENTENCES))
    batch = model.processor(SENTENCES)
    model.eval()
    with torch.no_grad():
        mean = model.encode(batch["input_ids"], batch["attention_mask"]).mean.double()
    torch.testing.assert_close(torch.cov(mean.T), torch.eye(4, dtype=torch.float64), atol=1e-4, rtol=0)
