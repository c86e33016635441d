"""`GANTrainer`: adversarial training with alternating discriminator (D) and generator (G) steps on top of
`transformers.Trainer`, for any model that follows the GAN step protocol below (FQ-BigGAN, FQ-StyleGAN,
FQ-U-GAT-IT, ...).

## The protocol

Typed in `hf_dgm.modules.gan_protocol`: the model is a `GANModel` (`generator_parameters()` /
`discriminator_parameters()`, or `parameter_groups(network)` returning optimizer group dicts whose keys win over the
network's settings below), and its losses are a `GANSteps` object bound to it, passed as `steps=` or built from the
family's registry entry (`FamilySpec.gan_steps`). The trainer calls `steps.discriminator_step(chunk, step=,
d_step=)` and `steps.generator_step(chunk, step=)` (and, after an optimizer step for which
`steps.regularization_due(network, step)` is True, one more step of the same optimizer on
`steps.<network>_regularization_step`, logged as `d_reg_*` / `g_reg_*`: StyleGAN2's `Dreg` / `Greg` phases).

Optional model hooks: `after_generator_step(step=)` (after every G optimizer step, before the EMA; e.g. U-GAT-IT's
ρ clipping), `update_generator_ema(decay=, step=[, batch_size=, images_seen=])` (when `use_ema`; with `--ema_start`
the trainer passes `decay=0.0` before that step and `--ema_decay` from it on, with `step=None`),
`sample_images(num_images, generator[, use_ema=, truncation=, batch=])` -> `(N, C, H, W)` in [-1, 1] and
`sample_grid_columns(num_images)` (the sample grids; `batch` is the collated first `--num_sample_images` training
rows). `model.config` may carry training defaults: `generator_lr`, `discriminator_lr`, `generator_betas`,
`discriminator_betas`, `adam_eps`, `generator_weight_decay`, `discriminator_weight_decay`, `discriminator_steps`,
`ema_decay`, `ema_start`.

## The schedule

One Trainer "global step" is one generator update, preceded by `d_steps_per_g_step` discriminator updates:

    for k in range(d_steps_per_g_step):            # BigGAN-PyTorch's `num_D_steps`
        for each micro-batch i (gradient accumulation):  D loss on chunk k of micro-batch i -> backward (/ n)
        D optimizer step                                  (G's parameters have requires_grad=False meanwhile)
    for each micro-batch i:                          G loss on chunk 0 of micro-batch i -> backward (/ n)
    G optimizer step (Trainer's own step)             (D's parameters have requires_grad=False meanwhile)
    [G regularisation step if steps.regularization_due("generator", step)]
    model.after_generator_step, G-EMA update, D scheduler step, sample grid if due

(and after each D optimizer step, a D regularisation step if `steps.regularization_due("discriminator", d_step)`).

**Batches.** `per_device_train_batch_size` is the batch of ONE D step (and of the G step). The data loader
therefore yields `per_device_train_batch_size × d_steps_per_g_step` rows per micro-batch; every tensor of the
batch (all must share their dim 0) is split along dim 0 into `d_steps_per_g_step` chunks, other values are given
to every chunk unchanged (as BigGAN-PyTorch loads `batch_size × num_D_steps` images per iteration). An epoch is
over when every row has been seen by one D step.

**Gradient accumulation** (`gradient_accumulation_steps = n`): every D step and the G step each accumulate
gradients over n micro-batches before their optimizer step (BigGAN-PyTorch's `num_D_accumulations =
num_G_accumulations = n`), so the effective batch of every update is `per_device_train_batch_size × n ×
world_size`. The n micro-batches of a global step are buffered and the whole D/G schedule runs at the last one;
under DDP, gradients are all-reduced once per optimizer step (`no_sync` on the other micro-batches).

**Optimizers.** Adam (or AdamW with `--gan_optimizer adamw`) for each network: G in `self.optimizer`
(checkpointed by Trainer), D in `self.d_optimizer` (saved as `d_optimizer.pt` / `d_scheduler.pt` next to it and
restored by `resume_from_checkpoint`). Each network's lr, betas, eps and weight decay come from the
`GANTrainingArguments` fields when set, else from the model config, else BigGAN's defaults (lr 2e-4, betas
(0, 0.999), eps 1e-8, weight decay 0); `parameter_groups` may set them per group. `TrainingArguments.learning_rate`
and `weight_decay` are NOT used. Both optimizers follow `lr_scheduler_type` (default `"constant"`) over
`max_steps` G steps.

**Precision.** fp32 or bf16 (`bf16=True`; autocast through accelerate, where the hardware supports it).
fp16 is refused: one GradScaler shared by two optimizers that step at different rates is not supported by
Trainer/accelerate's loss-scaling path, and hinge-loss GANs overflow easily in fp16.

**Distributed.** DDP through `accelerate launch`; every step runs through the wrapped model's call (the step bound
as its `forward` for that call) so that gradients are synchronised; `ddp_find_unused_parameters=True` by default (D steps do not use G's parameters and
vice versa). FQ dictionaries are buffers whose EMA statistics the quantizer all-reduces itself. FSDP and
DeepSpeed are not supported.

**Divergence guard.** A NaN/Inf D or G loss (checked once per optimizer step over its micro-batches, agreed across
processes) raises :class:`GANTrainingDivergedError` before that optimizer step; no checkpoint is written after the
failure, so the last checkpoint on disk is the last good one (the message names it).

**Logging** (to every `report_to` backend, averaged over the logging interval and over processes): the `loss` and
every floating-point entry of `terms` of the step outputs (`tensors` are not logged). A D-step term `x` is logged as `d_x` (`loss` -> `d_loss`; a name that already starts with `d_` is
kept), a G-step field as `g_x` (`g_` names kept); G's `loss` is Trainer's `loss`. Plus `d_learning_rate`, and
Trainer's `grad_norm` (G's) only when `max_grad_norm > 0` computes it. Values stay on the device until a log is
due (no per-step host syncs besides the divergence guard).
Sample grids go to the image-capable trackers as well (TensorBoard: `add_image` under the tag `samples` at their G
step, through the `TensorBoardCallback`'s writer; Weights & Biases: `wandb.Image`); see `GANTrainer.log_images`.

**Overheads removed** (see `benchmarks/bench_gan_trainer.py`): Trainer's per-step FLOP estimate (a walk over every
module) and its unclipped gradient-norm pass are skipped; the trained parameter lists are cached; the divergence
guard syncs once per optimizer step, not per forward.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.optimization import get_scheduler
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging

from ..modules.gan_protocol import GANStepOutput, GANSteps, check_gan_model
from .plots import save_image_grid
from .checkpoints import AtomicCheckpointMixin, last_complete_checkpoint


logger = logging.get_logger(__name__)

D_OPTIMIZER_NAME = "d_optimizer.pt"
D_SCHEDULER_NAME = "d_scheduler.pt"
GAN_STATE_NAME = "gan_state.json"
SAMPLES_DIR = "samples"
SAMPLES_TAG = "samples"  # the tracker tag of the sample grids
NETWORKS = ("generator", "discriminator")

# BigGAN-PyTorch's defaults when neither the arguments nor the model config say otherwise.
_DEFAULT_LR = 2e-4
_DEFAULT_BETAS = (0.0, 0.999)
_DEFAULT_EPS = 1e-8
_DEFAULT_WEIGHT_DECAY = 0.0
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class GANTrainingDivergedError(RuntimeError):
    """A discriminator or generator loss became NaN or Inf."""


@dataclass
class GANTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the GAN-specific settings. Unset (None) values fall back to the model config.

    Changed defaults: `max_grad_norm=0` (no clipping, as BigGAN), `lr_scheduler_type="constant"`,
    `remove_unused_columns=False` (the collator needs the raw image column), `dataloader_drop_last=True` (every
    D step sees a full batch), `ddp_find_unused_parameters=True`, `logging_nan_inf_filter=False`.
    """

    d_steps_per_g_step: int | None = field(
        default=None, metadata={"help": "Discriminator steps per generator step (config `discriminator_steps`)."}
    )
    gan_optimizer: str = field(default="adam", metadata={"help": "Optimizer of both networks: adam or adamw."})
    generator_learning_rate: float | None = field(default=None, metadata={"help": "G lr (config `generator_lr`)."})
    discriminator_learning_rate: float | None = field(
        default=None, metadata={"help": "D lr (config `discriminator_lr`)."}
    )
    generator_adam_beta1: float | None = field(default=None, metadata={"help": "G Adam beta1 (config)."})
    generator_adam_beta2: float | None = field(default=None, metadata={"help": "G Adam beta2 (config)."})
    discriminator_adam_beta1: float | None = field(default=None, metadata={"help": "D Adam beta1 (config)."})
    discriminator_adam_beta2: float | None = field(default=None, metadata={"help": "D Adam beta2 (config)."})
    generator_weight_decay: float | None = field(
        default=None, metadata={"help": "G weight decay (config `generator_weight_decay`, default 0)."}
    )
    discriminator_weight_decay: float | None = field(
        default=None, metadata={"help": "D weight decay (config `discriminator_weight_decay`, default 0)."}
    )
    gan_adam_epsilon: float | None = field(default=None, metadata={"help": "Adam eps of both (config `adam_eps`)."})
    use_ema: bool = field(default=True, metadata={"help": "Update the generator EMA after every G step."})
    ema_decay: float | None = field(default=None, metadata={"help": "G-EMA decay (default: the model's)."})
    ema_start: int | None = field(
        default=None, metadata={"help": "G step from which the EMA averages; before it, a plain copy (config)."}
    )
    sample_steps: int | None = field(
        default=None, metadata={"help": "Save a sample grid PNG every N G steps (default: every `save_steps`)."}
    )
    num_sample_images: int = field(default=64, metadata={"help": "Images in each sample grid."})
    sample_seed: int = field(default=0, metadata={"help": "Seed of the fixed z (and classes) of the sample grids."})
    sample_truncation: float | None = field(
        default=None, metadata={"help": "Truncation of the grid's samples (None: the training distribution)."}
    )
    stop_on_nonfinite_loss: bool = field(
        default=True, metadata={"help": "Raise GANTrainingDivergedError on a NaN/Inf D or G loss."}
    )
    # Changed defaults
    max_grad_norm: float = field(default=0.0, metadata={"help": "Gradient clipping of G and D (0 = none)."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "Scheduler of both optimizers."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep raw columns for the collator."})
    dataloader_drop_last: bool = field(default=True, metadata={"help": "Drop the last incomplete batch."})
    ddp_find_unused_parameters: bool | None = field(default=True, metadata={"help": "Needed for GAN steps."})
    logging_nan_inf_filter: bool = field(default=False, metadata={"help": "Report non-finite losses as they are."})

    def __post_init__(self):
        if self.fp16:
            raise ValueError(
                "GANTrainer does not support fp16 (one loss scaler for two optimizers stepping at different rates); "
                "use bf16=True where the hardware supports it, or fp32."
            )
        super().__post_init__()
        if self.d_steps_per_g_step is not None and self.d_steps_per_g_step < 1:
            raise ValueError(f"d_steps_per_g_step must be >= 1, got {self.d_steps_per_g_step}")
        if self.gan_optimizer not in _OPTIMIZERS:
            raise ValueError(f"gan_optimizer must be one of {sorted(_OPTIMIZERS)}, got {self.gan_optimizer!r}")
        if self.num_sample_images < 1:
            raise ValueError(f"num_sample_images must be >= 1, got {self.num_sample_images}")
        if self.sample_steps is not None and self.sample_steps < 0:
            raise ValueError(f"sample_steps must be >= 0 (0 = never), got {self.sample_steps}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"ema_decay must be in [0, 1], got {self.ema_decay}")
        for name in ("generator_weight_decay", "discriminator_weight_decay"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")


def _config_value(config: Any, name: str, default: Any) -> Any:
    value = getattr(config, name, None) if config is not None else None
    return default if value is None else value


def _accepted_arguments(function: Any) -> set[str] | None:
    """Names a callable declares, or None when it takes `**kwargs` (accepts any name)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _only_accepted(kwargs: dict[str, Any], accepted: set[str] | None) -> dict[str, Any]:
    return kwargs if accepted is None else {k: v for k, v in kwargs.items() if k in accepted}


def _log_name(prefix: str, name: str) -> str:
    return name if name.startswith(prefix) else prefix + name


class _GANStepCallback(TrainerCallback):
    """Runs the per-G-step bookkeeping right after Trainer's optimizer step (hook, EMA, D scheduler, sample grids)."""

    def __init__(self, trainer: "GANTrainer"):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._after_generator_step()

    def on_train_end(self, args, state, control, **kwargs):
        if self.trainer.sample_steps:
            self.trainer.save_sample_grid()


def gan_steps_for(model: nn.Module) -> GANSteps:
    """The `GANSteps` of the model's registered family (`FamilySpec.gan_steps`), bound to `model`."""
    from ..registry import families, resolve_callable

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    spec = families().get(model_type)
    if spec is None or spec.gan_steps is None:
        raise TypeError(
            f"GANTrainer: no GAN steps registered for {type(model).__name__} (model_type {model_type!r}); pass "
            "`steps=` (a hf_dgm.modules.gan_protocol.GANSteps) or register the family with `gan_steps`"
        )
    return resolve_callable(spec.gan_steps)(model)


class GANTrainer(AtomicCheckpointMixin, Trainer):
    """`Trainer` for GANs following the protocol in the module docstring. See the module docstring for the step
    schedule, batch and gradient-accumulation semantics, checkpoint contents, precision and DDP notes.

    Attributes:
        d_optimizer: the discriminator's optimizer (`self.optimizer` is the generator's).
        d_lr_scheduler: its scheduler.
        d_steps_per_g_step (`int`): discriminator updates per generator update.
        num_d_updates / num_g_updates (`int`): optimizer steps taken by this trainer (restored on resume).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: GANTrainingArguments | None = None,
        steps: GANSteps | None = None,
        **kwargs,
    ):
        if model is None:
            raise ValueError("GANTrainer needs a model (model_init is not supported).")
        check_gan_model(model)
        self.steps = steps if steps is not None else gan_steps_for(model)
        if not isinstance(self.steps, GANSteps):
            raise TypeError(
                f"GANTrainer's `steps` must be a hf_dgm.modules.gan_protocol.GANSteps, got {type(self.steps).__name__}"
            )
        if args is None:
            args = GANTrainingArguments(output_dir="gan_trainer_output")
        if not isinstance(args, GANTrainingArguments):
            raise ValueError("GANTrainer needs `GANTrainingArguments` (a TrainingArguments subclass).")
        if kwargs.get("eval_dataset") is not None or kwargs.get("compute_metrics") is not None:
            raise ValueError(
                "GANTrainer has no evaluation loop; compute FID/KID/IS on samples with hf_dgm.metrics instead."
            )
        self.d_optimizer: torch.optim.Optimizer | None = None
        self.d_lr_scheduler = None
        self.num_d_updates = 0
        self.num_g_updates = 0
        self._micro_batches: list[dict[str, Any]] = []
        self._gan_logs: dict[str, list[torch.Tensor]] = {}
        self._network_parameters: dict[str, list[nn.Parameter]] | None = None
        self._fixed_batch: dict[str, Any] | None = None
        super().__init__(model=model, args=args, **kwargs)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise ValueError("GANTrainer supports single-device and DDP training only (no DeepSpeed / FSDP).")
        # The loss comes from our own training_step: Trainer must not count label tokens for a loss normaliser.
        self.model_accepts_loss_kwargs = False
        config = getattr(model, "config", None)
        self.d_steps_per_g_step = int(
            args.d_steps_per_g_step if args.d_steps_per_g_step is not None else _config_value(config, "discriminator_steps", 1)
        )
        self.sample_steps = args.sample_steps if args.sample_steps is not None else (
            args.save_steps if args.save_strategy == "steps" else 0
        )
        self.sample_steps = int(self.sample_steps) if self.sample_steps else 0
        if self.sample_steps and not callable(getattr(model, "sample_images", None)):
            if args.sample_steps:
                raise ValueError(
                    f"sample_steps={args.sample_steps} needs a model with `sample_images(...)`; "
                    f"{type(model).__name__} has none (set sample_steps=0)."
                )
            self.sample_steps = 0
        self.add_callback(_GANStepCallback(self))

    # ------------------------------------------------------------------------------------------------ settings
    @property
    def _config(self):
        return getattr(self.model, "config", None)

    def _optimizer_settings(self, network: str) -> dict[str, Any]:
        """lr, betas, eps and weight decay of one network: arguments > model config > BigGAN's defaults."""
        args, config = self.args, self._config
        lr = getattr(args, f"{network}_learning_rate")
        if lr is None:
            lr = _config_value(config, f"{network}_lr", _DEFAULT_LR)
        betas = list(_config_value(config, f"{network}_betas", _DEFAULT_BETAS))
        for i, name in enumerate((f"{network}_adam_beta1", f"{network}_adam_beta2")):
            if getattr(args, name) is not None:
                betas[i] = getattr(args, name)
        eps = args.gan_adam_epsilon if args.gan_adam_epsilon is not None else _config_value(config, "adam_eps", _DEFAULT_EPS)
        weight_decay = getattr(args, f"{network}_weight_decay")
        if weight_decay is None:
            weight_decay = _config_value(config, f"{network}_weight_decay", _DEFAULT_WEIGHT_DECAY)
        return {
            "lr": float(lr),
            "betas": (float(betas[0]), float(betas[1])),
            "eps": float(eps),
            "weight_decay": float(weight_decay),
        }

    def _parameter_groups(self, network: str) -> list[dict[str, Any]]:
        groups_fn = getattr(self.model, "parameter_groups", None)
        if callable(groups_fn):
            groups = list(groups_fn(network))
        else:
            groups = [{"params": list(getattr(self.model, f"{network}_parameters")())}]
        result = []
        for group in groups:
            if not isinstance(group, dict) or "params" not in group:
                raise ValueError(f"parameter_groups({network!r}) must return dicts with a 'params' entry, got {group!r}")
            group = dict(group)
            group["params"] = [p for p in group["params"] if p.requires_grad]
            if group["params"]:
                result.append(group)
        if not result:
            raise ValueError(f"The model's {network} has no trainable parameters.")
        return result

    def _build_optimizer(self, network: str) -> torch.optim.Optimizer:
        defaults = self._optimizer_settings(network)
        groups = self._parameter_groups(network)
        return _OPTIMIZERS[self.args.gan_optimizer](groups, **defaults)

    # ------------------------------------------------------------------------------------------------ optimizers
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """G's optimizer in `self.optimizer`, D's in `self.d_optimizer`."""
        if self.optimizer is None:
            self.optimizer = self._build_optimizer("generator")
        if self.d_optimizer is None:
            self.d_optimizer = self._build_optimizer("discriminator")
        self._network_parameters = None
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if self.d_lr_scheduler is None and self.d_optimizer is not None:
            self.d_lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=self.d_optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )
        return scheduler

    @property
    def generator_batch_size(self) -> int:
        """Images per G update over all processes: `per_device_train_batch_size × gradient_accumulation_steps ×
        world_size` (the batch of one D update too)."""
        args = self.args
        return args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size

    def _trained_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The parameters each optimizer trains (cached: toggled every iteration)."""
        if self._network_parameters is None:
            self._network_parameters = {
                "generator": [p for g in self.optimizer.param_groups for p in g["params"]],
                "discriminator": [p for g in self.d_optimizer.param_groups for p in g["params"]],
            }
        return self._network_parameters

    # ------------------------------------------------------------------------------------------------ data
    def get_train_dataloader(self):
        """Micro-batches of `per_device_train_batch_size × d_steps_per_g_step` rows (one chunk per D step)."""
        original = self._train_batch_size
        self._train_batch_size = original * self.d_steps_per_g_step
        try:
            return super().get_train_dataloader()
        finally:
            self._train_batch_size = original

    def _split_for_d_steps(self, inputs: dict[str, Any]) -> list[dict[str, Any]]:
        """Cut every tensor of a micro-batch along dim 0 into `d_steps_per_g_step` chunks; other values are shared."""
        sizes = {k: v.shape[0] for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.dim() > 0}
        if not sizes:
            raise ValueError(
                "GANTrainer batches need at least one tensor with a batch dimension (e.g. `pixel_values`; use "
                "hf_dgm.training.image_data.ImageGANCollator), got keys " + str(sorted(inputs))
            )
        size = next(iter(sizes.values()))
        if any(s != size for s in sizes.values()):
            raise ValueError(f"The batch's tensors disagree on the batch size (dim 0): {sizes}")
        if size < self.d_steps_per_g_step:
            raise ValueError(
                f"A micro-batch of {size} rows cannot feed {self.d_steps_per_g_step} D steps; use a larger dataset "
                "or `dataloader_drop_last=True`."
            )
        if self.d_steps_per_g_step == 1:
            return [{k: v for k, v in inputs.items() if v is not None}]
        chunk = math.ceil(size / self.d_steps_per_g_step)
        return [
            {
                key: value[k * chunk : (k + 1) * chunk] if key in sizes else value
                for key, value in inputs.items()
                if value is not None
            }
            for k in range(self.d_steps_per_g_step)
        ]

    # ------------------------------------------------------------------------------------------------ step
    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        """Buffer micro-batches; at the last one of a global step run the D steps and the G forward/backward.

        Returns the generator loss (averaged over micro-batches) on the last micro-batch, 0 on the others, so
        Trainer's `loss` log is G's loss."""
        model.train()
        self._micro_batches.append(self._prepare_inputs(inputs))
        if not self.accelerator.sync_gradients:
            return torch.zeros((), device=self.args.device)
        micro_batches, self._micro_batches = self._micro_batches, []
        return self._gan_iteration(model, micro_batches)

    def _gan_iteration(self, model: nn.Module, micro_batches: list[dict[str, Any]]) -> torch.Tensor:
        n = len(micro_batches)
        chunks = [self._split_for_d_steps(batch) for batch in micro_batches]
        params = self._trained_parameters()
        step = self.state.global_step
        clip = self.args.max_grad_norm > 0

        # Discriminator steps (G frozen).
        _set_requires_grad(params["generator"], False)
        try:
            for k in range(self.d_steps_per_g_step):
                self.d_optimizer.zero_grad(set_to_none=True)
                d_step = self.num_d_updates
                losses = []
                for i in range(n):
                    sync = contextlib.nullcontext() if i == n - 1 else self.accelerator.no_sync(model)
                    with sync:
                        with self.compute_loss_context_manager():
                            out = self._run_step(model, "discriminator", chunks[i][k], step=step, d_step=d_step)
                        self.accelerator.backward(out.loss / n)
                    losses.append(out.loss.detach())
                    self._record("d_", out)
                self._check_finite(losses, "discriminator", f"D step {k + 1}/{self.d_steps_per_g_step}")
                if clip:
                    self.accelerator.clip_grad_norm_(params["discriminator"], self.args.max_grad_norm)
                self.d_optimizer.step()
                if self._regularization_due("discriminator", self.num_d_updates):
                    self._regularization_step(model, "discriminator", [chunks[i][k] for i in range(n)],
                                              d_step=self.num_d_updates)  # fmt: skip
                self.num_d_updates += 1
            self.d_optimizer.zero_grad(set_to_none=True)
        finally:
            _set_requires_grad(params["generator"], True)

        # Generator forward/backward (D frozen); Trainer then steps `self.optimizer`.
        self._pending_generator_regularization = (
            ([chunks[i][0] for i in range(n)], step) if self._regularization_due("generator", step) else None
        )
        losses = []
        _set_requires_grad(params["discriminator"], False)
        try:
            for i in range(n):
                sync = contextlib.nullcontext() if i == n - 1 else self.accelerator.no_sync(model)
                with sync:
                    with self.compute_loss_context_manager():
                        out = self._run_step(model, "generator", chunks[i][0], step=step)
                    self.accelerator.backward(out.loss / n)
                losses.append(out.loss.detach())
                self._record("g_", out)
            self._check_finite(losses, "generator", "G step")
        finally:
            _set_requires_grad(params["discriminator"], True)
        return losses[0] / n if n == 1 else torch.stack(losses).sum() / n

    def _regularization_due(self, network: str, step: int) -> bool:
        return bool(self.steps.regularization_due(network, step))

    def _run_step(self, model: nn.Module, phase: str, batch: dict[str, Any], **counters: int) -> Any:
        """`self.steps.<phase>_step(batch, **counters)`, run through `model` (the Trainer's wrapped model) when it
        is a DDP wrapper: the step is bound as the inner module's `forward` for this one call, so that DDP prepares
        its gradient reduction (and finds unused parameters) exactly as for an ordinary forward."""
        function = getattr(self.steps, f"{phase}_step")
        with self.compute_loss_context_manager(), self.accelerator.autocast():
            if not isinstance(model, nn.parallel.DistributedDataParallel):
                out = function(batch, **counters)
            else:
                inner = model.module
                previous = inner.__dict__.get("forward")
                inner.forward = lambda: function(batch, **counters)
                try:
                    out = model()
                finally:
                    if previous is None:
                        del inner.forward
                    else:
                        inner.forward = previous
        if not isinstance(out, GANStepOutput):
            raise TypeError(
                f"{type(self.steps).__name__}.{phase}_step must return a {GANStepOutput.__name__} "
                f"(hf_dgm.modules.gan_protocol), got {type(out).__name__}"
            )
        return out

    def _regularization_step(self, model: nn.Module, network: str, chunks: list[dict[str, Any]], **counters: int) -> None:
        """One separate lazy-regularisation optimizer step of `network` (the other network frozen)."""
        params = self._trained_parameters()
        other = "generator" if network == "discriminator" else "discriminator"
        optimizer = self.d_optimizer if network == "discriminator" else self.optimizer
        optimizer.zero_grad(set_to_none=True)
        n = len(chunks)
        losses = []
        _set_requires_grad(params[other], False)
        try:
            for i, chunk in enumerate(chunks):
                sync = contextlib.nullcontext() if i == n - 1 else self.accelerator.no_sync(model)
                with sync:
                    with self.compute_loss_context_manager():
                        out = self._run_step(model, f"{network}_regularization", chunk, **counters)
                    self.accelerator.backward(out.loss / n)
                losses.append(out.loss.detach())
                self._record("d_reg_" if network == "discriminator" else "g_reg_", out)
            self._check_finite(losses, network, f"{network} regularisation step")
            if self.args.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(params[network], self.args.max_grad_norm)
            optimizer.step()
        finally:
            optimizer.zero_grad(set_to_none=True)
            _set_requires_grad(params[other], True)

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """0: Trainer's estimate (6 × input size × parameters, for language models) does not describe a GAN
        iteration, and computing it walks every module of the model at every step."""
        return 0

    def _get_grad_norm(self, model: nn.Module, grad_norm: Any = None) -> Any:
        """The G gradient norm only when clipping computed it (`max_grad_norm > 0`): Trainer would otherwise run
        an extra pass over every parameter per step just to log it."""
        return grad_norm

    def _after_generator_step(self) -> None:
        """Called after Trainer's G optimizer step: model hook, G-EMA, D scheduler, sample grid."""
        self.num_g_updates += 1
        pending, self._pending_generator_regularization = getattr(self, "_pending_generator_regularization", None), None
        if pending is not None:
            chunks, g_step = pending
            self._regularization_step(self.model_wrapped, "generator", chunks, step=g_step)
        step = self.state.global_step
        if self.d_lr_scheduler is not None:
            self.d_lr_scheduler.step()
        hook = getattr(self.model, "after_generator_step", None)
        if callable(hook):
            hook(step=step)
        update_ema = getattr(self.model, "update_generator_ema", None)
        if self.args.use_ema and callable(update_ema):
            batch = self.generator_batch_size
            extra = _only_accepted({"batch_size": batch, "images_seen": step * batch}, _accepted_arguments(update_ema))
            if self.args.ema_start is not None:
                decay = 0.0 if step < self.args.ema_start else self.args.ema_decay
                update_ema(decay=decay, step=None, **extra)
            else:
                update_ema(decay=self.args.ema_decay, step=step, **extra)
        if self.sample_steps and step % self.sample_steps == 0:
            self.save_sample_grid()

    # ------------------------------------------------------------------------------------------------ guard
    def _check_finite(self, losses: list[torch.Tensor], network: str, where: str) -> None:
        """One host sync per optimizer step: raise if any loss of its micro-batches (on any process) is NaN/Inf."""
        if not self.args.stop_on_nonfinite_loss:
            return
        values = losses[0].float().reshape(1) if len(losses) == 1 else torch.stack(losses).float()
        bad = (~torch.isfinite(values)).any().float().reshape(1)
        if self.args.world_size > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        if bad.item() == 0:
            return
        nonfinite = [v for v in values.tolist() if not math.isfinite(v)]
        shown = nonfinite[0] if nonfinite else "finite here"
        last = last_complete_checkpoint(self.args.output_dir)
        raise GANTrainingDivergedError(
            f"GAN training diverged: the {network} loss is {shown} (or non-finite on another "
            f"process) at global step {self.state.global_step + 1} ({where}). Training stopped before that "
            "optimizer update, and no checkpoint was written after it. Last good checkpoint: "
            f"{last or 'none (no checkpoint saved yet)'}. Resume from it with `resume_from_checkpoint` after "
            "lowering the learning rates, or check the data for NaN/Inf values."
        )

    # ------------------------------------------------------------------------------------------------ logging
    def _record(self, prefix: str, output: Any) -> None:
        """Keep every scalar field of a step output (on its device) for the next log."""
        for name, value in [("loss", output.loss), *output.terms.items()]:
            if prefix == "g_" and name == "loss":
                continue  # Trainer logs G's total loss as `loss`
            if isinstance(value, torch.Tensor):
                if value.numel() != 1 or not value.is_floating_point():
                    continue
                value = value.detach()
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = torch.tensor(float(value))
            else:
                continue
            self._gan_logs.setdefault(_log_name(prefix, name), []).append(value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._gan_logs:
            names = sorted(self._gan_logs)
            device = self.args.device
            means = torch.stack(
                [torch.stack([v.to(device).float().reshape(()) for v in self._gan_logs[k]]).mean() for k in names]
            )
            if self.args.world_size > 1:
                means = self.accelerator.reduce(means, reduction="mean")
            for name, value in zip(names, means.tolist()):
                logs[name] = round(value, 6)
            if self.d_lr_scheduler is not None:
                logs["d_learning_rate"] = self.d_lr_scheduler.get_last_lr()[0]
            self._gan_logs = {}
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------------ samples
    def fixed_sample_batch(self) -> dict[str, Any]:
        """The collated first `num_sample_images` rows of the training set (on the device): fixed real inputs of the
        sample grid, for models whose `sample_images` takes a `batch`."""
        if self._fixed_batch is None:
            dataset, n = self.train_dataset, self.args.num_sample_images
            if dataset is None:
                raise ValueError("sample grids of this model need real inputs: pass `train_dataset`")
            if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
                rows = [dataset[i] for i in range(min(n, len(dataset)))]
            else:
                rows = [row for _, row in zip(range(n), iter(dataset))]
            self._fixed_batch = self._prepare_inputs(self.data_collator(rows))
        return self._fixed_batch

    @torch.no_grad()
    def generate_fixed_samples(self) -> torch.Tensor:
        """The grid's images (N, C, H, W) in [-1, 1] from `model.sample_images` with a generator seeded by
        `sample_seed` (and the EMA generator when `use_ema`); the global RNG state is left untouched."""
        sample = getattr(self.model, "sample_images", None)
        if not callable(sample):
            raise ValueError(f"{type(self.model).__name__} has no `sample_images`; cannot draw sample grids.")
        accepted = _accepted_arguments(sample)
        kwargs: dict[str, Any] = {"use_ema": self.args.use_ema, "truncation": self.args.sample_truncation}
        if accepted is not None and "batch" in accepted:
            kwargs["batch"] = self.fixed_sample_batch()
        kwargs = _only_accepted(kwargs, accepted)
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            generator = torch.Generator().manual_seed(self.args.sample_seed)
            images = sample(num_images=self.args.num_sample_images, generator=generator, **kwargs)
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError(f"`sample_images` must return an (N, C, H, W) tensor, got {type(images).__name__}")
        return images.float().cpu()

    def save_sample_grid(self, path: str | os.PathLike | None = None, tag: str | None = SAMPLES_TAG) -> str | None:
        """Write the fixed-sample grid as PNG (main process only) and, unless `tag` is None, log that image to the
        configured trackers under `tag` at the current global step (see [`log_images`]); returns the path."""
        images = self.generate_fixed_samples()  # every process draws (cheap, keeps processes in step)
        if not self.is_world_process_zero():
            return None
        if path is None:
            path = os.path.join(self.args.output_dir, SAMPLES_DIR, f"step_{self.state.global_step:07d}.png")
        columns = getattr(self.model, "sample_grid_columns", None)
        ncol = int(columns(images.shape[0])) if callable(columns) else int(math.ceil(math.sqrt(images.shape[0])))
        save_image_grid(images, path, ncol=ncol)
        if tag:
            self.log_images({tag: path})
        return os.fspath(path)

    def log_images(self, images: dict[str, Any], step: int | None = None) -> list[str]:
        """Send images to the image-capable trackers of `report_to` (main process only): TensorBoard (through the
        `TensorBoardCallback`'s writer, reopened in the same log folder after training has ended) and Weights &
        Biases (`wandb.Image`, when its callback is active). `images` maps a tag to a PNG path, a PIL image, or an
        `(H, W, 3)` / `(H, W)` uint8 array; `step` defaults to the global step. Returns the trackers that got them
        (other trackers only receive the scalars of `log`). Tested with TensorBoard; the W&B branch is not (wandb is
        not installed in the test environment)."""
        if not images or not self.is_world_process_zero():
            return []
        from transformers.integrations import TensorBoardCallback, WandbCallback

        step = self.state.global_step if step is None else int(step)
        arrays = {tag: _as_hwc_uint8(image) for tag, image in images.items()}
        sent = []
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback):
                if callback.tb_writer is None:  # before on_train_begin, or closed by on_train_end
                    if callback.logging_dir is None:
                        from transformers.integrations.integration_utils import default_logdir

                        callback.logging_dir = os.path.join(self.args.output_dir, default_logdir())
                    callback._init_summary_writer(self.args)
                for tag, array in arrays.items():
                    callback.tb_writer.add_image(tag, array, step, dataformats="HWC")
                callback.tb_writer.flush()
                sent.append("tensorboard")
            elif isinstance(callback, WandbCallback) and getattr(callback, "_initialized", False):
                wandb = callback._wandb
                # as WandbCallback.on_log does: the G step as a logged value, not W&B's own (monotonic) step
                wandb.log({**{tag: wandb.Image(array) for tag, array in arrays.items()}, "train/global_step": step})
                sent.append("wandb")
        return sent

    # ------------------------------------------------------------------------------------------------ checkpoints
    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save and self.d_optimizer is not None:
            torch.save(self.d_optimizer.state_dict(), os.path.join(output_dir, D_OPTIMIZER_NAME))
            if self.d_lr_scheduler is not None:
                torch.save(self.d_lr_scheduler.state_dict(), os.path.join(output_dir, D_SCHEDULER_NAME))
            state = {
                "num_d_updates": self.num_d_updates,
                "num_g_updates": self.num_g_updates,
                "d_steps_per_g_step": self.d_steps_per_g_step,
            }
            with open(os.path.join(output_dir, GAN_STATE_NAME), "w") as f:
                json.dump(state, f, indent=2)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, D_OPTIMIZER_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{checkpoint} has no discriminator optimizer state ({D_OPTIMIZER_NAME}); it was not written by "
                "GANTrainer, so training cannot resume exactly from it."
            )
        self.d_optimizer.load_state_dict(torch.load(path, map_location=self.args.device, weights_only=True))
        sched_path = os.path.join(checkpoint, D_SCHEDULER_NAME)
        if self.d_lr_scheduler is not None and os.path.isfile(sched_path):
            self.d_lr_scheduler.load_state_dict(torch.load(sched_path, weights_only=True))
        state_path = os.path.join(checkpoint, GAN_STATE_NAME)
        if os.path.isfile(state_path):
            with open(state_path) as f:
                state = json.load(f)
            if state.get("d_steps_per_g_step") not in (None, self.d_steps_per_g_step):
                logger.warning(
                    f"Resuming with d_steps_per_g_step={self.d_steps_per_g_step}, the checkpoint used "
                    f"{state['d_steps_per_g_step']}."
                )
            self.num_d_updates = int(state.get("num_d_updates", 0))
            self.num_g_updates = int(state.get("num_g_updates", 0))


def _as_hwc_uint8(image: Any):
    """A PNG path, PIL image or uint8 array -> an (H, W, 3) uint8 array (greyscale repeated over 3 channels)."""
    import numpy as np
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            image = opened.convert("RGB")
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"images to log must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"images to log must be (H, W, 3) or (H, W), got shape {array.shape}")
    return array


def _set_requires_grad(params: Sequence[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)
