"""`OptimusTrainer`: `transformers.Trainer` with the cyclical β schedule and dimension-wise KL thresholding of Optimus.

Schedule (the original's `frange_cycle_zero_linear`, value for value, see [`cyclical_beta`]): the schedule is split
into `beta_n_cycles` periods; in each, β = 0 for the first `beta_ratio_zero` of the period, rises linearly to `beta`
over the next `beta_ratio_increase`, and stays at `beta` for the rest. Like the original it is indexed by training
batch (micro-batch under gradient accumulation) and spans whole epochs (`original_schedule_length`: under `max_steps`,
`(max_steps // updates per epoch + 1)` epochs, so a run that stops mid-epoch stops mid-schedule);
`beta_schedule_steps` sets another length. β is a pure function of the optimizer step and the micro-batch within it,
so a resumed run continues at the same point.
Defaults are the paper's fine-tuning values (1 cycle, ratio_zero 0.5, ratio_increase 0.25, β 1.0, λ 0.5); its
pretraining used 10 cycles and λ 1.0.

Logged to every `report_to` backend at each logging step (averaged over the window, across processes):
`rec_loss`, `kl`, `kl_thresholded`, `beta`, `active_units` and `mutual_information` (from the posteriors of the
window's training sentences, up to `latent_stats_window` of them), `tokens_per_example`.

**Posterior-collapse watch.** With `collapse_mi_threshold > 0` or `collapse_min_active_units > 0`, every logging
step whose β > 0 compares the window's MI and active units with them; a breach is logged as a warning
(`collapse_warning` = 1 in the logs) and every window's (step, β, MI, AU) lands in `latent_health.json` in
`output_dir` at the end of training, with `collapsed_at_end` (the last β > 0 window breached).

**Which parts train.** `decoder_training` = `full` (the paper) | `lora` (`peft` LoRA adapters on
`lora_target_modules`, merged into the decoder's weights when training ends, so the saved model is a plain Optimus)
| `frozen`; `encoder_training` = `full` | `frozen`. The latent heads always train (see `adapters.py`).

**Time estimate.** With `time_estimate_steps = k > 0`, after k timed steps (the first step, a warm-up, is not
timed) the trainer logs how long the rest of training takes, plus `time_estimate_extra_steps` step-equivalents of
work that follows training (the main job: its plain-decoder fine-tune and evaluation), and shows that job ETA on the
progress bar, updated at every step. Step times are scaled by decoder tokens (the length-grouped sampler puts the
longest sentences first), see [`TimeEstimateCallback`].

**Divergence guard.** A NaN/Inf training loss (checked on every forward, agreed across processes) raises
:class:`OptimusTrainingDivergedError` before the backward pass and optimizer step of that batch; no checkpoint is
written after it, so the last checkpoint on disk is the last good one (the message names it). Trainer's
`logging_nan_inf_filter` is off by default here, so logged losses are reported as they are.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from ...metrics.vae_math import active_units
from ...metrics.vae_math import mutual_information
from ...modules.validation import check_float
from ..checkpoints import AtomicCheckpointMixin, last_complete_checkpoint

logger = logging.getLogger(__name__)


class OptimusTrainingDivergedError(RuntimeError):
    """The training loss became NaN or Inf."""


@functools.lru_cache(maxsize=8)
def _cyclical_schedule(length: int, beta: float, n_cycles: int, ratio_increase: float, ratio_zero: float) -> tuple:
    """The whole schedule as a tuple of `length` floats (see [`cyclical_beta`]); cached, it is read once per step."""
    schedule = [beta] * length
    period = length / n_cycles
    zero_steps = period * ratio_zero
    # ratio_increase = 0: the original divides by zero; the limit is one step at 0, then β.
    increment = beta / (period * ratio_increase) if ratio_increase > 0 else math.inf
    for cycle in range(n_cycles):
        start = cycle * period  # a float: the cycle starts at int(i + start), as in the original
        value, i = 0.0, 0
        while value <= beta:
            index = int(i + start)
            if index >= length:
                break
            if i < zero_steps:
                schedule[index] = 0.0
            else:
                schedule[index] = value
                value += increment  # accumulated like the original, so the ramp's rounding is the same
            i += 1
    return tuple(schedule)


def cyclical_beta(step: int, total_steps: int, beta: float, n_cycles: int, ratio_increase: float, ratio_zero: float) -> float:
    """
    β at training batch `step` (0-based) of a schedule spanning `total_steps` batches: the original's
    `frange_cycle_zero_linear(total_steps, 0, beta, n_cycles, ratio_increase, ratio_zero)[step]`, value for value.

    Each of the `n_cycles` periods (`total_steps / n_cycles` batches, not necessarily whole) starts at batch
    `int(c · period)`; its first `ceil(period · ratio_zero)` batches have β = 0, then β rises from 0 (that batch
    included) by `beta / (period · ratio_increase)` per batch, accumulated as a running sum, for as long as the
    running value has not passed `beta`; every batch the ramps do not reach stays at `beta`. A step past the end of
    the schedule gets `beta`.
    """
    if total_steps <= 0 or step >= total_steps:
        return float(beta)
    if step < 0:
        raise ValueError(f"`step` must be >= 0; got {step}")
    return _cyclical_schedule(int(total_steps), float(beta), int(n_cycles), float(ratio_increase), float(ratio_zero))[step]


def original_schedule_length(
    batches_per_epoch: int, max_steps: int = -1, num_train_epochs: float = 1.0, gradient_accumulation_steps: int = 1
) -> int:
    """
    Length of the β schedule in batches, as the original's `run_lm_vae_training.py` sizes it: whole epochs of
    `batches_per_epoch` batches — `num_train_epochs` of them, or under `max_steps > 0`
    `max_steps // (batches_per_epoch // gradient_accumulation_steps) + 1` (one more epoch than the steps need when
    they end on an epoch boundary, as there). A fractional `num_train_epochs` (which the original cannot run: it
    truncates the count) spans the batches the run takes, `ceil(num_train_epochs · batches_per_epoch)`.
    """
    if batches_per_epoch < 1:
        raise ValueError(f"`batches_per_epoch` must be >= 1; got {batches_per_epoch}")
    if max_steps is not None and max_steps > 0:
        updates_per_epoch = max(1, batches_per_epoch // gradient_accumulation_steps)
        return (max_steps // updates_per_epoch + 1) * batches_per_epoch
    if float(num_train_epochs).is_integer():
        return int(num_train_epochs) * batches_per_epoch
    return math.ceil(num_train_epochs * batches_per_epoch)


@dataclass
class OptimusTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the VAE schedule. Optimizer defaults follow the paper (AdamW 5e-5, eps 1e-8, no
    weight decay, linear decay without warm-up, gradient clipping 1.0)."""

    beta: float = field(default=1.0, metadata={"help": "maximum β of the cyclical schedule"})
    beta_n_cycles: int = field(default=1, metadata={"help": "number of β cycles over the run (pretraining: 10)"})
    beta_ratio_zero: float = field(default=0.5, metadata={"help": "fraction of each cycle with β = 0"})
    beta_ratio_increase: float = field(default=0.25, metadata={"help": "fraction of each cycle where β rises"})
    beta_schedule_steps: int | None = field(
        default=None,
        metadata={
            "help": "length of the β schedule in training batches (micro-batches under gradient accumulation). "
            "None = the original's: whole epochs, `num_train_epochs` of them or, under `max_steps`, "
            "`max_steps // updates_per_epoch + 1`; set it to `max_steps` to fit the schedule to a max_steps run"
        },
    )
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
    decoder_word_dropout: float = field(
        default=0.0,
        metadata={
            "help": "probability of replacing each decoder input token (not BOS, not the targets) by the decoder's "
            "PAD token during training (word dropout, Bowman et al. 2016): the decoder must lean on z. 0 = the paper"
        },
    )
    decoder_word_dropout_kl_phase: float | None = field(
        default=None,
        metadata={
            "help": "word dropout once β > 0 (the ramp and β = max); None = `decoder_word_dropout` throughout. A high "
            "rate in the autoencoder phase (β = 0) teaches the decoder to read z, a lower one afterwards lets it "
            "be a language model again"
        },
    )
    decoder_freeze_steps: int = field(
        default=0,
        metadata={
            "help": "optimizer steps at the start of the run during which the decoder's weights stay as loaded: only "
            "the encoder and the latent heads learn, steering the pretrained decoder through z (gradients still "
            "flow through the frozen decoder to the heads), before the decoder can learn to do without z. "
            "0 = the paper (everything trains from the first step)"
        },
    )
    reconstruction_curve_steps: int = field(
        default=0,
        metadata={
            "help": "every N optimizer steps, decode the evaluation sentences' posterior means greedily and record "
            "their reconstruction BLEU against training minutes (reconstruction_curve.json / .png in the run "
            "folder; the decoding time is not counted as training time). 0 = off"
        },
    )
    posterior_init: str = field(
        default="random",
        metadata={
            "help": "random (the composed model's head, the paper) | pca: before training, the posterior mean rows "
            "become the whitened top principal components of the encoder's pooled features of up to "
            "`posterior_init_sentences` training sentences (latent_init.py), so z starts with unit spread across "
            "sentences instead of barely above the sampling noise. Ignored when resuming"
        },
    )
    posterior_init_sentences: int = field(default=2048, metadata={"help": "training sentences for posterior_init='pca'"})
    decoder_training: str = field(
        default="full",
        metadata={"help": "full (every decoder weight, the paper) | lora (peft LoRA adapters, merged at the end) | frozen"},
    )
    encoder_training: str = field(default="full", metadata={"help": "full | frozen"})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank r (decoder_training=lora)"})
    lora_alpha: float = field(default=32.0, metadata={"help": "LoRA scale numerator α (the update is α/r · B·A)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input"})
    lora_lr_multiplier: float = field(
        default=1.0, metadata={"help": "learning-rate multiplier of the LoRA adapters (LoRA usually wants more than full fine-tuning)"},
    )
    lora_target_modules: str = field(
        default="q_proj,v_proj",
        metadata={"help": "comma-separated decoder linear layers that get adapters (e.g. q_proj,v_proj or all-linear)"},
    )
    collapse_mi_threshold: float = field(
        default=0.0,
        metadata={"help": "warn of posterior collapse when a β > 0 logging window's MI (nats) falls below this; 0 = off"},
    )
    collapse_min_active_units: int = field(
        default=0,
        metadata={"help": "warn of posterior collapse when a β > 0 logging window has fewer active units; 0 = off"},
    )
    time_estimate_steps: int = field(
        default=0, metadata={"help": "time this many steps (after a warm-up step), then log the remaining time; 0 = off"},
    )
    time_estimate_extra_steps: float = field(
        default=0.0,
        metadata={"help": "work after training, in training-step equivalents, added to the time estimate"},
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    optim: str = field(
        default="adamw_torch_fused",
        metadata={
            "help": "optimizer; the fused AdamW (one kernel over all parameters, CPU and CUDA) makes a bert-base + "
            "gpt2 training step ~1.5x faster on CPU than the per-parameter loop (benchmarks/bench_optimus_step.py)"
        },
    )
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the decoder columns"})
    stop_on_nonfinite_loss: bool = field(
        default=True, metadata={"help": "Raise OptimusTrainingDivergedError on a NaN/Inf training loss."}
    )
    logging_nan_inf_filter: bool = field(default=False, metadata={"help": "Report non-finite losses as they are."})

    def __post_init__(self):
        for name, minimum in (("beta", 0.0), ("beta_ratio_zero", 0.0), ("beta_ratio_increase", 0.0),
                              ("kl_threshold", 0.0), ("au_threshold", 0.0), ("learning_rate", 0.0),
                              ("adam_epsilon", 0.0), ("max_grad_norm", 0.0), ("weight_decay", 0.0)):
            setattr(self, name, check_float(getattr(self, name), name, minimum=minimum))
        self.latent_lr_multiplier = check_float(
            self.latent_lr_multiplier, "latent_lr_multiplier", minimum=0.0, exclusive_minimum=True
        )
        self.lora_lr_multiplier = check_float(self.lora_lr_multiplier, "lora_lr_multiplier", minimum=0.0, exclusive_minimum=True)
        super().__post_init__()
        if self.beta_schedule_steps is not None and (
            not isinstance(self.beta_schedule_steps, int) or self.beta_schedule_steps < 1
        ):
            raise ValueError(f"`beta_schedule_steps` must be None or an int >= 1; got {self.beta_schedule_steps!r}")
        if self.beta_n_cycles < 1:
            raise ValueError(f"`beta_n_cycles` must be >= 1; got {self.beta_n_cycles}")
        if not (0 <= self.beta_ratio_zero <= 1 and 0 <= self.beta_ratio_increase <= 1):
            raise ValueError("`beta_ratio_zero` and `beta_ratio_increase` must lie in [0, 1]")
        if self.beta_ratio_zero + self.beta_ratio_increase > 1:
            raise ValueError(
                f"`beta_ratio_zero` + `beta_ratio_increase` must be <= 1; got "
                f"{self.beta_ratio_zero} + {self.beta_ratio_increase}"
            )
        if not isinstance(self.reconstruction_curve_steps, int) or self.reconstruction_curve_steps < 0:
            raise ValueError(f"`reconstruction_curve_steps` must be an int >= 0; got {self.reconstruction_curve_steps!r}")
        if not isinstance(self.decoder_freeze_steps, int) or self.decoder_freeze_steps < 0:
            raise ValueError(f"`decoder_freeze_steps` must be an int >= 0; got {self.decoder_freeze_steps!r}")
        from .adapters import DECODER_TRAINING, ENCODER_TRAINING
        from .latent_init import POSTERIOR_INITS

        if self.posterior_init not in POSTERIOR_INITS:
            raise ValueError(f"`posterior_init` must be one of {POSTERIOR_INITS}; got {self.posterior_init!r}")
        if not isinstance(self.posterior_init_sentences, int) or self.posterior_init_sentences < 2:
            raise ValueError(f"`posterior_init_sentences` must be an int >= 2; got {self.posterior_init_sentences!r}")

        if self.decoder_training not in DECODER_TRAINING:
            raise ValueError(f"`decoder_training` must be one of {DECODER_TRAINING}; got {self.decoder_training!r}")
        if self.encoder_training not in ENCODER_TRAINING:
            raise ValueError(f"`encoder_training` must be one of {ENCODER_TRAINING}; got {self.encoder_training!r}")
        if self.decoder_training != "full" and self.decoder_freeze_steps > 0:
            raise ValueError("`decoder_freeze_steps` needs decoder_training='full' (it releases every decoder weight)")
        if not isinstance(self.lora_rank, int) or self.lora_rank < 1:
            raise ValueError(f"`lora_rank` must be an int >= 1; got {self.lora_rank!r}")
        for name in ("collapse_min_active_units", "time_estimate_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be an int >= 0; got {getattr(self, name)!r}")
        self.collapse_mi_threshold = check_float(self.collapse_mi_threshold, "collapse_mi_threshold", minimum=0.0)
        self.time_estimate_extra_steps = check_float(self.time_estimate_extra_steps, "time_estimate_extra_steps", minimum=0.0)
        if (self.decoder_freeze_steps > 0 or self.decoder_training != "full" or self.encoder_training != "full") \
                and self.ddp_find_unused_parameters is None:
            # frozen parameters get no gradients
            self.ddp_find_unused_parameters = True
        for name in ("decoder_word_dropout", "decoder_word_dropout_kl_phase"):
            rate = getattr(self, name)
            if rate is None and name == "decoder_word_dropout_kl_phase":
                continue  # one rate throughout
            rate = check_float(rate, name, minimum=0.0)
            if rate >= 1.0:
                raise ValueError(f"`{name}` must lie in [0, 1); got {rate}")
            setattr(self, name, rate)

    def beta_at(self, step: int, total_steps: int) -> float:
        """β of training batch `step` (0-based) of a schedule spanning `total_steps` batches (see [`cyclical_beta`])."""
        return cyclical_beta(
            step, total_steps, self.beta, self.beta_n_cycles, self.beta_ratio_increase, self.beta_ratio_zero
        )

    def beta_schedule_length(self, batches_per_epoch: int | None) -> int:
        """
        Batches the β schedule spans: `beta_schedule_steps` when set; else the original's whole epochs
        ([`original_schedule_length`]) of `batches_per_epoch`; for a data loader without a length (then `max_steps`
        is set), the batches of the run, `max_steps × gradient_accumulation_steps`.
        """
        if self.beta_schedule_steps is not None:
            return self.beta_schedule_steps
        if batches_per_epoch is None:
            return max(self.max_steps, 0) * self.gradient_accumulation_steps
        return original_schedule_length(
            batches_per_epoch, self.max_steps, self.num_train_epochs, self.gradient_accumulation_steps
        )

    def word_dropout_at(self, beta: float) -> float:
        """The decoder word-dropout rate of a training step whose KL weight is `beta`."""
        if beta > 0 and self.decoder_word_dropout_kl_phase is not None:
            return self.decoder_word_dropout_kl_phase
        return self.decoder_word_dropout


class ReconstructionCurveCallback(TrainerCallback):
    """
    For [`OptimusTrainer`] (its arguments give β). Every `every` optimizer steps (and at the last), greedy-decode the posterior means of `sentences` and record their
    corpus BLEU and exact matches (`evaluation.reconstruction_scores`) with the step, β and the training seconds so
    far — wall time since training began minus the time spent here. `points` holds one dict per evaluation.
    The decoding is deterministic (posterior means, greedy, eval mode), so it leaves the training RNG untouched.
    """

    def __init__(self, processor, sentences: list[str], every: int, max_length: int = 128):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"`every` must be a positive number of steps; got {every!r}")
        if not sentences:
            raise ValueError("the reconstruction curve needs at least one evaluation sentence")
        self.processor, self.sentences, self.every, self.max_length = processor, list(sentences), every, max_length
        self.points: list[dict] = []
        self._started = self._spent = 0.0
        self.trainer = None  # set by OptimusTrainer.train: the β of the step just taken comes from it

    def on_train_begin(self, args, state, control, **kwargs):
        self._started, self._spent = time.perf_counter(), 0.0

    def _beta_of_last_step(self, args, state) -> float:
        if self.trainer is not None and self.trainer.last_beta is not None:
            return self.trainer.last_beta
        gas = args.gradient_accumulation_steps
        return args.beta_at(state.global_step * gas - 1, args.beta_schedule_steps or state.max_steps * gas)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every and state.global_step != state.max_steps:
            return
        if not state.is_world_process_zero or model is None:
            return
        from .evaluation import reconstruction_scores

        began = time.perf_counter()
        was_training = model.training
        scores = reconstruction_scores(model, self.processor, self.sentences, max_length=self.max_length)
        model.train(was_training)
        self.points.append({
            "step": state.global_step,
            "train_seconds": round(began - self._started - self._spent, 1),
            "beta": self._beta_of_last_step(args, state),
            "reconstruction_bleu": round(scores["bleu"], 2),
            "reconstruction_exact_match": scores["exact_match"],
        })
        self._spent += time.perf_counter() - began
        logger.info(
            "step %d (%.1f training minutes): reconstruction BLEU %.2f, exact %.1f%%", state.global_step,
            self.points[-1]["train_seconds"] / 60, scores["bleu"], 100 * scores["exact_match"],
        )


