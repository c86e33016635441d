"""`GANTrainer`: adversarial training (BigGAN-style alternating D and G steps) on top of `transformers.Trainer`.

The model protocol (implemented by [`FQBigGANForImageGeneration`], and by any model that follows it):

- `model(mode="discriminator", pixel_values=(B, 3, H, W) in [-1, 1], labels=(B,) long)` -> output with `.loss` (what D
  minimises: hinge loss + FQ losses; FQ dictionaries are updated only in this call) and, optionally,
  `.d_loss_real`, `.d_loss_fake`, `.quantization_loss`, `.fq_perplexity`, `.fq_usage` (logged when present);
- `model(mode="generator", labels=(B,) long)` (or `batch_size=B` for unconditional models) -> `.loss` (what G
  minimises), optionally `.g_loss`, `.quantization_loss`;
- `model.generator_parameters()`, `model.discriminator_parameters()`;
- optionally `model.update_generator_ema(decay=None, step=None)` and
  `model.generate(labels, truncation=..., generator=..., use_ema=...)` (sample grids);
- `model.config` may carry training defaults (`generator_lr`, `discriminator_lr`, `generator_betas`,
  `discriminator_betas`, `adam_eps`, `discriminator_steps`, `ema_decay`, `ema_start`) and `num_classes`.

One Trainer "global step" is one generator update, preceded by `d_steps_per_g_step` discriminator updates:

    for k in range(d_steps_per_g_step):            # BigGAN-PyTorch's `num_D_steps`
        for each micro-batch i (gradient accumulation):  D loss on chunk k of micro-batch i -> backward (/ n)
        D optimizer step
    for each micro-batch i:                          G loss (fresh z, uniformly drawn classes) -> backward (/ n)
    G optimizer step (Trainer's own step), then G-EMA update, D scheduler step, sample grid if due

**Batches.** `per_device_train_batch_size` is the batch of ONE D step (and of the G step). The data loader
therefore yields `per_device_train_batch_size × d_steps_per_g_step` real images per micro-batch, split into
`d_steps_per_g_step` chunks (as BigGAN-PyTorch loads `batch_size × num_D_steps` images per iteration); an epoch
is over when every image has been seen by one D step.

**Gradient accumulation** (`gradient_accumulation_steps = n`): every D step and the G step each accumulate
gradients over n micro-batches before their optimizer step (BigGAN-PyTorch's `num_D_accumulations =
num_G_accumulations = n`), so the effective batch of every update is `per_device_train_batch_size × n ×
world_size`. The n micro-batches of a global step are buffered and the whole D/G schedule runs at the last one;
under DDP, gradients are all-reduced once per optimizer step (`no_sync` on the other micro-batches).

**Optimizers.** Adam for both; G in `self.optimizer` (checkpointed by Trainer), D in `self.d_optimizer` (saved
as `d_optimizer.pt` / `d_scheduler.pt` next to it and restored by `resume_from_checkpoint`). Learning rates,
betas and eps come from the `GANTrainingArguments` fields when set, else from the model config (the paper's
values), else BigGAN's defaults. `TrainingArguments.learning_rate` is NOT used. Both optimizers follow
`lr_scheduler_type` (default `"constant"`, as BigGAN) over `max_steps` G steps.

**Precision.** fp32 or bf16 (`bf16=True`; autocast through accelerate, where the hardware supports it).
fp16 is refused: one GradScaler shared by two optimizers that step at different rates is not supported by
Trainer/accelerate's loss-scaling path, and hinge-loss GANs overflow easily in fp16.

**Distributed.** DDP through `accelerate launch`; the wrapped model is always called (`model(mode=...)`) so that
gradients are synchronised; `ddp_find_unused_parameters=True` by default (D steps do not use G's parameters and
vice versa). The FQ dictionaries are buffers whose EMA statistics the quantizer all-reduces itself. FSDP and
DeepSpeed are not supported.

**Divergence guard.** A NaN/Inf D or G loss (checked on every forward, agreed across processes) raises
:class:`GANTrainingDivergedError` before any optimizer step of that iteration uses it; no checkpoint is written
after the failure, so the last checkpoint on disk is the last good one (the message names it).

**Logging** (to every `report_to` backend, averaged over the logging interval and over processes): `loss` (G's
total loss), `g_loss`, `g_fq_loss`, `d_loss`, `d_loss_real`, `d_loss_fake`, `d_fq_loss`, `fq_perplexity`,
`fq_usage` (D steps, real+fake batch), `d_learning_rate`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.optimization import get_scheduler
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging


logger = logging.get_logger(__name__)

D_OPTIMIZER_NAME = "d_optimizer.pt"
D_SCHEDULER_NAME = "d_scheduler.pt"
GAN_STATE_NAME = "gan_state.json"
SAMPLES_DIR = "samples"

# BigGAN-PyTorch's defaults when neither the arguments nor the model config say otherwise.
_DEFAULT_LR = 2e-4
_DEFAULT_BETAS = (0.0, 0.999)
_DEFAULT_EPS = 1e-8


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
    generator_learning_rate: float | None = field(default=None, metadata={"help": "G Adam lr (config `generator_lr`)."})
    discriminator_learning_rate: float | None = field(
        default=None, metadata={"help": "D Adam lr (config `discriminator_lr`)."}
    )
    generator_adam_beta1: float | None = field(default=None, metadata={"help": "G Adam beta1 (config)."})
    generator_adam_beta2: float | None = field(default=None, metadata={"help": "G Adam beta2 (config)."})
    discriminator_adam_beta1: float | None = field(default=None, metadata={"help": "D Adam beta1 (config)."})
    discriminator_adam_beta2: float | None = field(default=None, metadata={"help": "D Adam beta2 (config)."})
    gan_adam_epsilon: float | None = field(default=None, metadata={"help": "Adam eps of both (config `adam_eps`)."})
    use_ema: bool = field(default=True, metadata={"help": "Update the generator EMA after every G step."})
    ema_decay: float | None = field(default=None, metadata={"help": "G-EMA decay (config `ema_decay`)."})
    ema_start: int | None = field(
        default=None, metadata={"help": "G step from which the EMA averages; before it, a plain copy (config)."}
    )
    sample_steps: int | None = field(
        default=None, metadata={"help": "Save a sample grid PNG every N G steps (default: every `save_steps`)."}
    )
    num_sample_images: int = field(default=64, metadata={"help": "Images in each sample grid."})
    sample_seed: int = field(default=0, metadata={"help": "Seed of the fixed z (and classes) of the sample grids."})
    sample_truncation: float | None = field(
        default=None, metadata={"help": "Truncation of the grid's z (None: plain N(0, 1), as BigGAN's fixed z)."}
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
        if self.num_sample_images < 1:
            raise ValueError(f"num_sample_images must be >= 1, got {self.num_sample_images}")
        if self.sample_steps is not None and self.sample_steps < 0:
            raise ValueError(f"sample_steps must be >= 0 (0 = never), got {self.sample_steps}")
        for name in ("ema_decay",):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")


def _config_value(config: Any, name: str, default: Any) -> Any:
    value = getattr(config, name, None) if config is not None else None
    return default if value is None else value


class _GANStepCallback(TrainerCallback):
    """Runs the per-G-step bookkeeping right after Trainer's optimizer step (EMA, D scheduler, sample grids)."""

    def __init__(self, trainer: "GANTrainer"):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._after_generator_step()

    def on_train_end(self, args, state, control, **kwargs):
        if self.trainer.sample_steps:
            self.trainer.save_sample_grid()


