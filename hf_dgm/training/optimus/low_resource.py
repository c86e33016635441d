"""Low-resource classification in the feature-based setting (Optimus, Li et al. 2020, figure 4c).

The backbone is frozen; only a linear classifier is trained, on `n` labelled sentences per class
(`n` in `--labels_per_class`, several seeds each), and scored on a fixed, balanced evaluation set. Three sentence
features are compared through the very same procedure:

- `optimus_latent_mean`: the posterior mean μ(x) of the frozen Optimus (`latent_size` dims);
- `optimus_encoder_pooled`: the pooled feature of Optimus's own (VAE-fine-tuned) encoder, before the posterior
  head. This is what the original `run_glue_vae.py` classifies (the BERT pooler output of the encoder checkpoint
  of an Optimus run; its μ head is not used there);
- `encoder_pooled`: the ORIGINAL pretrained encoder that Optimus was composed from (before any VAE training),
  pooled the way Optimus pools (`config.pooling`: BERT pooler, `[CLS]` state, or the masked mean) — the paper's
  "BERT" row.

The classifier is scikit-learn's `LogisticRegression` (L2, `C` = `--classifier_c`, L-BFGS, `--classifier_max_iter`
iterations), on features standardised with the mean and standard deviation of the unlabelled training pool (the
sentences drawn for every seed, their labels unused), so one `C` suits features of any scale. The original trains
`dropout(0.1) + nn.Linear` on the detached features with AdamW (2e-5, 50 epochs, batch 32); an L2-regularised
logistic regression solved to convergence is the same linear model with a deterministic fit.

Data: a folder of `<name>.<split>.<label>` files, one sentence per line (the Yelp layout of `../shared/data/yelp`:
`sentiment.test.0`, `sentiment.test.1`, ...); a bare name (`yelp`) is looked up in the shared data folder.

    hf-dgm evaluate optimus /work/artifacts/optimus-main-job --task low-resource-classification \\
        --recipe training/recipes/optimus_low_resource_yelp.yaml --output low_resource.json

The training samples are nested: seed `s` draws one random order of each class of the pool, and budget `n` takes
its first `n` sentences, so a larger budget adds sentences to a smaller one.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

FEATURE_LABELS = {
    "optimus_latent_mean": "Optimus: latent mean μ",
    "optimus_encoder_pooled": "Optimus's fine-tuned encoder, pooled",
    "encoder_pooled": "original encoder, pooled",
}


@dataclass
class LowResourceArguments:
    """Settings of the low-resource classification (the recipe's keys; command-line flags override them)."""

    dataset: str | None = field(default=None, metadata={
        "help": "folder of <name>.<split>.<label> files, or a folder name in the shared data (yelp)"})
    train_split: str = field(default="test", metadata={"help": "split that is the pool of labelled training sentences"})
    eval_split: str = field(default="dev", metadata={"help": "split the evaluation sentences come from"})
    labels_per_class: list[int] = field(default_factory=lambda: [1, 10, 100, 1000], metadata={"help": "label budgets per class"})
    num_seeds: int = field(default=5, metadata={"help": "training samples (seeds --seed ... --seed + num_seeds - 1) per budget"})
    eval_examples: int = field(default=2000, metadata={"help": "evaluation sentences, balanced over the classes"})
    encoder: str | None = field(default=None, metadata={
        "help": "the original pretrained encoder Optimus was composed from (default: read from the model folder's "
                "recipe.yaml / metrics.json; the offline all-MiniLM-L6-v2 for the main job)"})
    classifier_c: float = field(default=1.0, metadata={"help": "inverse L2 strength C of the logistic regression"})
    classifier_max_iter: int = field(default=1000, metadata={"help": "L-BFGS iterations of the logistic regression"})
    batch_size: int = field(default=64, metadata={"help": "sentences per encoder forward pass"})
    max_length: int = field(default=64, metadata={"help": "max encoder tokens per sentence"})
    plot: str | None = field(default=None, metadata={
        "help": "PNG of accuracy against labels per class (default: next to --output, else ./low_resource_accuracy.png)"})
    feature_cache: str | None = field(default=None, metadata={
        "help": "folder caching the original encoder's features (shared by every model composed from it)"})


@dataclass
class LabelledSentences:
    """Sentences with integer labels `(num_sentences,)`; `label_names[i]` is the file suffix of label `i`."""

    sentences: list[str]
    labels: np.ndarray
    label_names: list[str]


# ---------------------------------------------------------------------------------------------------- data


def resolve_dataset(dataset: str) -> Path:
    """A folder path, or the name of a folder in the shared data (`yelp` -> `../shared/data/yelp`)."""
    path = Path(dataset)
    if path.is_dir():
        return path
    from .data import shared_data_dir

    shared = shared_data_dir()
    if shared is not None and not path.is_absolute() and (shared / dataset).is_dir():
        return shared / dataset
    raise ValueError(f"--dataset {dataset}: no such folder (nor a folder of that name in the shared data)")


def read_labelled_sentences(folder: str | os.PathLike, split: str) -> LabelledSentences:
    """Read `<name>.<split>.<label>` files (one sentence per line; blank lines skipped); labels sorted by suffix."""
    folder = resolve_dataset(str(folder))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.split(".")[-2:-1] == [split])
    if len(files) < 2:
        raise ValueError(f"{folder}: need files <name>.{split}.<label> for at least 2 labels; found {[p.name for p in files]}")
    names = [p.name.rsplit(".", 1)[1] for p in files]
    sentences: list[str] = []
    labels: list[int] = []
    for index, path in enumerate(files):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            raise ValueError(f"{path} holds no sentences")
        sentences += lines
        labels += [index] * len(lines)
    return LabelledSentences(sentences, np.asarray(labels, dtype=np.int64), names)