class TimeEstimateCallback(TrainerCallback):
    """
    Times `steps` optimizer steps after the first (a warm-up: lazy initialisation, first allocations), then logs how
    long the rest of training takes plus `extra_steps` step-equivalents of work that follows it, and keeps that job
    ETA on the training progress bar, re-estimated at every step from the time since the warm-up.

    Length-grouped batches are not alike: the Trainer's length-grouped sampler puts the longest sentences first, so the
    first steps are the slowest (1.6-2× the run's mean in the main job). With `tokens_per_step` (the target tokens of
    an average step, from the training data's `length` column) and the tokens of the steps run so far
    (`count_tokens`), the time of an average step is seconds per token × `tokens_per_step`; without them it is the
    mean step time. `estimate` holds the first figures; `job_minutes_left` the latest ETA.
    """

    def __init__(self, steps: int, extra_steps: float = 0.0, tokens_per_step: float | None = None):
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`steps` must be a positive number of steps; got {steps!r}")
        self.steps, self.extra_steps = steps, float(extra_steps)
        self.tokens_per_step = tokens_per_step
        self.estimate: dict | None = None
        self.job_minutes_left: float | None = None  # the bar's ETA, updated every step once `estimate` is known
        self._t0: float | None = None
        self._tokens = 0.0  # decoder tokens of the steps after the warm-up
        self.bar_owner = None  # the ProgressCallback whose bar shows the ETA (set by OptimusTrainer)

    def count_tokens(self, tokens: float, completed_steps: int) -> None:
        """Add a training micro-batch's target tokens (`completed_steps`: optimizer steps done before it)."""
        if completed_steps >= 1:
            self._tokens += float(tokens)

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if state.global_step == 1:
            self._t0 = now
        elif self._t0 is not None and state.global_step == 1 + self.steps and self.estimate is None:
            timed = (now - self._t0) / self.steps
            per_step = self.seconds_per_average_step(state.global_step, now)
            remaining = state.max_steps - state.global_step
            self.estimate = {
                "seconds_per_step": round(per_step, 3), "timed_seconds_per_step": round(timed, 3),
                "timed_steps": self.steps,
                "training_minutes_left": round(per_step * remaining / 60, 2),
                "job_minutes_left": round(per_step * (remaining + self.extra_steps) / 60, 2),
            }
            if state.is_world_process_zero:
                logger.warning(
                    "time estimate from %d timed steps (%.2f s/step, scaled to the data's mean sentence length: "
                    "%.2f s/step) -> training done in ~%.1f min, the whole job in ~%.1f min", self.steps, timed,
                    per_step, self.estimate["training_minutes_left"], self.estimate["job_minutes_left"],
                )
        if self.estimate is not None:
            self.job_minutes_left = self.seconds_per_average_step(state.global_step, now) * (
                state.max_steps - state.global_step + self.extra_steps) / 60
            bar = getattr(self.bar_owner, "training_bar", None)
            if bar is not None:
                bar.set_postfix_str(f"job ETA ~{self.job_minutes_left:.1f} min", refresh=False)

    def seconds_per_average_step(self, global_step: int, now: float) -> float:
        """The time of an average step, from every step since the warm-up: seconds per token × `tokens_per_step`
        when tokens are known, else the mean step time."""
        elapsed = now - self._t0
        if self.tokens_per_step and self._tokens > 0:
            return elapsed / self._tokens * self.tokens_per_step
        return elapsed / (global_step - 1)