class GANTrainer(Trainer):
    """`Trainer` for GANs following the protocol in the module docstring. See the module docstring for the step
    schedule, batch and gradient-accumulation semantics, checkpoint contents, precision and DDP notes.

    Attributes:
        d_optimizer: the discriminator's optimizer (`self.optimizer` is the generator's).
        d_lr_scheduler: its scheduler.
        d_steps_per_g_step (`int`): discriminator updates per generator update.
        num_d_updates / num_g_updates (`int`): optimizer steps taken by this trainer (restored on resume).
    """

    def __init__(self, model: nn.Module | None = None, args: GANTrainingArguments | None = None, **kwargs):
        if model is None:
            raise ValueError("GANTrainer needs a model (model_init is not supported).")
        for name in ("generator_parameters", "discriminator_parameters"):
            if not callable(getattr(model, name, None)):
                raise ValueError(f"GANTrainer needs a model with `{name}()`; {type(model).__name__} has none.")
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
        self._gan_log_sums: dict[str, torch.Tensor] = {}
        self._gan_log_counts: dict[str, int] = {}
        super().__init__(model=model, args=args, **kwargs)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise ValueError("GANTrainer supports single-device and DDP training only (no DeepSpeed / FSDP).")
        config = getattr(model, "config", None)
        self.d_steps_per_g_step = int(
            args.d_steps_per_g_step if args.d_steps_per_g_step is not None else _config_value(config, "discriminator_steps", 1)
        )
        self.sample_steps = args.sample_steps if args.sample_steps is not None else (
            args.save_steps if args.save_strategy == "steps" else 0
        )
        self.sample_steps = int(self.sample_steps) if self.sample_steps else 0
        self.add_callback(_GANStepCallback(self))

    # ------------------------------------------------------------------------------------------------ settings
    @property
    def _config(self):
        return getattr(self.model, "config", None)

    def _adam_settings(self, which: str) -> dict[str, Any]:
        args, config = self.args, self._config
        lr = getattr(args, f"{which}_learning_rate")
        if lr is None:
            lr = _config_value(config, f"{which}_lr", _DEFAULT_LR)
        betas = list(_config_value(config, f"{which}_betas", _DEFAULT_BETAS))
        for i, name in enumerate((f"{which}_adam_beta1", f"{which}_adam_beta2")):
            if getattr(args, name) is not None:
                betas[i] = getattr(args, name)
        eps = args.gan_adam_epsilon if args.gan_adam_epsilon is not None else _config_value(config, "adam_eps", _DEFAULT_EPS)
        return {"lr": float(lr), "betas": (float(betas[0]), float(betas[1])), "eps": float(eps)}

    @property
    def num_classes(self) -> int:
        config = self._config
        n = getattr(config, "num_classes", None)
        if n is None:
            n = len(getattr(config, "id2label", None) or {})
        return int(n or 0)

    # ------------------------------------------------------------------------------------------------ optimizers
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """G's Adam in `self.optimizer`, D's Adam in `self.d_optimizer`."""
        if self.optimizer is None:
            g_params = [p for p in self.model.generator_parameters() if p.requires_grad]
            if not g_params:
                raise ValueError("The model's generator_parameters() has no trainable parameters.")
            self.optimizer = torch.optim.Adam(g_params, **self._adam_settings("generator"))
        if self.d_optimizer is None:
            d_params = [p for p in self.model.discriminator_parameters() if p.requires_grad]
            if not d_params:
                raise ValueError("The model's discriminator_parameters() has no trainable parameters.")
            self.d_optimizer = torch.optim.Adam(d_params, **self._adam_settings("discriminator"))
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

    # ------------------------------------------------------------------------------------------------ data
    def get_train_dataloader(self):
        """Micro-batches of `per_device_train_batch_size × d_steps_per_g_step` images (one chunk per D step)."""
        original = self._train_batch_size
        self._train_batch_size = original * self.d_steps_per_g_step
        try:
            return super().get_train_dataloader()
        finally:
            self._train_batch_size = original

    def _split_for_d_steps(self, inputs: dict[str, Any]) -> list[dict[str, Any]]:
        pixel_values = inputs.get("pixel_values")
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError("GANTrainer batches need a `pixel_values` tensor (use hf_dgm.training.image_data.ImageGANCollator).")
        size = pixel_values.shape[0]
        if size < self.d_steps_per_g_step:
            raise ValueError(
                f"A micro-batch of {size} images cannot feed {self.d_steps_per_g_step} D steps; use a larger dataset "
                "or `dataloader_drop_last=True`."
            )
        chunk = math.ceil(size / self.d_steps_per_g_step)
        chunks = []
        for k in range(self.d_steps_per_g_step):
            part = {
                key: value[k * chunk : (k + 1) * chunk]
                for key, value in inputs.items()
                if key in ("pixel_values", "labels") and value is not None
            }
            chunks.append(part)
        return chunks

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
        g_params = list(self.model.generator_parameters())
        d_params = list(self.model.discriminator_parameters())

        # Discriminator steps (G frozen).
        _set_requires_grad(g_params, False)
        try:
            for k in range(self.d_steps_per_g_step):
                self.d_optimizer.zero_grad(set_to_none=True)
                for i in range(n):
                    sync = contextlib.nullcontext() if i == n - 1 else self.accelerator.no_sync(model)
                    with sync:
                        with self.compute_loss_context_manager():
                            out = model(mode="discriminator", **chunks[i][k])
                        self._check_finite(out.loss, "discriminator", f"D step {k + 1}/{self.d_steps_per_g_step}")
                        self.accelerator.backward(out.loss / n)
                    self._record(
                        d_loss=out.loss,
                        d_loss_real=getattr(out, "d_loss_real", None),
                        d_loss_fake=getattr(out, "d_loss_fake", None),
                        d_fq_loss=getattr(out, "quantization_loss", None),
                        fq_perplexity=getattr(out, "fq_perplexity", None),
                        fq_usage=getattr(out, "fq_usage", None),
                    )
                if self.args.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(d_params, self.args.max_grad_norm)
                self.d_optimizer.step()
                self.num_d_updates += 1
            self.d_optimizer.zero_grad(set_to_none=True)
        finally:
            _set_requires_grad(g_params, True)

        # Generator forward/backward (D frozen); Trainer then steps `self.optimizer`.
        g_total = torch.zeros((), device=self.args.device)
        _set_requires_grad(d_params, False)
        try:
            for i in range(n):
                batch_size = chunks[i][0]["pixel_values"].shape[0]
                kwargs: dict[str, Any]
                if self.num_classes > 0 and "labels" in chunks[i][0]:
                    kwargs = {"labels": torch.randint(0, self.num_classes, (batch_size,), device=self.args.device)}
                else:
                    kwargs = {"batch_size": batch_size}
                sync = contextlib.nullcontext() if i == n - 1 else self.accelerator.no_sync(model)
                with sync:
                    with self.compute_loss_context_manager():
                        out = model(mode="generator", **kwargs)
                    self._check_finite(out.loss, "generator", "G step")
                    self.accelerator.backward(out.loss / n)
                g_total = g_total + out.loss.detach() / n
                self._record(g_loss=getattr(out, "g_loss", None), g_fq_loss=getattr(out, "quantization_loss", None))
        finally:
            _set_requires_grad(d_params, True)
        return g_total

    def _after_generator_step(self) -> None:
        """Called after Trainer's G optimizer step: G-EMA, D scheduler, sample grid."""
        self.num_g_updates += 1
        if self.d_lr_scheduler is not None:
            self.d_lr_scheduler.step()
        if self.args.use_ema and callable(getattr(self.model, "update_generator_ema", None)):
            step = self.state.global_step
            if self.args.ema_start is not None:
                decay = 0.0 if step < self.args.ema_start else self.args.ema_decay
                self.model.update_generator_ema(decay=decay, step=None)
            else:
                self.model.update_generator_ema(decay=self.args.ema_decay, step=step)
        if self.sample_steps and self.state.global_step % self.sample_steps == 0:
            self.save_sample_grid()

    # ------------------------------------------------------------------------------------------------ guard
    def _check_finite(self, loss: torch.Tensor, network: str, where: str) -> None:
        if not self.args.stop_on_nonfinite_loss:
            return
        bad = (~torch.isfinite(loss.detach().float())).float().reshape(1)
        if self.args.world_size > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        if bad.item() == 0:
            return
        last = get_last_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
        raise GANTrainingDivergedError(
            f"GAN training diverged: the {network} loss is {loss.detach().float().item()} (or non-finite on another "
            f"process) at global step {self.state.global_step + 1} ({where}). Training stopped before that "
            "optimizer update, and no checkpoint was written after it. Last good checkpoint: "
            f"{last or 'none (no checkpoint saved yet)'}. Resume from it with `resume_from_checkpoint` after "
            "lowering the learning rates, or check the data for NaN/Inf values."
        )

    # ------------------------------------------------------------------------------------------------ logging
    def _record(self, **values: torch.Tensor | None) -> None:
        for name, value in values.items():
            if value is None:
                continue
            value = value.detach().float().reshape(())
            if name in self._gan_log_sums:
                self._gan_log_sums[name] = self._gan_log_sums[name] + value
                self._gan_log_counts[name] += 1
            else:
                self._gan_log_sums[name] = value
                self._gan_log_counts[name] = 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._gan_log_sums:
            names = sorted(self._gan_log_sums)
            means = torch.stack([self._gan_log_sums[k] / self._gan_log_counts[k] for k in names])
            if self.args.world_size > 1:
                means = self.accelerator.reduce(means.to(self.args.device), reduction="mean")
            for name, value in zip(names, means.tolist()):
                logs[name] = round(value, 6)
            if self.d_lr_scheduler is not None:
                logs["d_learning_rate"] = self.d_lr_scheduler.get_last_lr()[0]
            self._gan_log_sums, self._gan_log_counts = {}, {}
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------------ samples
    def fixed_sample_labels(self) -> torch.Tensor | None:
        """Class ids of the sample grid: class `i % num_classes` for image i (one class per grid column)."""
        if self.num_classes == 0:
            return None
        return torch.arange(self.args.num_sample_images) % self.num_classes

    @torch.no_grad()
    def generate_fixed_samples(self) -> torch.Tensor:
        """The grid's images (N, 3, H, W) in [-1, 1], from fixed z (seed `sample_seed`) and fixed classes, with the
        EMA generator when `use_ema`; the global RNG state is left untouched."""
        generate = getattr(self.model, "generate", None)
        if not callable(generate):
            raise ValueError(f"{type(self.model).__name__} has no `generate`; cannot draw sample grids.")
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            generator = torch.Generator().manual_seed(self.args.sample_seed)
            labels = self.fixed_sample_labels()
            kwargs: dict[str, Any] = {"truncation": self.args.sample_truncation, "generator": generator,
                                      "use_ema": self.args.use_ema}  # fmt: skip
            if labels is None:
                kwargs["batch_size"] = self.args.num_sample_images
                return generate(**kwargs).float().cpu()
            return generate(labels.to(self.args.device), **kwargs).float().cpu()

    def save_sample_grid(self, path: str | os.PathLike | None = None) -> str | None:
        """Write the fixed-sample grid as PNG (main process only); returns the path."""
        images = self.generate_fixed_samples()  # every process draws (cheap, keeps processes in step)
        if not self.is_world_process_zero():
            return None
        if path is None:
            path = os.path.join(self.args.output_dir, SAMPLES_DIR, f"step_{self.state.global_step:07d}.png")
        ncol = self.num_classes if 0 < self.num_classes <= 16 else int(math.ceil(math.sqrt(images.shape[0])))
        save_image_grid(images, path, ncol=ncol)
        return os.fspath(path)

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


