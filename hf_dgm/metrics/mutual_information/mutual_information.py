"""Mutual information I(x; z) between data and latent of a Gaussian-posterior VAE, as He et al. (2019) `calc_mi`.

The math lives in `hf_dgm.metrics.vae_math.mutual_information`.
"""

import datasets
import evaluate
import torch

import hf_dgm.metrics.vae_math as vae_math


_DESCRIPTION = """
I(x; z) = E_x E_{q(z|x)}[log q(z|x)] − E_x E_{q(z|x)}[log q(z)], with q(z) the aggregate posterior of the whole test
set. The first term is analytic; the second scores one sample z_i ~ q(z|x_i) per example against all N test
posteriors (logsumexp − log N), exactly as `calc_mi` of He et al. (2019) used by Optimus.
"""

_KWARGS_DESCRIPTION = """
Args:
    mean (`list` of `list` of `float`): posterior means of every test example (N × L).
    logvar (`list` of `list` of `float`): posterior log-variances (N × L).
    latents (`list` of `list` of `float`, optional, keyword of `compute` only): one sample z_i per example (N × L),
        in the order of the examples; drawn when absent.
    seed (`int`, optional): seed of the draw when `latents` is absent.
Returns:
    mutual_information (`float`, nats), num_examples (`int`).
"""

_CITATION = """
@inproceedings{he2019lagging,
  title={Lagging Inference Networks and Posterior Collapse in Variational Autoencoders},
  author={He, Junxian and Spokoyny, Daniel and Neubig, Graham and Berg-Kirkpatrick, Taylor},
  booktitle={ICLR},
  year={2019}
}
"""

_BASE = {
    "mean": datasets.Sequence(datasets.Value("float64")),
    "logvar": datasets.Sequence(datasets.Value("float64")),
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MutualInformation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(dict(_BASE)),
            reference_urls=["https://github.com/jxhe/vae-lagging-encoder", "https://github.com/ChunyuanLI/Optimus"],
        )

    def _compute(self, mean, logvar, latents=None, seed=None):
        mean_t = torch.tensor(mean, dtype=torch.float64)
        logvar_t = torch.tensor(logvar, dtype=torch.float64)
        latents_t = None if latents is None else torch.tensor(latents, dtype=torch.float64)
        generator = None
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        mi = vae_math.mutual_information(mean_t, logvar_t, latents=latents_t, generator=generator)
        return {"mutual_information": mi, "num_examples": len(mean)}
