"""Reconstruction BLEU: corpus BLEU (sacrebleu) of a sentence VAE's reconstructions against its inputs."""

import datasets
import evaluate
import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a


_DESCRIPTION = """
Corpus BLEU (sacrebleu, default 13a tokenization, exponential smoothing off unless asked) of reconstructed
sentences against the sentences that were encoded: one reference per prediction. 100 means every reconstruction
is identical to its input. Not in the Optimus paper (which has dialog BLEU only); a standard autoencoding check.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): reconstructions.
    references (`list` of `str`): the encoded inputs, one per prediction.
    lowercase (`bool`, defaults to False), tokenize (`str`, defaults to "13a"), smooth_method (`str`, defaults to "exp").
Returns:
    bleu (`float`, 0-100), precisions (`list` of 4 floats), brevity_penalty, sys_len, ref_len, exact_match (fraction of
    predictions whose 13a tokens equal their reference's, i.e. identical up to detokenization spacing).
"""

_CITATION = """
@inproceedings{post-2018-call,
  title={A Call for Clarity in Reporting {BLEU} Scores},
  author={Post, Matt},
  booktitle={Proceedings of the Third Conference on Machine Translation},
  year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReconstructionBleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, lowercase=False, tokenize="13a", smooth_method="exp"):
        if len(predictions) == 0:
            raise ValueError("reconstruction_bleu needs at least one prediction")
        result = sacrebleu.corpus_bleu(
            predictions, [references], lowercase=lowercase, tokenize=tokenize, smooth_method=smooth_method
        )
        tok = Tokenizer13a()
        exact = sum(tok(p).split() == tok(r).split() for p, r in zip(predictions, references)) / len(predictions)
        return {
            "bleu": float(result.score),
            "precisions": [float(p) for p in result.precisions],
            "brevity_penalty": float(result.bp),
            "sys_len": int(result.sys_len),
            "ref_len": int(result.ref_len),
            "exact_match": float(exact),
        }
