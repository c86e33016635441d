"""Active units of a VAE's latent space (Burda et al. 2016; Optimus `calc_au`).

The math lives in `hf_dgm.metrics.vae_math.active_units`.
"""

import datasets
import evaluate
import torch

import hf_dgm.metrics.vae_math as vae_math


_DESCRIPTION = """
A latent dimension d is active when the variance over the test set of its posterior mean, Var_x(E_{q(z|x)}[z_d]),
is at least a threshold δ (0.01 in the papers). The variance is the unbiased one (divided by N − 1) as the original.
"""

_KWARGS_DESCRIPTION = """
Args:
    mean (`list` of `list` of `float`): posterior means of every test example (N × L, N ≥ 2).
    threshold (`float`, defaults to 0.01): δ.
Returns:
    active_units (`int`), latent_size (`int`), variances (`list` of `float`, one per dimension).
"""

_CITATION = """
@inproceedings{burda2016importance,
  title={Importance Weighted Autoencoders},
  author={Burda, Yuri and Grosse, Roger and Salakhutdinov, Ruslan},
  booktitle={ICLR},
  year={2016}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ActiveUnits(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"mean": datasets.Sequence(datasets.Value("float64"))}),
            reference_urls=["https://arxiv.org/abs/1509.00519"],
        )

    def _compute(self, mean, threshold=vae_math.DEFAULT_AU_THRESHOLD):
        means = torch.tensor(mean, dtype=torch.float64)
        count, variances = vae_math.active_units(means, threshold=float(threshold))
        return {"active_units": count, "latent_size": int(means.shape[1]), "variances": variances.tolist()}
