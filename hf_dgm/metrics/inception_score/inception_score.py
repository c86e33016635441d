"""Inception Score (IS) as an offline-loadable `evaluate` module.

    inception_score = hf_dgm.metrics.load("inception_score")  # evaluate.load of the packaged folder, any cwd
    inception_score.compute(predictions=generated, feature_extractor="path/to/pt_inception-2015-12-05-6726825d.pth")

The math lives in `hf_dgm.metrics.feature_statistics`, the feature extraction in `hf_dgm.metrics.image_features`;
this file adapts them to `evaluate`'s interface (through `hf_dgm.metrics.evaluate_glue`).
"""

import evaluate
from hf_dgm.metrics.feature_statistics import IS_SPLITS
from hf_dgm.metrics.feature_statistics import RNG_SEED
from hf_dgm.metrics.image_features import compute_inception_score
from hf_dgm.metrics.evaluate_glue import evaluate_feature_extractor
from hf_dgm.metrics.evaluate_glue import image_metric_features
from hf_dgm.metrics.evaluate_glue import inputs_from_evaluate

_CITATION = """\
@inproceedings{salimans2016improved,
  title={Improved Techniques for Training {GAN}s},
  author={Salimans, Tim and Goodfellow, Ian and Zaremba, Wojciech and Cheung, Vicki and Radford, Alec and Chen, Xi},
  booktitle={NeurIPS},
  year={2016}
}
"""

_DESCRIPTION = """\
IS: exp(E_x KL(p(y|x) || p(y))) over the 1008-way classifier of the FID Inception network, computed on 10 splits
(mean and standard deviation over splits) of 50,000 generated samples. Matches torch-fidelity: softmax of the
"unbiased" logits (pool3 @ fc.weight, no bias, as the original OpenAI TF code), rows shuffled with seed 2020
before splitting. Also accepts precomputed class logits or probabilities (N, C), or a user callable returning
class logits; those give a valid score that is NOT comparable to published IS.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated images (N, 3, H, W) as floats in `input_range`, or precomputed logits / probabilities (N, C).
    feature_extractor: path / Hub id of the FID Inception weights, or a callable (B, 3, H, W) in [-1, 1] -> (B, C)
        returning class logits. Not needed for precomputed inputs.
    inputs_are: for 2-D inputs, "logits" (default) or "probabilities".
    splits (int, default 10), shuffle (bool, default True), seed (int, default 2020).
    input_range, batch_size, device, preprocessing: as for FID.
Returns:
    inception_score_mean (float), inception_score_std (float).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class InceptionScore(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=image_metric_features(with_references=False),
            reference_urls=["https://github.com/toshas/torch-fidelity", "https://github.com/openai/improved-gan"],
        )

    def _compute(
        self,
        predictions,
        feature_extractor=None,
        inputs_are="logits",
        input_range="[-1,1]",
        batch_size=64,
        device=None,
        preprocessing="pytorch-fid",
        splits=IS_SPLITS,
        shuffle=True,
        seed=RNG_SEED,
        allow_nonstandard_weights=False,
    ):
        values = inputs_from_evaluate(predictions, input_range)
        extractor, described = evaluate_feature_extractor(
            [values], feature_extractor, preprocessing, allow_nonstandard_weights
        )
        if extractor is None:
            described = f"precomputed {inputs_are}"
        mean, std = compute_inception_score(
            values,
            feature_extractor=extractor,
            inputs_are=inputs_are,
            batch_size=batch_size,
            device=device,
            preprocessing=preprocessing,
            splits=splits,
            shuffle=shuffle,
            seed=seed,
        )
        return {"inception_score_mean": mean, "inception_score_std": std, "feature_extractor": described}
