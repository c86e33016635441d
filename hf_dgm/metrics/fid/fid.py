"""Fréchet Inception Distance (FID) as an offline-loadable `evaluate` module.

    fid = hf_dgm.metrics.load("fid")     # = evaluate.load of the packaged folder: no network, any cwd
    fid.compute(predictions=generated, references=real, feature_extractor="path/to/pt_inception-2015-12-05-6726825d.pth")

The math lives in `hf_dgm.metrics.feature_statistics` and the feature extraction in `hf_dgm.metrics.image_features`
(one implementation for the whole project); this file only adapts them to `evaluate`'s interface.
"""

import evaluate
import numpy as np
from hf_dgm.metrics.inception_weights import FID_WEIGHTS_FILENAME
from hf_dgm.metrics.image_features import compute_fid
from hf_dgm.metrics.evaluate_glue import evaluate_feature_extractor
from hf_dgm.metrics.evaluate_glue import image_metric_features
from hf_dgm.metrics.evaluate_glue import inputs_from_evaluate

_CITATION = """\
@inproceedings{heusel2017gans,
  title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium},
  author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and Hochreiter, Sepp},
  booktitle={NeurIPS},
  year={2017}
}
"""

_DESCRIPTION = f"""\
FID: the Fréchet distance between Gaussians fitted to Inception pool3 features (2048-d) of generated and real
images. Numbers comparable to published ones need the standard FID Inception weights (`{FID_WEIGHTS_FILENAME}`,
the PyTorch port used by pytorch-fid and torch-fidelity; pass its local path or a Hub id as `feature_extractor`),
50,000 generated samples and the reference set's full statistics (CIFAR-10: the 50,000 training images).
Matches pytorch-fid's computation: float64 mean and unbiased covariance, Tr((sigma1 sigma2)^{{1/2}}) as the sum of
the square roots of the eigenvalues of sigma1 sigma2 (equal, to round-off, to the trace of pytorch-fid's
`scipy.linalg.sqrtm`; no sqrtm is called), an eps=1e-6 diagonal offset when the covariance product is singular.
The weights file's SHA-256 is checked (it must start with the `6726825d` of its name); other weights need
`allow_nonstandard_weights=True`, and the output's `feature_extractor` says which features were measured.
Preprocessing: 8-bit quantization, then
`preprocessing="pytorch-fid"` (bilinear `F.interpolate` to 299, default) or `"torch-fidelity"` (TF1 legacy
bilinear). Features from any other extractor (a callable, or precomputed features) give a valid Fréchet distance
that is NOT comparable to published FID.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images (N, 3, H, W) as floats in `input_range`, or precomputed features (N, D).
    references: real images or precomputed features, same kind as `predictions`.
    feature_extractor: path / Hub id of the FID Inception weights, or a callable (B, 3, H, W) in [-1, 1] -> (B, D).
        Not needed for precomputed features.
    input_range: value range of float images: "[-1,1]" (default), "[0,1]" or "[0,255]".
    batch_size (int, default 64), device (default: the extractor's device or CPU).
    preprocessing: "pytorch-fid" (default) or "torch-fidelity" (only for the FID Inception weights).
    eps (float, default 1e-6): diagonal offset used when the covariance product is singular.
    allow_nonstandard_weights (bool, default False): load a weights file that is not the standard FID Inception
        file (hash mismatch); recorded in the output.
Returns:
    fid (float): the Fréchet distance (lower is better).
    feature_extractor (str): the features measured in: standard FID Inception weights (with their hash), the
        NON-STANDARD weights allowed by `allow_nonstandard_weights`, a custom extractor, or precomputed features.
Examples:
    >>> import numpy as np, hf_dgm.metrics
    >>> fid = hf_dgm.metrics.load("fid")
    >>> rng = np.random.default_rng(0)
    >>> out = fid.compute(predictions=rng.normal(size=(500, 8)), references=rng.normal(size=(500, 8)))
    >>> round(out["fid"], 1)
    0.1
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FID(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=image_metric_features(with_references=True),
            reference_urls=["https://github.com/mseitzer/pytorch-fid", "https://github.com/toshas/torch-fidelity"],
        )

    def _compute(
        self,
        predictions,
        references,
        feature_extractor=None,
        input_range="[-1,1]",
        batch_size=64,
        device=None,
        preprocessing="pytorch-fid",
        eps=1e-6,
        allow_nonstandard_weights=False,
    ):
        fake = inputs_from_evaluate(predictions, input_range)
        real = inputs_from_evaluate(references, input_range)
        extractor, described = evaluate_feature_extractor(
            [fake, real], feature_extractor, preprocessing, allow_nonstandard_weights
        )
        value = compute_fid(
            real,
            fake,
            feature_extractor=extractor,
            batch_size=batch_size,
            device=device,
            preprocessing=preprocessing,
            eps=eps,
        )
        return {"fid": float(np.float64(value)), "feature_extractor": described}
