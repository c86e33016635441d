"""Checkpoints that are complete or absent, resume that skips incomplete ones, and whole-run training metrics.

`AtomicCheckpointMixin` (mixed into `OptimusTrainer` and `GANTrainer`, before `Trainer`):

- a checkpoint is written into `<output_dir>/.incomplete-checkpoint-N/checkpoint-N` and renamed to
  `<output_dir>/checkpoint-N` once everything (weights, optimizer, scheduler, RNG states, trainer state) is on disk:
  a full disk or a kill mid-save leaves only the `.incomplete-*` folder, which `get_last_checkpoint` never picks;
- `train(resume_from_checkpoint=True)` resumes from the newest *complete* checkpoint (it holds `trainer_state.json`
  and safetensors weights), skipping incomplete ones (e.g. written by an older version) with a warning; an explicit
  incomplete checkpoint path is a `ValueError` naming it;
- every checkpoint records the wall-clock seconds trained so far (`training_progress.json`), so
  `whole_run_train_metrics` can give `train_loss` and throughput over the whole run after a resume, not only over
  the resumed segment.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from typing import Any

logger = logging.getLogger(__name__)

PROGRESS_FILE = "training_progress.json"
INCOMPLETE_PREFIX = ".incomplete-"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """A checkpoint folder holding its trainer state and safetensors weights (written last / first by Trainer)."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, "trainer_state.json")) and any(
        os.path.isfile(os.path.join(path, name)) for name in _WEIGHTS
    )


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete `checkpoint-N` of `output_dir`; incomplete ones are skipped with a warning."""
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        return None
    found = sorted(
        ((int(m.group(1)), name) for name in os.listdir(output_dir) if (m := _CHECKPOINT.match(name))), reverse=True
    )
    for _, name in found:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path) and is_complete_checkpoint(path):
            return path
        logger.warning("skipping the incomplete checkpoint %s (no trainer_state.json or no weights)", path)
    return None


_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _save_failure(err: BaseException, run_dir: str, name: str, staging: str) -> BaseException:
    """The error to raise when writing `name` failed: a full disk (ENOSPC/EDQUOT, or torch's C++ writer's
    `iostream error` on a disk with little space left) says so, names the last complete checkpoint that is kept and
    how to resume; other errors pass unchanged."""
    free = None
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        pass
    disk_full = isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS
    if not disk_full and isinstance(err, RuntimeError) and free is not None and free < 64 * 2**20:
        disk_full = any(word in str(err) for word in ("iostream error", "write", "PytorchStreamWriter"))
    if not disk_full:
        return err
    last = last_complete_checkpoint(run_dir)
    kept = f"the last complete checkpoint, {last}, is kept" if last else "no earlier complete checkpoint exists"
    message = (
        f"the disk is full: writing {name} to {run_dir} failed ({err}); {kept} and the partial save is left in "
        f"{staging} (never resumed from). Free space (e.g. delete {staging}), then resume with "
        "resume_from_checkpoint=True (--resume_from_checkpoint)" + (f"; {free / 2**20:.0f} MiB free now" if free is not None else "")
    )
    logger.error(message)
    return OSError(errno.ENOSPC, message) if isinstance(err, OSError) else RuntimeError(message)


class AtomicCheckpointMixin:
    """See the module docstring. Mix in before `transformers.Trainer`."""

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"resume_from_checkpoint=True: no complete checkpoint in {self.args.output_dir}")
        elif isinstance(resume_from_checkpoint, (str, os.PathLike)) and not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(
                f"resume_from_checkpoint={os.fspath(resume_from_checkpoint)!r} is not a complete checkpoint (it needs "
                "trainer_state.json and safetensors weights); pass a complete one, or True for the newest complete one"
            )
        self._train_seconds_before = 0.0
        if resume_from_checkpoint:
            progress = os.path.join(os.fspath(resume_from_checkpoint), PROGRESS_FILE)
            if os.path.isfile(progress):
                with open(progress, encoding="utf-8") as f:
                    self._train_seconds_before = float(json.load(f).get("train_seconds", 0.0))
        self._segment_started = time.time()
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def train_seconds(self) -> float:
        """Wall-clock seconds trained over the whole run (all segments)."""
        started = getattr(self, "_segment_started", None)
        return getattr(self, "_train_seconds_before", 0.0) + (time.time() - started if started else 0.0)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial=trial)
        name = f"checkpoint-{self.state.global_step}"
        staging = os.path.join(run_dir, INCOMPLETE_PREFIX + name)
        if self.args.should_save and os.path.isdir(staging):
            shutil.rmtree(staging)  # left by an interrupted save of the same step
        self.accelerator.wait_for_everyone()
        self._get_output_dir = lambda trial=None: staging  # Trainer writes `staging/checkpoint-N`
        try:
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                with open(os.path.join(staging, name, PROGRESS_FILE), "w", encoding="utf-8") as f:
                    json.dump({"global_step": self.state.global_step, "train_seconds": round(self.train_seconds(), 3)}, f)
        except (OSError, RuntimeError) as err:
            raise _save_failure(err, run_dir, name, staging) from err
        finally:
            del self._get_output_dir
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.args.should_save:
            final = os.path.join(run_dir, name)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(os.path.join(staging, name), final)
            shutil.rmtree(staging, ignore_errors=True)
            best = self.state.best_global_step
            if best and os.path.isdir(os.path.join(run_dir, f"checkpoint-{best}")):
                self.state.best_model_checkpoint = os.path.join(run_dir, f"checkpoint-{best}")
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(
                output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True,
            )
        self.accelerator.wait_for_everyone()


def whole_run_train_metrics(trainer, segment_metrics: dict[str, Any]) -> dict[str, Any]:
    """`train_result.metrics` corrected for resumed runs: `train_loss` is the step-weighted mean of every logged
    loss of the run (`state.log_history` is restored on resume), and runtime / throughput cover every segment
    (`train_runtime` = seconds over all segments, from the checkpoints' `training_progress.json`)."""
    metrics = dict(segment_metrics)
    state = trainer.state
    start = getattr(trainer, "_initial_global_step", None)
    total, previous, in_segment = 0.0, 0, 0.0
    for row in state.log_history:
        if "loss" in row and "step" in row and row["step"] > previous:
            summed = float(row["loss"]) * (row["step"] - previous)
            total += summed
            if start is not None and previous >= start:
                in_segment += summed
            previous = row["step"]
    if start and previous and "train_loss" in metrics and state.global_step > start:
        # the steps after the last logged loss: the segment's sum minus what it logged
        tail = float(metrics["train_loss"]) * (state.global_step - start) - in_segment
        metrics["train_loss"] = (total + (tail if previous < state.global_step else 0.0)) / state.global_step
    seconds = trainer.train_seconds() if hasattr(trainer, "train_seconds") else None
    if seconds and seconds > 0 and state.global_step:
        args = trainer.args
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * max(args.world_size, 1)
        metrics["train_runtime"] = round(seconds, 4)
        metrics["train_steps_per_second"] = round(state.global_step / seconds, 3)
        metrics["train_samples_per_second"] = round(state.global_step * batch / seconds, 3)
    return metrics


__all__ = ["AtomicCheckpointMixin", "is_complete_checkpoint", "last_complete_checkpoint", "whole_run_train_metrics"]
