"""Family-agnostic GAN runs: recipe -> arguments -> the family's model, data and collator -> `GANTrainer` -> a run
folder. `training/train_gan.py` is a thin entry point over [`main`].

    accelerate launch training/train_gan.py --recipe training/recipes/fq_biggan_cifar10.yaml --output_dir runs/x

**Recipes** are read by the shared loader `hf_dgm.training.recipes` (YAML/JSON; flags given on the command line
override it; unknown keys or flags are an error that names them; mapping values such as
`config_overrides: {fq_commitment: 2.0}` stay mappings). Its `model_type` key (or `--model_type`) selects the
family; recipes without it are FQ-BigGAN recipes (`fq_biggan`).

**Families.** `model_type="<name>"` loads the module named by the family's registry entry (`FamilySpec.trainer`,
e.g. `hf_dgm.training.fq_biggan.gan_run`), which provides:

- `ARGUMENT_CLASSES`: a tuple of dataclasses holding the family's own flags (model, data, evaluation), parsed with
  `GANTrainingArguments` by one `HfArgumentParser`;
- `build(arguments, training_args) -> GANRunSetup`: `arguments` maps each class name of `ARGUMENT_CLASSES` to its
  parsed instance; returns the model (following the protocol of `hf_dgm.training.gan_trainer`), the training
  dataset, the data collator, `run_metadata` (written to `run_metadata.json`) and a one-line `description` for
  the log;
- optionally `evaluate(setup, arguments, training_args) -> dict`: metrics after training (written to
  `eval_results.json` and returned), or an empty dict to skip;
- `main(argv) -> int` calling [`main`] with `--model_type <name>`: the family's `trainer` entry in its registry
  `FamilySpec`, so that `hf-dgm train <name> --recipe FILE` runs it.

Adding a GAN family to `train_gan.py` is that module, named by its `FamilySpec.trainer`, and its training steps
(`FamilySpec.gan_steps`, a `hf_dgm.modules.gan_protocol.GANSteps`, which `GANTrainer` builds for the model); nothing
here changes.

**Run folder** (`--output_dir`): checkpoints (`checkpoint-N/`, resumable with `--resume_from_checkpoint`), the
final model (safetensors + config.json; no pickled `training_args.bin`: run folders stay pickle-free for the Hub
publisher), and through `hf_dgm.training.run_folder`: `training_args.json`, `run_metadata.json`, `recipe.yaml`,
`metrics.json` (no model card: the publisher renders it); plus sample grids (`samples/step_*.png`, `samples/final.png`)
when the model draws them, `losses.png`, `train_log.json` and, when evaluated, `eval_results.json`.

**Trackers** (`--report_to`, as for every Trainer run): the training scalars through Trainer's callbacks; the sample
grids as images at their G step (tag `samples`); after evaluation, its numbers as `eval_<name>` scalars (TensorBoard:
`eval/<name>`) and the run's figures (`samples/final.png`, `losses.png`, a family's figures such as
`translations.png`) as images `figures/<name>` ([`log_to_trackers`]).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from transformers import set_seed

from .gan_trainer import GANTrainer, GANTrainingArguments
from .plots import plot_gan_losses
from .recipes import load_recipe, parse_recipe_args, split_recipe_flag
from .run_folder import write_run_folder as write_common_run_folder


logger = logging.getLogger("train_gan")

DEFAULT_MODEL_TYPE = "fq_biggan"


def parse_config_overrides(raw: dict | str | None, config_class: type) -> dict:
    """`config_overrides` of any GAN family: a mapping (recipe) or a JSON object string (flag) of `config_class` keys.
    Anything else, or an unknown key (it would be saved into config.json unused), is a ValueError naming the flag."""
    from hf_dgm.modules.validation import check_config_keys

    if not raw:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"--config_overrides must be a JSON object (e.g. '{{\"fq_commitment\": 2.0}}'); got {raw!r}: {err}"
            ) from None
    if not isinstance(raw, dict):
        raise ValueError(f"--config_overrides must be a JSON object of config keys; got {type(raw).__name__}")
    check_config_keys(config_class, raw, "--config_overrides")
    return dict(raw)


@dataclass
class GANRunArguments:
    model_type: str = field(
        default=DEFAULT_MODEL_TYPE, metadata={"help": "GAN family: runs the trainer module of its registry entry."}
    )


@dataclass
class GANRunSetup:
    """What a family's `build` returns."""

    model: Any
    train_dataset: Any
    data_collator: Any
    run_metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def load_family(model_type: str):
    """The run module of a GAN family: its registry entry's `trainer` (`FamilySpec.trainer`)."""
    from ..registry import families, load_entry_point

    spec = families().get(model_type)
    if spec is None or spec.trainer is None:
        raise ValueError(
            f"No GAN run code for model_type {model_type!r}: no registered family names a trainer module for it "
            f"(GAN families with one: {sorted(n for n, f in families().items() if f.gan_steps)})."
        )
    module = load_entry_point(spec.trainer)
    for attr in ("ARGUMENT_CLASSES", "build"):
        if not hasattr(module, attr):
            raise ValueError(
                f"{spec.trainer} has no `{attr}`; a GAN family's run module needs ARGUMENT_CLASSES and build()."
            )
    return module