class OptimusTrainer(AtomicCheckpointMixin, Trainer):
    """Trainer for [`OptimusForConditionalGeneration`]; see the module docstring."""

    args: OptimusTrainingArguments

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, OptimusTrainingArguments):
            raise ValueError("OptimusTrainer needs `OptimusTrainingArguments` (it carries the β schedule and λ)")
        self._reset_window()
        self._decoder_frozen = False
        self._batches_per_epoch: int | None = None  # of the training data loader, set when training starts
        self._updates_per_epoch: int | None = None
        self._micro = (-1, 0)  # (global step, micro-batch index within it) of the current training batch
        self.last_beta: float | None = None  # β of the last training batch
        self.latent_health: list[dict] = []  # one row per logging window: step, β, MI, AU, breach
        self.parameter_counts = self._configure_trainable_parts()
        self.time_estimate: TimeEstimateCallback | None = None
        if self.args.time_estimate_steps > 0:
            self.time_estimate = TimeEstimateCallback(self.args.time_estimate_steps, self.args.time_estimate_extra_steps)
            self.add_callback(self.time_estimate)

    def _configure_trainable_parts(self) -> dict[str, int] | None:
        """Apply `decoder_training` / `encoder_training` to the model (LoRA adapters injected here)."""
        if self.args.decoder_training == "full" and self.args.encoder_training == "full":
            return None
        from .adapters import configure_trainable_parts

        counts = configure_trainable_parts(
            self.model, self.args.decoder_training, self.args.encoder_training, lora_rank=self.args.lora_rank,
            lora_alpha=self.args.lora_alpha, lora_target_modules=self.args.lora_target_modules,
            lora_dropout=self.args.lora_dropout,
        )
        logger.info("decoder %s, encoder %s: %d of %d parameters train (%.1f%%; LoRA adapters: %d)",
                    self.args.decoder_training, self.args.encoder_training, counts["trainable"], counts["total"],
                    100 * counts["trainable"] / counts["total"], counts["adapter"])
        return counts

    # ------------------------------------------------------------------ decoder freezing
    def _set_decoder_frozen(self, model, frozen: bool) -> None:
        """Freeze (or release) the decoder's weights; its parameters stay in the optimizer (no gradient = no update)."""
        if frozen == self._decoder_frozen:
            return
        decoder = self.accelerator.unwrap_model(model).get_decoder()
        for param in decoder.parameters():
            param.requires_grad_(not frozen)
            if frozen:
                param.grad = None
        self._decoder_frozen = frozen

    def training_step(self, model, inputs, *args, **kwargs):
        self._set_decoder_frozen(model, self.state.global_step < self.args.decoder_freeze_steps)
        step, micro = self._micro
        self._micro = (self.state.global_step, micro + 1 if step == self.state.global_step else 0)
        return super().training_step(model, inputs, *args, **kwargs)

    def set_initial_training_values(self, args, dataloader, *rest, **kwargs):
        """Trainer's step counts; also records the batches per epoch that the β schedule is sized by."""
        values = super().set_initial_training_values(args, dataloader, *rest, **kwargs)
        try:
            self._batches_per_epoch = len(dataloader)
        except TypeError:  # an iterable dataset without a length
            self._batches_per_epoch = None
        self._updates_per_epoch = values[1]
        return values

    def train(self, *args, **kwargs):
        from transformers.trainer_callback import ProgressCallback

        for callback in self.callback_handler.callbacks:
            if isinstance(callback, ReconstructionCurveCallback):
                callback.trainer = self
            if isinstance(callback, ProgressCallback) and self.time_estimate is not None:
                self.time_estimate.bar_owner = callback
        if self.time_estimate is not None and self.time_estimate.tokens_per_step is None:
            self.time_estimate.tokens_per_step = self._mean_tokens_per_step()
        try:
            result = super().train(*args, **kwargs)
        finally:  # the returned model is trainable again, also when the run is shorter than the freeze
            self._set_decoder_frozen(self.model, False)
        self._finish_adapters()
        self._write_latent_health()
        return result

    def _mean_tokens_per_step(self) -> float | None:
        """Target tokens of an average optimizer step on this process, counted as the model's `num_tokens` (a sentence
        of `length` decoder ids, BOS … EOS, has `length − 1` targets): (mean `length` − 1) × batch × accumulation
        (None without the training data's `length` column)."""
        data = self.train_dataset
        if data is None or "length" not in (getattr(data, "column_names", None) or []) or len(data) == 0:
            return None
        lengths = list(data["length"])
        targets = sum(lengths) / len(lengths) - 1
        return targets * self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps

    def _finish_adapters(self) -> None:
        """LoRA: fold the adapters into the decoder's weights, so the model saves and loads as a plain Optimus."""
        if self.args.decoder_training != "lora":
            return
        from .adapters import merge_decoder_lora

        merged = merge_decoder_lora(self.accelerator.unwrap_model(self.model))
        logger.info("merged %d LoRA adapters into the decoder's weights", merged)

    def collapse_summary(self) -> dict:
        """The collapse watch's verdict: thresholds, the windows that breached them, and whether the last β > 0
        window did (`collapsed_at_end`); the minimum MI / AU over β > 0 windows."""
        late = [row for row in self.latent_health if row["beta"] > 0 and row.get("mutual_information") is not None]
        return {
            "mi_threshold": self.args.collapse_mi_threshold, "min_active_units": self.args.collapse_min_active_units,
            "breaches": [row["step"] for row in self.latent_health if row["breach"]],
            "collapsed_at_end": bool(late and late[-1]["breach"]),
            "min_mutual_information": min((row["mutual_information"] for row in late), default=None),
            "min_active_units_seen": min((row["active_units"] for row in late), default=None),
        }

    def _write_latent_health(self) -> None:
        if not self.latent_health or not self.args.output_dir or not self.is_world_process_zero():
            return
        import json

        os.makedirs(self.args.output_dir, exist_ok=True)
        payload = {"summary": self.collapse_summary(), "windows": self.latent_health}
        if self.time_estimate is not None and self.time_estimate.estimate is not None:
            payload["time_estimate"] = self.time_estimate.estimate
        with open(os.path.join(self.args.output_dir, "latent_health.json"), "w") as f:
            json.dump(payload, f, indent=2)

    # ------------------------------------------------------------------ schedule
    def schedule_position(self) -> tuple[int, int]:
        """
        (index of the current training batch in the β schedule, schedule length), as the original counts: batch
        `epoch × batches_per_epoch + batch within the epoch`, from the optimizer step and the micro-batch within it.
        Before training has sized the data loader, the run's `max_steps × gradient_accumulation_steps` batches.
        """
        gas = self.args.gradient_accumulation_steps
        step, micro = self._micro
        if step != self.state.global_step:
            micro = 0
        step = self.state.global_step
        if self._batches_per_epoch is None or not self._updates_per_epoch:
            length = self.args.beta_schedule_steps or self.state.max_steps * gas
            return step * gas + micro, length
        epoch, update = divmod(step, self._updates_per_epoch)
        index = epoch * self._batches_per_epoch + update * gas + micro
        return index, self.args.beta_schedule_length(self._batches_per_epoch)

    def current_beta(self) -> float:
        """β of the current training batch (see [`schedule_position`])."""
        return self.args.beta_at(*self.schedule_position())

    # ------------------------------------------------------------------ optimizer
    LATENT_HEADS = ("posterior.", "posterior_mean_norm.", "latent_to_memory.", "latent_to_embedding.", "latent_to_prefix.")

    def create_optimizer(self, model=None):
        """The Trainer's optimizer; with `latent_lr_multiplier != 1` (or `lora_lr_multiplier != 1`) the latent heads
        (the LoRA adapters) get their own learning rate."""
        if self.optimizer is not None or (self.args.latent_lr_multiplier == 1.0 and self.args.lora_lr_multiplier == 1.0):
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        multiplier = {"head": self.args.latent_lr_multiplier, "lora": self.args.lora_lr_multiplier, "other": 1.0}
        groups: dict[tuple[str, bool], list] = {}
        for name, param in opt_model.named_parameters():
            if param.requires_grad:
                bare = name.split("module.", 1)[-1]
                kind = "head" if bare.startswith(self.LATENT_HEADS) else "lora" if "lora_" in bare else "other"
                groups.setdefault((kind, name in decay), []).append(param)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        base_lr = optimizer_kwargs.pop("lr", self.args.learning_rate)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if decayed else 0.0,
                "lr": base_lr * multiplier[kind],
            }
            for (kind, decayed), params in groups.items()
        ]
        self.optimizer = optimizer_cls(param_groups, lr=base_lr, **optimizer_kwargs)
        return self.optimizer

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        beta = self.current_beta() if model.training else self.args.beta
        if model.training:
            self.last_beta = beta
        rate = self.args.word_dropout_at(beta) if model.training else 0.0
        if rate > 0:
            inputs = self._word_dropout(model, inputs, rate)
        outputs = model(**inputs, beta=beta, kl_threshold=self.args.kl_threshold)
        if model.training:
            self._check_finite(outputs.loss)
            self._record(outputs, beta)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def _word_dropout(self, model, inputs: dict, rate: float) -> dict:
        """Targets from the clean decoder ids; inputs with tokens after BOS replaced by PAD at `rate`."""
        config = self.accelerator.unwrap_model(model).config
        if config.decoder_pad_token_id is None:
            raise ValueError("`decoder_word_dropout` needs config.decoder_pad_token_id (the replacement token)")
        inputs = dict(inputs)
        ids, mask = inputs["decoder_input_ids"], inputs.get("decoder_attention_mask")
        if mask is None:
            mask = torch.ones_like(ids)
        if "labels" not in inputs:
            inputs["labels"] = ids.masked_fill(mask == 0, -100)
        drop = (torch.rand(ids.shape, device=ids.device) < rate) & (mask == 1)
        drop[:, 0] = False
        inputs["decoder_input_ids"] = ids.masked_fill(drop, config.decoder_pad_token_id)
        return inputs

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # Evaluation reports the loss only; logits of a whole vocabulary per token are not worth gathering.
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # ------------------------------------------------------------------ divergence guard
    def _check_finite(self, loss: torch.Tensor) -> None:
        if not self.args.stop_on_nonfinite_loss:
            return
        bad = (~torch.isfinite(loss.detach().float())).float().reshape(1)
        if self.args.world_size > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        if bad.item() == 0:
            return
        out = self.args.output_dir
        last = last_complete_checkpoint(out) if out else None
        raise OptimusTrainingDivergedError(
            f"Optimus training diverged: the training loss is {loss.detach().float().item()} (or non-finite on "
            f"another process) at global step {self.state.global_step + 1} (β = {self.current_beta():g}, "
            f"λ = {self.args.kl_threshold:g}). Training stopped before that optimizer update, and no checkpoint or "
            f"final model was written after it. Last good checkpoint: {last or 'none (no checkpoint saved yet)'}. "
            "Check the data and the settings (learning rate, β, λ) before resuming from it with "
            "`--resume_from_checkpoint`."
        )

    # ------------------------------------------------------------------ logging
    def _reset_window(self) -> None:
        self._sums = torch.zeros(5, dtype=torch.float64)  # rec, kl, kl_thresholded, beta, tokens
        self._count = 0
        self._means: list[torch.Tensor] = []
        self._logvars: list[torch.Tensor] = []

    def _watch_collapse(self, logs: dict) -> None:
        """Compare a logging window's MI and AU with the collapse thresholds (only once β > 0: the autoencoder
        phase has no KL pressure); warn and mark `collapse_warning` on a breach."""
        mi, au, beta = logs["mutual_information"], logs["active_units"], logs["beta"]
        breach = beta > 0 and (
            (self.args.collapse_mi_threshold > 0 and mi < self.args.collapse_mi_threshold)
            or (self.args.collapse_min_active_units > 0 and au < self.args.collapse_min_active_units)
        )
        self.latent_health.append({"step": self.state.global_step, "beta": beta, "mutual_information": mi,
                                   "active_units": au, "kl": logs.get("kl"), "breach": breach})
        if breach:
            logs["collapse_warning"] = 1
            logger.warning(
                "posterior collapse suspected at step %d (β %.2f): MI %.2f nats (threshold %.2f), %d active units "
                "(minimum %d): the decoder is learning to ignore z", self.state.global_step, beta, mi,
                self.args.collapse_mi_threshold, au, self.args.collapse_min_active_units,
            )

    def _record(self, outputs, beta: float) -> None:
        n = outputs.reconstruction_loss.shape[0]
        tokens = outputs.num_tokens.sum().item()
        self._sums += torch.tensor(
            [
                outputs.reconstruction_loss.detach().sum().item(),
                outputs.kl.detach().sum().item(),
                outputs.kl_thresholded.detach().sum().item(),
                beta * n,
                tokens,
            ],
            dtype=torch.float64,
        )
        if self.time_estimate is not None:
            self.time_estimate.count_tokens(tokens, self.state.global_step)
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
                self._watch_collapse(logs)
            self._reset_window()
        super().log(logs, *args, **kwargs)


__all__ = [
    "OptimusTrainer",
    "TimeEstimateCallback",
    "OptimusTrainingArguments",
    "OptimusTrainingDivergedError",
    "cyclical_beta",
    "original_schedule_length",
]
