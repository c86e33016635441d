"""`Trainer` for [`OptimusForDialogResponse`]: the model's forward returns the SpaceFusion objective (three-branch
reconstruction + fusion regulariser); the trainer freezes the encoder's first layers when asked (the original's
`--freeze_bert --num_frozen_bert_layer N`), stops on a non-finite loss, and logs the loss terms."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainingArguments

from hf_dgm.modules.validation import check_float


class DialogTrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class OptimusDialogTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the original's defaults (AdamW lr 5e-5, eps 1e-8, no weight decay, linear decay
    without warm-up, gradient clipping 1.0) and the dialog model's options."""

    freeze_encoder_layers: int = field(
        default=0,
        metadata={"help": "freeze the encoder's first N transformer layers (the original's DailyDialog script: 10 of "
                          "bert-base's 12); the embeddings, the S2S layers, the heads and the decoder still train"},
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep the context and decoder columns"})
    logging_nan_inf_filter: bool = field(default=False, metadata={"help": "report non-finite losses as they are"})

    def __post_init__(self):
        for name in ("learning_rate", "adam_epsilon", "max_grad_norm", "weight_decay"):
            setattr(self, name, check_float(getattr(self, name), name, minimum=0.0))
        if not isinstance(self.freeze_encoder_layers, int) or self.freeze_encoder_layers < 0:
            raise ValueError(f"`freeze_encoder_layers` must be an int >= 0; got {self.freeze_encoder_layers!r}")
        super().__post_init__()


def freeze_encoder_layers(model, count: int) -> int:
    """Stop gradients to the first `count` layers of the Optimus encoder; returns the number of frozen tensors."""
    layers = model.optimus.encoder.encoder.layer
    if count > len(layers):
        raise ValueError(f"`freeze_encoder_layers`={count} exceeds the encoder's {len(layers)} layers")
    frozen = 0
    for layer in layers[:count]:
        for parameter in layer.parameters():
            parameter.requires_grad_(False)
            frozen += 1
    return frozen


class OptimusDialogTrainer(Trainer):
    """Logs `rec_loss`, `rec_ae`, `rec_s2s`, `rec_interp`, `fusion`, `pull`, `push` (means over the logging window)."""

    LOGGED = ("rec_loss", "rec_ae", "rec_s2s", "rec_interp", "fusion", "pull", "push")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.freeze_encoder_layers:
            freeze_encoder_layers(self.model, self.args.freeze_encoder_layers)
        self._reset_window()

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        outputs = model(**inputs)
        loss = outputs.loss
        if model.training:
            if not torch.isfinite(loss.detach()).all():
                raise DialogTrainingDivergedError(
                    f"the training loss is {loss.detach().float().item()} at global step {self.state.global_step + 1}; "
                    "training stopped before that update (check the data, the learning rate and fusion_weight)"
                )
            self._record(outputs)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        with torch.no_grad():
            loss = model(**inputs).loss
        return loss.detach(), None, None

    def _reset_window(self) -> None:
        self._sums = torch.zeros(len(self.LOGGED), dtype=torch.float64)
        self._count = 0

    def _record(self, outputs) -> None:
        branches = outputs.branch_reconstruction_losses.detach().double().mean(0).cpu()
        values = [outputs.reconstruction_loss.detach().double().mean().item(), *branches.tolist(),
                  outputs.fusion_loss.item(), outputs.pull_distance.item(), outputs.push_distance.item()]
        self._sums += torch.tensor(values, dtype=torch.float64)
        self._count += 1

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self._count > 0 and "loss" in logs:
            for name, total in zip(self.LOGGED, (self._sums / self._count).tolist()):
                logs[name] = round(total, 4)
            self._reset_window()
        super().log(logs, *args, **kwargs)


__all__ = [
    "DialogTrainingDivergedError",
    "OptimusDialogTrainer",
    "OptimusDialogTrainingArguments",
    "freeze_encoder_layers",
]
