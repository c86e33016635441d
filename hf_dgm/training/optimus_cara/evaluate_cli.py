"""Optimus-CARA: label accuracy of generated sentences (judged by a classifier trained on real ones, whose own
held-out accuracy is reported beside it), latent classifier accuracy, plain-decoder perplexity, distinct-1/2.

    hf-dgm evaluate optimus_cara runs/optimus-cara-yelp --dataset ../shared/data/yelp \\
        --train_split test --eval_split dev --num_samples_per_label 100 --output cara_metrics.json

`--dataset` is a folder of `<prefix>.<split>.<label>` files (Yelp: `sentiment.dev.0`, ...); the judge is trained on
the `--train_split` files, the held-out figures use `--eval_split`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="folder (or Hub id) of an Optimus-CARA model with its tokenizers")
    parser.add_argument("--dataset", required=True, help="folder of <prefix>.<split>.<label> sentence files")
    parser.add_argument("--prefix", default="sentiment", help="file name prefix (default: sentiment, the Yelp files)")
    parser.add_argument("--train_split", default="test", help="split the judge is trained on (default: test)")
    parser.add_argument("--eval_split", default="dev", help="held-out split (default: dev)")
    parser.add_argument("--max_eval_per_label", type=int, default=1000, help="held-out sentences per label (default 1000)")
    parser.add_argument("--judge_max_train_per_label", type=int, default=None, help="cap the judge's training sentences")
    parser.add_argument("--num_samples_per_label", type=int, default=100, help="generated sentences per label (default 100)")
    parser.add_argument("--max_new_tokens", type=int, default=25, help="decoding cap (default 25)")
    parser.add_argument("--max_length", type=int, default=40, help="max tokens per sentence (default 40)")
    parser.add_argument("--plain_decoder", default="offline",
                        help="plain LM of the fluency PPL: offline (SmolLM2-135M), a folder ('folder::file.gguf'), none")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated latents")
    parser.add_argument("--output", default=None, help="write the metrics JSON here")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hf_dgm.models.optimus_cara import OptimusForLabelConditionalGeneration

    from .data import label_files
    from .run import CaraDataArguments, CaraEvaluationArguments, evaluate_model

    model = OptimusForLabelConditionalGeneration.from_pretrained(args.model).eval()
    if model.processor is None:
        from hf_dgm.models.optimus.processing_optimus import OptimusProcessor

        model.processor = OptimusProcessor.from_pretrained(args.model)
    num_labels = model.config.num_labels
    data_args = CaraDataArguments(
        train_files=label_files(args.dataset, args.train_split, num_labels, args.prefix),
        eval_files=label_files(args.dataset, args.eval_split, num_labels, args.prefix),
        max_eval_per_label=args.max_eval_per_label, max_length=args.max_length,
    )
    eval_args = CaraEvaluationArguments(
        num_samples_per_label=args.num_samples_per_label, max_new_tokens=args.max_new_tokens,
        plain_decoder=args.plain_decoder, judge_max_train_per_label=args.judge_max_train_per_label, eval_seed=args.seed,
    )
    metrics, _ = evaluate_model(model, data_args, eval_args, train_files=data_args.train_files)
    if args.output:
        Path(args.output).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-dgm evaluate optimus_cara", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
