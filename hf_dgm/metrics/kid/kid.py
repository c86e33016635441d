"""Kernel Inception Distance (KID) as an offline-loadable `evaluate` module.

    kid = hf_dgm.metrics.load("kid")  # = evaluate.load of the packaged folder: no network, any cwd
    kid.compute(predictions=generated, references=real, feature_extractor="path/to/pt_inception-2015-12-05-6726825d.pth")

The math lives in `hf_dgm.metrics.feature_statistics`, the feature extraction in `hf_dgm.metrics.image_features`;
this file adapts them to `evaluate`'s interface (through `hf_dgm.metrics.evaluate_glue`).
"""

import evaluate
from hf_dgm.metrics.feature_statistics import KID_NUM_SUBSETS
from hf_dgm.metrics.feature_statistics import KID_SUBSET_SIZE
from hf_dgm.metrics.feature_statistics import RNG_SEED
from hf_dgm.metrics.image_features import compute_kid
from hf_dgm.metrics.evaluate_glue import evaluate_feature_extractor
from hf_dgm.metrics.evaluate_glue import image_metric_features
from hf_dgm.metrics.evaluate_glue import inputs_from_evaluate

_CITATION = """\
@inproceedings{binkowski2018demystifying,
  title={Demystifying {MMD} {GAN}s},
  author={Bi{\\'n}kowski, Miko{\\l}aj and Sutherland, Dougal J. and Arbel, Michael and Gretton, Arthur},
  booktitle={ICLR},
  year={2018}
}
"""

_DESCRIPTION = """\
KID: the unbiased estimate of the squared MMD between Inception pool3 features of generated and real images with
the cubic polynomial kernel k(x, y) = (x·y/d + 1)^3, averaged over random subsets. Standard setting (torch-fidelity,
used by the papers): 100 subsets of 1000 samples each, drawn without replacement with seed 2020; mean and
standard deviation over subsets. Small sets (e.g. image-to-image test sets of a few hundred images) need a
smaller `subset_size`: report it with the number. U-GAT-IT and FQ-GAN report KID x 100.
Feature extractors and preprocessing as for FID (see the `fid` module); only the FID Inception weights give
numbers comparable to published ones.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images (N, 3, H, W) as floats in `input_range`, or precomputed features (N, D).
    references: real images or precomputed features.
    feature_extractor: path / Hub id of the FID Inception weights, or a callable (B, 3, H, W) in [-1, 1] -> (B, D).
    num_subsets (int, default 100), subset_size (int, default 1000), seed (int, default 2020).
    input_range, batch_size, device, preprocessing: as for FID.
Returns:
    kid_mean (float), kid_std (float).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class KID(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=image_metric_features(with_references=True),
            reference_urls=["https://github.com/toshas/torch-fidelity"],
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
        num_subsets=KID_NUM_SUBSETS,
        subset_size=KID_SUBSET_SIZE,
        seed=RNG_SEED,
        allow_nonstandard_weights=False,
    ):
        fake = inputs_from_evaluate(predictions, input_range)
        real = inputs_from_evaluate(references, input_range)
        extractor, described = evaluate_feature_extractor(
            [fake, real], feature_extractor, preprocessing, allow_nonstandard_weights
        )
        mean, std = compute_kid(
            real,
            fake,
            feature_extractor=extractor,
            batch_size=batch_size,
            device=device,
            preprocessing=preprocessing,
            num_subsets=num_subsets,
            subset_size=subset_size,
            seed=seed,
        )
        return {"kid_mean": mean, "kid_std": std, "feature_extractor": described}
