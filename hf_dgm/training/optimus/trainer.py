"""`OptimusTrainer`: `transformers.Trainer` with the cyclical β schedule and dimension-wise KL thresholding of Optimus.

Schedule (the original's `frange_cycle_zero_linear`): the run is split into `beta_n_cycles` periods; in each, β = 0 for
the first `beta_ratio_zero` of the period, rises linearly to `beta` over the next `beta_ratio_increase`, and stays at
`beta` for the rest. β is a pure function of the optimizer step, so a resumed run continues at the same point.
Defaults are the paper's fine-tuning values (1 cycle, ratio_zero 0.5, ratio_increase 0.25, β 1.0, λ 0.5); its
pretraining used 10 cycles and λ 1.0.

Logged to every `report_to` backend at each logging step (averaged over the window, across processes):
`rec_loss`, `kl`, `kl_thresholded`, `beta`, `active_units` and `mutual_information` (from the posteriors of the
window's training sentences, up to `latent_stats_window` of them), `tokens_per_example`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainingArguments

from ...metrics.vae_math import active_units
from ...metrics.vae_math import mutual_information


def cyclical_beta(step: int, total_steps: int, beta: float, n_cycles: int, ratio_increase: float, ratio_zero: float) -> float:
    """β at optimizer step `step` (0-based) of a `total_steps` run (see the module docstring)."""
    if total_steps <= 0:
        return beta
    period = total_steps / n_cycles
    position = (step % period) / period  # in [0, 1)
    if position < ratio_zero:
        return 0.0
    if ratio_increase > 0 and position < ratio_zero + ratio_increase:
        return beta * (position - ratio_zero) / ratio_increase
    return beta


@dataclass
class OptimusTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the VAE schedule. Optimizer defaults follow the paper (AdamW 5e-5, eps 1e-8, no
    weight decay, linear decay without warm-up, gradient clipping 1.0)."""

    beta: float = field(default=1.0, metadata={"help": "maximum β of the cyclical schedule"})
    beta_n_cycles: int = field(default=1, metadata={"help": "number of β cycles over the run (pretraining: 10)"})
    beta_ratio_zero: float = field(default=0.5, metadata={"help": "fraction of each cycle with β = 0"})
    beta_ratio_increase: float = field(default=0.25, metadata={"help": "fraction of each cycle where β rises"})
    kl_threshold: float = field(default=0.5, metadata={"help": "dimension-wise KL threshold λ (pretraining: 1.0)"})
    latent_stats_window: int = field(default=512, metadata={"help": "posteriors kept for AU/MI logging"})
    au_threshold: float = field(default=0.01, metadata={"help": "variance threshold of an active unit"})
    latent_lr_multiplier: float = field(
        default=1.0,
        metadata={
            "help": "learning-rate multiplier of the freshly initialised latent heads (posterior, latent_to_memory, "
            "latent_to_embedding). 1.0 = the paper (one learning rate); a larger value helps short fine-tunes of "
            "a model whose heads start random to use z before the KL term switches on"
        },
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the decoder columns"})

    def __post_init__(self):
        super().__post_init__()
        if self.beta < 0:
            raise ValueError(f"`beta` must be >= 0; got {self.beta}")
        if self.beta_n_cycles < 1:
            raise ValueError(f"`beta_n_cycles` must be >= 1; got {self.beta_n_cycles}")
        if not (0 <= self.beta_ratio_zero <= 1 and 0 <= self.beta_ratio_increase <= 1):
            raise ValueError("`beta_ratio_zero` and `beta_ratio_increase` must lie in [0, 1]")
        if self.beta_ratio_zero + self.beta_ratio_increase > 1:
            raise ValueError(
                f"`beta_ratio_zero` + `beta_ratio_increase` must be <= 1; got "
                f"{self.beta_ratio_zero} + {self.beta_ratio_increase}"
            )
        if self.kl_threshold < 0:
            raise ValueError(f"`kl_threshold` must be >= 0; got {self.kl_threshold}")
        if self.latent_lr_multiplier <= 0:
            raise ValueError(f"`latent_lr_multiplier` must be > 0; got {self.latent_lr_multiplier}")


class OptimusTrainer(Trainer):
    """Trainer for [`OptimusForConditionalGeneration`]; see the module docstring."""

    args: OptimusTrainingArguments

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, OptimusTrainingArguments):
            raise ValueError("OptimusTrainer needs `OptimusTrainingArguments` (it carries the β schedule and λ)")
        self._reset_window()

    # ------------------------------------------------------------------ schedule
    def current_beta(self) -> float:
        return cyclical_beta(
            self.state.global_step,
            self.state.max_steps,
            self.args.beta,
            self.args.beta_n_cycles,
            self.args.beta_ratio_increase,
            self.args.beta_ratio_zero,
        )

    # ------------------------------------------------------------------ optimizer
    LATENT_HEADS = ("posterior.", "latent_to_memory.", "latent_to_embedding.")

    def create_optimizer(self, model=None):
        """The Trainer's optimizer; with `latent_lr_multiplier != 1` the latent heads get their own learning rate."""
        if self.optimizer is not None or self.args.latent_lr_multiplier == 1.0:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in opt_model.named_parameters():
            if param.requires_grad:
                is_head = name.split("module.", 1)[-1].startswith(self.LATENT_HEADS)
                groups.setdefault((is_head, name in decay), []).append(param)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        base_lr = optimizer_kwargs.pop("lr", self.args.learning_rate)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if decayed else 0.0,
                "lr": base_lr * (self.args.latent_lr_multiplier if is_head else 1.0),
            }
            for (is_head, decayed), params in groups.items()
        ]
        self.optimizer = optimizer_cls(param_groups, lr=base_lr, **optimizer_kwargs)
        return self.optimizer

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        beta = self.current_beta() if model.training else self.args.beta
        outputs = model(**inputs, beta=beta, kl_threshold=self.args.kl_threshold)
        if model.training:
            self._record(outputs, beta)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # Evaluation reports the loss only; logits of a whole vocabulary per token are not worth gathering.
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # ------------------------------------------------------------------ logging
    def _reset_window(self) -> None:
        self._sums = torch.zeros(5, dtype=torch.float64)  # rec, kl, kl_thresholded, beta, tokens
        self._count = 0
        self._means: list[torch.Tensor] = []
        self._logvars: list[torch.Tensor] = []

    def _record(self, outputs, beta: float) -> None:
        n = outputs.reconstruction_loss.shape[0]
        self._sums += torch.tensor(
            [
                outputs.reconstruction_loss.detach().sum().item(),
                outputs.kl.detach().sum().item(),
                outputs.kl_thresholded.detach().sum().item(),
                beta * n,
                outputs.num_tokens.sum().item(),
            ],
            dtype=torch.float64,
        )
        self._count += n
        if sum(m.shape[0] for m in self._means) < self.args.latent_stats_window:
            self._means.append(outputs.mean.detach().float().cpu())
            self._logvars.append(outputs.logvar.detach().float().cpu())

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._count > 0 and "loss" in logs:
            device = self.args.device
            totals = torch.cat([self._sums, torch.tensor([float(self._count)], dtype=torch.float64)]).to(device)
            totals = self.accelerator.reduce(totals, reduction="sum")
            rec, kl, kl_thr, beta, tokens, count = totals.tolist()
            logs["rec_loss"] = round(rec / count, 4)
            logs["kl"] = round(kl / count, 4)
            logs["kl_thresholded"] = round(kl_thr / count, 4)
            logs["beta"] = round(beta / count, 4)
            logs["tokens_per_example"] = round(tokens / count, 2)
            means = torch.cat(self._means)
            logvars = torch.cat(self._logvars)
            if means.shape[0] >= 2:
                logs["active_units"] = active_units(means, self.args.au_threshold)[0]
                logs["mutual_information"] = round(mutual_information(means, logvars), 4)
            self._reset_window()
        super().log(logs, *args, **kwargs)


__all__ = ["OptimusTrainer", "OptimusTrainingArguments", "cyclical_beta"]