def _set_requires_grad(params: Sequence[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


# ---------------------------------------------------------------------------------------------------- images/plots
def image_grid(images: torch.Tensor, ncol: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (rows·(H+p)+p, ncol·(W+p)+p, 3) uint8 grid, row-major."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1|3, H, W), got {tuple(images.shape)}")
    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    n, _, h, w = images.shape
    ncol = max(1, min(ncol, n))
    nrow = int(math.ceil(n / ncol))
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    fill = int(round((pad_value + 1) * 127.5))
    grid = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, 3), fill, dtype=np.uint8)
    for idx in range(n):
        r, c = divmod(idx, ncol)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top : top + h, left : left + w] = pixels[idx]
    return grid


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, ncol: int = 8, scale: int | None = None) -> None:
    """Save a grid PNG; small images are upscaled (nearest) so that the grid is at least 512 px wide."""
    from PIL import Image

    grid = image_grid(images, ncol=ncol)
    if scale is None:
        scale = max(1, math.ceil(512 / grid.shape[1]))
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.Resampling.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)


def plot_gan_losses(log_history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Plot the logged D/G losses (and FQ perplexity/usage when present) against the step, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in log_history if "d_loss" in r and "step" in r]
    if not rows:
        raise ValueError("No training logs to plot (set logging_steps).")
    has_fq = any("fq_perplexity" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if has_fq else 1, figsize=(11 if has_fq else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for key, label in (("d_loss", "D loss"), ("loss", "G loss (total)"), ("d_fq_loss", "D FQ loss"),
                       ("g_fq_loss", "G FQ loss")):  # fmt: skip
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), label=label)
    ax.set_xlabel("generator step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    if has_fq:
        ax = axes[0, 1]
        pts = [(r["step"], r["fq_perplexity"]) for r in rows if "fq_perplexity" in r]
        ax.plot(*zip(*pts), color="C3", label="perplexity")
        ax.set_xlabel("generator step")
        ax.set_ylabel("FQ code perplexity")
        ax2 = ax.twinx()
        pts = [(r["step"], r["fq_usage"]) for r in rows if "fq_usage" in r]
        if pts:
            ax2.plot(*zip(*pts), color="C4", label="usage")
            ax2.set_ylabel("fraction of dictionary used")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