def parse_args(argv: list[str] | None = None):
    """-> `(family_module, arguments: dict[class name -> instance], training_args, recipe_path)`, through the shared
    recipe loader (`hf_dgm.training.recipes`): `--recipe file.yaml` sets every dataclass field it names, other
    flags override it, unknown keys or flags are an error naming them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_path, rest = split_recipe_flag(argv)
    recipe = load_recipe(recipe_path) if recipe_path else {}
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model_type", "--model-type", default=None)
    known, _ = pre.parse_known_args(rest)
    model_type = known.model_type or recipe.get("model_type") or DEFAULT_MODEL_TYPE
    family = load_family(model_type)
    classes = (GANRunArguments, *family.ARGUMENT_CLASSES, GANTrainingArguments)
    parsed = parse_recipe_args(classes, argv)
    training_args = parsed[-1]
    if training_args.output_dir is None:
        raise ValueError("Pass --output_dir (or set output_dir in the recipe).")
    arguments = {type(a).__name__: a for a in parsed[:-1]}
    return family, arguments, training_args, recipe_path


def write_run_folder(trainer: GANTrainer, setup: GANRunSetup) -> None:
    """The GAN-specific part of the run folder (main process only): final model, final sample grid, loss plot and
    log history. The common files are written by `hf_dgm.training.run_folder` in [`main`]."""
    out = trainer.args.output_dir
    trainer.accelerator.unwrap_model(trainer.model).save_pretrained(out)
    if callable(getattr(trainer.model, "sample_images", None)):
        trainer.save_sample_grid(os.path.join(out, "samples", "final.png"), tag=None)  # logged by log_to_trackers
    if any("d_loss" in row for row in trainer.state.log_history):
        plot_gan_losses(trainer.state.log_history, os.path.join(out, "losses.png"))
    else:
        logger.warning("No training logs (logging_steps > steps run): losses.png not written.")
    with open(os.path.join(out, "train_log.json"), "w") as f:
        json.dump(trainer.state.log_history, f, indent=1)


# the run's figures that go to the trackers after training (those that exist), as `figures/<name>`
RUN_FIGURES = ("samples/final.png", "losses.png", "translations.png")


def log_to_trackers(trainer: GANTrainer, metrics: dict[str, Any]) -> dict[str, Any]:
    """After training and evaluation (main process): the evaluation's numbers as `eval_<name>` scalars (a list of
    numbers, e.g. per-class accuracies, as `eval_<name>/<i>`) through
    `trainer.log` (every `report_to` backend; TensorBoard shows them as `eval/<name>`) and the run's figures
    (`RUN_FIGURES`, plus any other top-level PNG the family's `evaluate` wrote) as images through
    `trainer.log_images` (`figures/<name>`). Returns what was logged: `{"scalars": {...}, "figures": {...}}`."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    scalars = {}
    for k, v in metrics.items():
        if number(v) and k != "global_step":
            scalars[f"eval_{k}"] = float(v)
        elif isinstance(v, (list, tuple)) and v and all(number(x) for x in v):  # e.g. per-class accuracies
            scalars.update({f"eval_{k}/{i}": float(x) for i, x in enumerate(v)})
    if scalars and trainer.args.report_to:
        trainer.log(scalars)
    out = trainer.args.output_dir
    names = [n for n in RUN_FIGURES if os.path.isfile(os.path.join(out, n))]
    names += sorted(n for n in os.listdir(out) if n.endswith(".png") and n not in names)
    figures = {"figures/" + os.path.splitext(n)[0].replace("/", "_"): os.path.join(out, n) for n in names}
    trainer.log_images(figures)
    return {"scalars": scalars, "figures": figures}


def optimization_summary(trainer: GANTrainer) -> dict[str, Any]:
    """What the run's optimizers actually used (read back from them, not from the arguments): per network the
    optimizer, lr, betas, eps and weight decay of its first parameter group; D steps per G step, the batch of one
    update, the number of G updates, the G-EMA settings. Written to `run_metadata.json` as `optimization` (the model card shows it)."""

    def settings(optimizer) -> dict[str, Any]:
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
        group = optimizer.param_groups[0]
        return {
            "optimizer": type(optimizer).__name__,
            "lr": group["lr"],
            "betas": list(group.get("betas", ())),
            "eps": group.get("eps"),
            "weight_decay": group.get("weight_decay"),
        }

    args = trainer.args
    config = getattr(trainer.accelerator.unwrap_model(trainer.model), "config", None)
    ema = {}
    if args.use_ema:  # the trainer's values win over the model's (see GANTrainer's EMA update)
        ema = {
            "ema_decay": args.ema_decay if args.ema_decay is not None else getattr(config, "ema_decay", None),
            "ema_start": args.ema_start if args.ema_start is not None else getattr(config, "ema_start", None),
        }
    return {
        "generator": settings(trainer.optimizer),
        "discriminator": settings(trainer.d_optimizer),
        "discriminator_steps_per_generator_step": trainer.d_steps_per_g_step,
        "batch_size_per_update": trainer.generator_batch_size,
        "generator_updates": trainer.state.global_step,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "use_ema": bool(args.use_ema),
        **ema,
    }


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    family, arguments, training_args, recipe = parse_args(argv)
    set_seed(training_args.seed)
    setup = family.build(arguments, training_args)
    trainer = GANTrainer(
        model=setup.model, args=training_args, train_dataset=setup.train_dataset, data_collator=setup.data_collator
    )
    logger.info("%s; %d D steps per G step", setup.description, trainer.d_steps_per_g_step)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    results: dict = {
        "recipe": recipe,
        "model_type": arguments["GANRunArguments"].model_type,
        "global_step": trainer.state.global_step,
    }
    if trainer.is_world_process_zero():
        setup.run_metadata.setdefault("optimization", optimization_summary(trainer))
        write_run_folder(trainer, setup)
        evaluate = getattr(family, "evaluate", None)
        metrics = evaluate(setup, arguments, training_args) if callable(evaluate) else {}
        if metrics:
            results.update(metrics)
            with open(os.path.join(training_args.output_dir, "eval_results.json"), "w") as f:
                json.dump(results, f, indent=2)
        log_to_trackers(trainer, results)
        write_common_run_folder(
            training_args.output_dir,
            metrics=results,
            metadata=setup.run_metadata,
            recipe={name: value for name, value in arguments.items()},
            training_args=training_args,
            model_card=False,
        )
        print(json.dumps(results, indent=2))
    return results


__all__ = ["GANRunArguments", "GANRunSetup", "load_family", "log_to_trackers", "main", "optimization_summary", "parse_args", "write_run_folder"]