def class_orders(labels: np.ndarray, seed: int, count: int) -> list[np.ndarray]:
    """Per class, `count` indices of `labels` in a random order drawn from `seed` (a class with fewer members than
    `count` is a `ValueError`). Budget `n` uses the first `n` of each order: the samples are nested."""
    rng = np.random.default_rng(seed)
    orders = []
    for label in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == label)
        if len(members) < count:
            raise ValueError(f"class {label} has {len(members)} sentences; {count} per class were asked for")
        orders.append(rng.permutation(members)[:count])
    return orders


def balanced_eval_indices(labels: np.ndarray, total: int, seed: int) -> np.ndarray:
    """`total // num_classes` random indices of each class (drawn from `seed`), sorted."""
    num_classes = int(labels.max()) + 1
    if total < num_classes:
        raise ValueError(f"--eval_examples {total} is fewer than the {num_classes} classes")
    orders = class_orders(labels, seed, total // num_classes)
    return np.sort(np.concatenate(orders))


# ---------------------------------------------------------------------------------------------------- features


def pool_hidden_states(outputs: Any, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """A sentence feature `(batch, hidden)` from encoder outputs, as `OptimusForConditionalGeneration.encode` pools:
    `pooler` (the BERT pooler output), `cls` (the first token's state) or `mean` (masked mean of the last states)."""
    if pooling == "pooler":
        if getattr(outputs, "pooler_output", None) is None:
            raise ValueError("pooling='pooler' but the encoder returned no pooler_output")
        return outputs.pooler_output
    hidden = outputs.last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; expected pooler, cls or mean")
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


@torch.no_grad()
def batched_features(
    forward: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    tokenizer: Any,
    sentences: Sequence[str],
    batch_size: int = 64,
    max_length: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "features",
) -> dict[str, np.ndarray]:
    """Run `forward(encoder inputs) -> {name: (batch, dim)}` over `sentences` in batches of similar length (less
    padding); returns `{name: (num_sentences, dim)}` float32 arrays in the order of `sentences`."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    chunks: dict[str, list[np.ndarray]] = {}
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress):
        batch = [sentences[i] for i in order[start : start + batch_size]]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        for name, value in forward(inputs).items():
            chunks.setdefault(name, []).append(value.float().cpu().numpy())
    inverse = np.argsort(np.asarray(order))
    return {name: np.concatenate(parts)[inverse] for name, parts in chunks.items()}


def optimus_forward(model: Any) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """`batched_features` callback of a frozen Optimus: its posterior mean μ and its encoder's pooled feature."""

    def forward(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = model.encode(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))
        return {"optimus_latent_mean": out.mean, "optimus_encoder_pooled": out.pooled}

    return forward


def encoder_forward(encoder: Any, pooling: str) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """`batched_features` callback of a pretrained encoder (`AutoModel`), pooled by `pooling`."""

    def forward(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"encoder_pooled": pool_hidden_states(encoder(**inputs), inputs["attention_mask"], pooling)}

    return forward


# ---------------------------------------------------------------------------------------------------- classifier


def fit_and_score(
    train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray,
    classifier_c: float = 1.0, max_iter: int = 1000,
) -> float:
    """Accuracy on `(eval_x, eval_y)` of an L2 logistic regression (L-BFGS) fit on `(train_x, train_y)`; features
    `(n, dim)` are expected standardised already (see `classification_curves`)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=classifier_c, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(train_x, train_y)
    return float((classifier.predict(eval_x) == eval_y).mean())


def standardizer(pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation `(dim,)` of `pool` `(num_sentences, dim)`; a feature (almost) constant over the
    pool (std under 1e-6 of the largest) keeps the divisor 1, so float noise in it is not blown up."""
    if pool.ndim != 2 or len(pool) < 1:
        raise ValueError(f"features must be (num_sentences >= 1, dim); got {pool.shape}")
    mean, std = pool.mean(0), pool.std(0)
    floor = 1e-6 * max(float(std.max()), 1e-12)
    return mean, np.where(std > floor, std, 1.0)


def classification_curves(
    train_features: dict[str, np.ndarray],
    train_labels: np.ndarray,
    eval_features: dict[str, np.ndarray],
    eval_labels: np.ndarray,
    orders: dict[int, list[np.ndarray]],
    labels_per_class: Sequence[int],
    classifier_c: float = 1.0,
    max_iter: int = 1000,
) -> dict[str, dict[int, list[float]]]:
    """
    Accuracy per feature, budget and seed. `train_features[name]` is `(pool, dim)` over a pool of unlabelled
    sentences (`train_labels` `(pool,)`), `eval_features[name]` `(num_eval, dim)`; `orders[seed]` holds one index
    order per class into the pool (`class_orders`), of which budget `n` trains on the first `n` per class. Every
    feature is standardised with its pool's mean and standard deviation (no labels used).
    Returns `{name: {n: [accuracy per seed, in the order of orders]}}`.
    """
    if set(train_features) != set(eval_features):
        raise ValueError("train_features and eval_features must name the same features")
    results: dict[str, dict[int, list[float]]] = {}
    for name, pool in train_features.items():
        mean, std = standardizer(pool)
        pool_std, eval_std = (pool - mean) / std, (eval_features[name] - mean) / std
        results[name] = {}
        for n in labels_per_class:
            scores = []
            for per_class in orders.values():
                if any(len(order) < n for order in per_class):
                    raise ValueError(f"the class orders hold fewer than {n} sentences per class")
                picked = np.concatenate([order[:n] for order in per_class])
                scores.append(fit_and_score(pool_std[picked], train_labels[picked], eval_std, eval_labels, classifier_c, max_iter))
            results[name][int(n)] = scores
    return results


def summarize(results: dict[str, dict[int, list[float]]]) -> dict[str, float]:
    """Flat metrics: `acc_n{n}_{feature}` (mean over seeds) and `acc_n{n}_{feature}_std` (population std)."""
    flat: dict[str, float] = {}
    for name, per_budget in results.items():
        for n, scores in per_budget.items():
            flat[f"acc_n{n}_{name}"] = float(np.mean(scores))
            flat[f"acc_n{n}_{name}_std"] = float(np.std(scores))
    return flat


def plot_accuracy_curves(
    results: dict[str, dict[int, list[float]]], path: str | os.PathLike, title: str = "", labels: dict[str, str] | None = None,
) -> Path:
    """Accuracy (mean ± std over seeds) against labels per class (log axis), one curve per feature, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {**FEATURE_LABELS, **(labels or {})}
    styles = {"optimus_latent_mean": ("C0", "o", "-"), "encoder_pooled": ("C3", "s", "-"), "optimus_encoder_pooled": ("C2", "^", "--")}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, per_budget in results.items():
        budgets = sorted(per_budget)
        means = [np.mean(per_budget[n]) for n in budgets]
        stds = [np.std(per_budget[n]) for n in budgets]
        color, marker, line = styles.get(name, (None, "o", "-"))
        ax.errorbar(budgets, means, yerr=stds, label=labels.get(name, name), color=color, marker=marker,
                    linestyle=line, capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("labelled sentences per class")
    ax.set_ylabel("accuracy (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `--task low-resource-classification` (an argument group of `hf-dgm evaluate optimus`). They
    default to None: a flag given wins over the `--recipe` key of the same name, which wins over the defaults of
    [`LowResourceArguments`]. `--dataset`, `--seed`, `--device`, `--output` and `--quiet` are the evaluator's own."""
    group = parser.add_argument_group(
        "low-resource classification (--task low-resource-classification)",
        "frozen model, linear classifier on n labelled sentences per class; see hf_dgm.training.optimus.low_resource",
    )
    group.add_argument("--recipe", default=None,
                       help="YAML/JSON recipe of these settings (e.g. training/recipes/optimus_low_resource_yelp.yaml)")
    for item in dataclasses.fields(LowResourceArguments):
        if item.name in ("dataset", "batch_size", "max_length"):
            continue  # the evaluator's own flags
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        shown = "" if default is None else f" (default: {' '.join(map(str, default)) if isinstance(default, list) else default})"
        kwargs: dict[str, Any] = {"default": None, "help": f"{item.metadata.get('help')}{shown}"}
        if item.name == "labels_per_class":
            kwargs.update(type=int, nargs="+")
        elif item.type in ("int", "float"):
            kwargs["type"] = int if item.type == "int" else float
        group.add_argument(f"--{item.name}", **kwargs)


def resolve_arguments(args: argparse.Namespace) -> LowResourceArguments:
    """Merge command line > recipe > defaults into [`LowResourceArguments`]; an unknown recipe key is a `ValueError`."""
    recipe: dict[str, Any] = {}
    if getattr(args, "recipe", None):
        from hf_dgm.training.recipes import load_recipe

        recipe = load_recipe(args.recipe)
        known = {item.name for item in dataclasses.fields(LowResourceArguments)}
        unknown = sorted(set(recipe) - known)
        if unknown:
            raise ValueError(f"recipe {args.recipe}: unknown key(s) {unknown}; known: {sorted(known)}")
    values = {}
    for item in dataclasses.fields(LowResourceArguments):
        given = getattr(args, item.name, None)
        if given is not None:
            values[item.name] = given
        elif item.name in recipe:
            values[item.name] = recipe[item.name]
    settings = LowResourceArguments(**values)
    check_settings(settings)
    return settings


def check_settings(settings: LowResourceArguments) -> None:
    """`ValueError` for settings no run can use."""
    if not settings.dataset:
        raise ValueError("--dataset is required (a folder of <name>.<split>.<label> files, e.g. ../shared/data/yelp)")
    budgets = settings.labels_per_class
    if not budgets or any(not isinstance(n, int) or n < 1 for n in budgets):
        raise ValueError(f"labels_per_class must be positive integers; got {budgets}")
    for name in ("num_seeds", "eval_examples", "batch_size", "classifier_max_iter"):
        if int(getattr(settings, name)) < 1:
            raise ValueError(f"{name} must be >= 1; got {getattr(settings, name)}")
    if settings.max_length < 3:
        raise ValueError(f"max_length must be >= 3; got {settings.max_length}")
    if not settings.classifier_c > 0:
        raise ValueError(f"classifier_c must be > 0; got {settings.classifier_c}")


# ---------------------------------------------------------------------------------------------------- the run


def default_encoder(model_dir: str | os.PathLike) -> str:
    """The original pretrained encoder of an Optimus run folder: the `encoder` its `recipe.yaml` names when that is a
    folder, else the offline all-MiniLM-L6-v2 when the run composed it (`offline_parts: true`, or its recorded
    encoder / `base_model` is `sentence-transformers/all-MiniLM-L6-v2`). `ValueError` when the folder says neither."""
    import json

    import yaml

    from ..offline_assets import MINILM_HUB_ID, minilm_path

    folder = Path(model_dir)
    recipe = {}
    if (folder / "recipe.yaml").is_file():
        recipe = (yaml.safe_load((folder / "recipe.yaml").read_text(encoding="utf-8")) or {}).get("model") or {}
    named = recipe.get("encoder")
    if named and Path(named).is_dir():
        return str(named)
    recorded = set()
    for name, key in (("metrics.json", "encoder"), ("run_metadata.json", "base_model")):
        if (folder / name).is_file():
            value = json.loads((folder / name).read_text(encoding="utf-8")).get(key)
            recorded.update(value if isinstance(value, list) else [value])
    if recipe.get("offline_parts") or MINILM_HUB_ID in recorded or named == MINILM_HUB_ID:
        try:
            return str(minilm_path())
        except FileNotFoundError as err:
            raise ValueError(f"{folder} was composed from all-MiniLM-L6-v2, which is not installed ({err})") from None
    raise ValueError(f"{folder} does not say which pretrained encoder it was composed from: pass --encoder FOLDER")


@dataclass
class PreparedData:
    """The sentences a run encodes. `pool` holds the training sentences any seed draws (labels `(pool,)`), `orders`
    maps each seed to one index order per class into `pool`; `evaluation` is the balanced evaluation set."""

    pool: LabelledSentences
    orders: dict[int, list[np.ndarray]]
    evaluation: LabelledSentences


def _subset(data: LabelledSentences, index: np.ndarray) -> LabelledSentences:
    return LabelledSentences([data.sentences[i] for i in index], data.labels[index], data.label_names)


def prepare_data(settings: LowResourceArguments, base_seed: int = 0) -> PreparedData:
    """Read the splits and draw, for seeds `base_seed ... base_seed + num_seeds - 1`, `max(labels_per_class)`
    training sentences per class (the smaller budgets are their prefixes) and a balanced evaluation set (drawn from
    `base_seed + 10000`, the same for every seed)."""
    pool = read_labelled_sentences(settings.dataset, settings.train_split)
    evaluation = read_labelled_sentences(settings.dataset, settings.eval_split)
    if evaluation.label_names != pool.label_names:
        raise ValueError(f"labels differ between splits: {pool.label_names} vs {evaluation.label_names}")
    seeds = [base_seed + i for i in range(int(settings.num_seeds))]
    orders = {seed: class_orders(pool.labels, seed, max(settings.labels_per_class)) for seed in seeds}
    used = np.unique(np.concatenate([np.concatenate(per_class) for per_class in orders.values()]))
    position = np.full(len(pool.labels), -1, dtype=np.int64)
    position[used] = np.arange(len(used))
    orders = {seed: [position[order] for order in per_class] for seed, per_class in orders.items()}
    eval_index = balanced_eval_indices(evaluation.labels, settings.eval_examples, base_seed + 10_000)
    return PreparedData(_subset(pool, used), orders, _subset(evaluation, eval_index))


def encoder_features(
    encoder_path: str, pooling: str, sentences: Sequence[str], settings: LowResourceArguments,
    device: str = "cpu", progress: bool = False, desc: str = "",
) -> np.ndarray:
    """The original encoder's pooled features `(num_sentences, hidden)`. With `settings.feature_cache`, they are read
    from / written to `<cache>/encoder-<sha256>.safetensors`, keyed by the encoder folder, pooling, max length and
    sentences (the same for every model composed from that encoder, so a second model's run skips them)."""
    import hashlib
    import json

    from safetensors.numpy import load_file, save_file
    from transformers import AutoModel, AutoTokenizer

    key = json.dumps([str(Path(encoder_path).resolve()), pooling, settings.max_length, list(sentences)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache = Path(settings.feature_cache) / f"encoder-{digest}.safetensors" if settings.feature_cache else None
    if cache is not None and cache.is_file():
        return load_file(str(cache))["features"]
    encoder = AutoModel.from_pretrained(encoder_path).to(device).eval()
    features = batched_features(
        encoder_forward(encoder, pooling), AutoTokenizer.from_pretrained(encoder_path), sentences,
        batch_size=settings.batch_size, max_length=settings.max_length, device=device, progress=progress, desc=f"encoder {desc}",
    )["encoder_pooled"]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": np.ascontiguousarray(features)}, str(cache))
    return features


def feature_table(
    model: Any, tokenizer: Any, encoder_path: str, sentences: Sequence[str], settings: LowResourceArguments,
    device: str, progress: bool, desc: str,
) -> dict[str, np.ndarray]:
    """The three features of `sentences`: `optimus_latent_mean`, `optimus_encoder_pooled`, `encoder_pooled`."""
    features = batched_features(
        optimus_forward(model), tokenizer, sentences, batch_size=settings.batch_size, max_length=settings.max_length,
        device=device, progress=progress, desc=f"Optimus {desc}",
    )
    features["encoder_pooled"] = encoder_features(encoder_path, model.config.pooling, sentences, settings, device, progress, desc)
    return features


def run(args: argparse.Namespace) -> dict[str, Any]:
    """`hf-dgm evaluate optimus MODEL --task low-resource-classification ...`: the accuracy table and the plot."""
    import time

    import hf_dgm  # noqa: F401  (registers the Auto classes)
    from hf_dgm.models.optimus import OptimusForConditionalGeneration, OptimusProcessor

    started = time.perf_counter()
    settings = resolve_arguments(args)
    encoder_path = settings.encoder or default_encoder(args.model)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = prepare_data(settings, int(args.seed))
    model = OptimusForConditionalGeneration.from_pretrained(args.model).to(device).eval()
    tokenizer = (getattr(model, "processor", None) or OptimusProcessor.from_pretrained(args.model)).tokenizer
    progress = not getattr(args, "quiet", False)
    train_features = feature_table(model, tokenizer, encoder_path, data.pool.sentences, settings, device, progress,
                                   f"{settings.train_split} pool")
    eval_features = feature_table(model, tokenizer, encoder_path, data.evaluation.sentences, settings, device, progress,
                                  settings.eval_split)
    results = classification_curves(
        train_features, data.pool.labels, eval_features, data.evaluation.labels, data.orders,
        settings.labels_per_class, settings.classifier_c, settings.classifier_max_iter,
    )
    plot = settings.plot or (str(Path(args.output).with_suffix(".png")) if getattr(args, "output", None) else "low_resource_accuracy.png")
    title = (f"{Path(str(args.model)).name} on {Path(str(settings.dataset)).name}: {len(data.evaluation.labels)} "
             f"{settings.eval_split} sentences, {len(data.orders)} seeds")
    plot_accuracy_curves(results, plot, title=title)
    print(f"[low-resource] plot written to {plot}", flush=True)
    return {
        "model": str(args.model), "task": "low-resource-classification", "dataset": str(resolve_dataset(settings.dataset)),
        "encoder": encoder_path, "pooling": model.config.pooling, "train_split": settings.train_split,
        "eval_split": settings.eval_split, "label_names": data.pool.label_names, "eval_examples": len(data.evaluation.labels),
        "training_pool_encoded": len(data.pool.labels), "seeds": list(data.orders), "labels_per_class": list(settings.labels_per_class),
        "feature_dims": {name: int(value.shape[1]) for name, value in train_features.items()},
        "classifier": f"LogisticRegression(C={settings.classifier_c}, penalty=l2, solver=lbfgs, max_iter={settings.classifier_max_iter}) "
                      "on features standardised with the unlabelled training pool's mean/std",
        **summarize(results), "accuracy": {name: {str(n): s for n, s in v.items()} for name, v in results.items()},
        "plot": str(plot), "wall_clock_seconds": round(time.perf_counter() - started, 1),
    }
