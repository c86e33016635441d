"""Fine-tune the Prevalent R2R agent (R2R-EnvDrop with the Prevalent encoder) with its own `accelerate` loop.

    accelerate launch training/finetune_r2r.py --recipe training/recipes/prevalent_r2r.yaml --pretrained runs/prevalent

As PREVALENT_R2R does it:

* stage 1 (`stage1_iters`): the whole Prevalent encoder is frozen; the BiLSTM, decoder and critic train at
  `learning_rate`;
* stage 2 (`stage2_iters`): the cross-modal layers are tuned as well, at `learning_rate * stage2_encoder_lr_ratio`
  (the original: 2e-6 against 2e-5);
* `feedback sample`: per iteration, a teacher-forced imitation rollout (cross-entropy × `ml_weight`, summed over
  steps, divided by the batch size) plus a sampled A2C rollout on the same episodes: reward +2/−2 at STOP within /
  outside 3 m of the goal, else +1/−1 by the sign of the reduction in distance to the goal; returns discounted with
  γ = `gamma`, bootstrapped by the critic where the episode has not ended; policy-gradient with advantage
  (return − value), ½ squared error for the critic, entropy bonus `entropy_weight`; the RL loss normalised by the
  number of live steps; RMSprop; gradients clipped at `max_grad_norm`. `feedback teacher` is imitation alone.

The whole rollout runs inside one forward of a small wrapper module, so under DDP each backward follows exactly one
forward of the wrapped module and gradients are synchronised. Each process walks its own shuffled stream of episodes.

Output folder: the agent (`PrevalentForNavigation`, safetensors) + tokenizer, `finetune_metrics.json` (val_seen TL,
NE, SR, OSR, SPL, nDTW, SDTW with the `hf_dgm.vln` evaluator), `history.json` (one row per iteration),
`val_seen_submission.json`, `recipe.yaml`, and `checkpoint-N/` for resume.

**Checkpoints** (every `save_every` iterations and at the end; the newest `save_total_limit` kept) are
`accelerator.save_state` folders: the model (`model.safetensors`), the optimizer and the stage's lr scheduler, every
process's RNG states (python, numpy, torch) and episode-sampler position (`sampler_state_<rank>.json`), plus `trainer_state.json` (iteration, stage, the logged history, seconds trained). As for the Trainer-based runs
(`hf_dgm.training.checkpoints`), a checkpoint is written into `.incomplete-checkpoint-N/checkpoint-N` and renamed to
`checkpoint-N` once complete; rerunning the same command resumes from the newest complete one
(`last_complete_checkpoint`: partial ones are skipped with a warning) and continues exactly as an uninterrupted run
(same weights and history, bitwise on the same machine: tests/test_prevalent_finetune_resume.py kills a run with
SIGKILL). The stage switch builds a new optimizer (as the original) and re-prepares the model, so a checkpoint
always holds one model, one optimizer and one scheduler. Checkpoints hold accelerate's pickles (RNG states, optimizer):
resume only from folders you wrote; the top-level run folder stays pickle-free.

**Trackers**: `report_to` as `TrainingArguments.report_to` (default "none"; "all", or a comma-separated list such as
"tensorboard,wandb"): `Accelerator(log_with=...)` gets every history row's numbers at its iteration (loss, ml_loss,
rl_loss, sample_steps, sample_success, learning_rate, stage, val_seen_* when evaluated) and the final val_seen
metrics as `final/val_seen_*`; TensorBoard writes under `<output_dir>/runs/prevalent-finetune`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hf_dgm.models.prevalent.pipeline_prevalent import greedy_navigate, observation_tensors, start_action_features

logger = logging.getLogger(__name__)

TRAINER_STATE_FILE = "trainer_state.json"
SAMPLER_STATE_FILE = "sampler_state_{}.json"


@dataclass
class FinetuneArguments:
    output_dir: str = field(default="runs/prevalent-r2r")
    data_dir: str = field(default="../shared/data/r2r")
    pretrained: str | None = field(default=None, metadata={"help": "Prevalent pretraining folder; none = from scratch"})
    init_bert: str | None = field(default="minilm", metadata={"help": "from scratch: BERT to initialise the text layers ('minilm', a folder, or 'none')"})
    la_layers: int = field(default=6, metadata={"help": "from scratch only (the pretrained folder's config otherwise)"})
    vl_layers: int = field(default=2, metadata={"help": "from scratch only"})
    features: str | None = field(default=None, metadata={"help": "view-feature store; none = geometry-only"})
    vision_feature_size: int = field(default=0)
    angle_feature_size: int = field(default=128)
    nav_hidden_size: int = field(default=512)
    feedback: str = field(default="sample", metadata={"help": "sample (imitation + A2C) or teacher (imitation only)"})
    ml_weight: float = field(default=0.2)
    gamma: float = field(default=0.9)
    entropy_weight: float = field(default=0.01)
    learning_rate: float = field(default=1e-4)
    stage2_encoder_lr_ratio: float = field(default=0.1)
    stage1_iters: int = field(default=200)
    stage2_iters: int = field(default=0)
    batch_size: int = field(default=16)
    max_grad_norm: float = field(default=40.0)
    max_train_items: int | None = field(default=None)
    max_eval_items: int | None = field(default=None, metadata={"help": "val_seen instructions for evaluation (all by default)"})
    eval_every: int = field(default=0, metadata={"help": "evaluate on val_seen every N iterations (0 = only at the end)"})
    save_every: int = field(default=100, metadata={"help": "checkpoint every N iterations (and always at the end)"})
    save_total_limit: int | None = field(default=1, metadata={"help": "keep the newest N checkpoints (None/0 = all)"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler per stage, over its iterations"})
    report_to: str = field(default="none", metadata={"help": "trackers, as TrainingArguments.report_to: none, all, or a comma-separated list (tensorboard, wandb, ...)"})
    eval_batch_size: int = field(default=64)
    seed: int = field(default=0)
    use_cpu: bool = field(default=False)


# --------------------------------------------------------------------------------------------------------- rollout
class NavigationRollout(nn.Module):
    """Wraps the agent; `forward(env, obs, input_ids, attention_mask, ...)` runs whole episodes and returns the loss."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, env, indices, input_ids, attention_mask, feedback: str, ml_weight: float, gamma: float, entropy_weight: float):
        logs: dict[str, float] = {}
        loss = input_ids.new_zeros((), dtype=torch.float32)
        ml_loss = loss
        if ml_weight or feedback == "teacher":
            obs = env.reset(indices)
            ml_loss = self._rollout(env, obs, input_ids, attention_mask, "teacher", logs)["ml_loss"]
            loss = loss + ml_loss * (ml_weight if feedback == "sample" else 1.0) / input_ids.shape[0]
        if feedback == "sample":
            obs = env.reset(indices)
            out = self._rollout(env, obs, input_ids, attention_mask, "sample", logs, gamma=gamma, entropy_weight=entropy_weight)
            loss = loss + out["rl_loss"]
        logs["ml_loss"] = ml_loss.item() / input_ids.shape[0]
        return loss, logs

    def _rollout(self, env, obs, input_ids, attention_mask, mode, logs, gamma=0.9, entropy_weight=0.01):
        """One batch of episodes, to the end: `mode` "teacher" follows the teacher actions and sums their
        cross-entropy (`ml_loss`); "sample" samples the actions and adds the normalised A2C loss (`rl_loss`)."""
        model, config, device = self.model, self.model.config, input_ids.device
        first = observation_tensors(obs, config.vision_feature_size, config.angle_feature_size, device)
        enc = model.encode(input_ids, attention_mask, first["candidate_features"], first["candidate_mask"].long())
        tilde, cell = enc.hidden, enc.cell
        previous = start_action_features(obs, config.angle_feature_size, device)
        ended = np.zeros(len(obs), dtype=bool)
        ml_loss = input_ids.new_zeros((), dtype=torch.float32)
        trace = _SampledEpisodes(np.array([ob["distance"] for ob in obs], dtype=np.float32))
        tensors = first
        for t in range(config.max_action_length):
            if t:
                tensors = observation_tensors(obs, config.vision_feature_size, config.angle_feature_size, device)
            cands = tensors["candidate_features"]
            step = model.decode_step(previous, tensors["view_features"], cands, tensors["candidate_mask"], tilde, cell,
                                     enc.context, enc.context_mask)  # fmt: skip
            tilde, cell = step.attended_hidden, step.cell
            if mode == "teacher":
                target = _teacher_targets(obs, ended, stop_column=cands.shape[1], device=device)
                ml_loss = ml_loss + F.cross_entropy(step.logits, target, ignore_index=-100, reduction="sum")
                chosen = target.clone()
            else:
                dist = torch.distributions.Categorical(logits=step.logits)
                chosen = dist.sample()
                trace.record_choice(dist, chosen, model.value(tilde))
            actions, previous = _take_choices(chosen, ended, cands, previous, config.vision_feature_size)
            obs = env.step(actions)
            if mode == "sample":
                trace.record_rewards(obs, actions, ended)
            ended |= np.array([a == -1 for a in actions])
            if ended.all():
                break
        out = {"ml_loss": ml_loss}
        if mode == "sample":
            # bootstrap with the critic where the episode is still running
            with torch.no_grad():
                tensors = observation_tensors(obs, config.vision_feature_size, config.angle_feature_size, device)
                last = model.decode_step(previous, tensors["view_features"], tensors["candidate_features"],
                                         tensors["candidate_mask"], tilde, cell, enc.context, enc.context_mask)  # fmt: skip
                bootstrap = model.value(last.attended_hidden).cpu().numpy()
            out["rl_loss"] = trace.a2c_loss(np.where(ended, 0.0, bootstrap), gamma, entropy_weight, device)
            logs.update(trace.summary(out["rl_loss"]))
        return out


def _teacher_targets(obs: list[dict], ended: np.ndarray, stop_column: int, device) -> torch.Tensor:
    """(batch,) the teacher's candidate index per episode (`stop_column` for STOP; -100, ignored, once ended)."""
    return torch.tensor(
        [-100 if ended[i] else (stop_column if ob["teacher"] == -1 else ob["teacher"]) for i, ob in enumerate(obs)],
        device=device,
    )


def _take_choices(chosen: torch.Tensor, ended: np.ndarray, candidates: torch.Tensor, previous: torch.Tensor,
                  vision_feature_size: int) -> tuple[list[int], torch.Tensor]:
    """(environment actions, next "previous action" features) from the chosen columns of `candidates` (B, K, F):
    the STOP column K, a negative index or an ended episode is action -1 with zero features; otherwise the
    candidate's index and the angle part of its features."""
    stop_column = candidates.shape[1]
    chosen_np = chosen.cpu().numpy()
    actions = []
    features = torch.zeros_like(previous)
    for i in range(len(chosen_np)):
        a = int(chosen_np[i])
        if ended[i] or a == stop_column or a < 0:
            actions.append(-1)
        else:
            actions.append(a)
            features[i] = candidates[i, a, vision_feature_size:]
    return actions, features


class _SampledEpisodes:
    """What a sampled (A2C) rollout keeps per step: log-probabilities, entropies and critic values of the chosen
    actions, rewards and live masks, and each episode's latest distance to the goal."""

    def __init__(self, distance: np.ndarray):
        self.last_distance = distance
        self.log_probs, self.entropies, self.values, self.rewards, self.masks = [], [], [], [], []

    def record_choice(self, dist, chosen: torch.Tensor, value: torch.Tensor) -> None:
        self.log_probs.append(dist.log_prob(chosen))
        self.entropies.append(dist.entropy())
        self.values.append(value)

    def record_rewards(self, obs: list[dict], actions: list[int], ended: np.ndarray) -> None:
        """Rewards of the step that led to `obs`: +2/−2 at STOP within/outside 3 m of the goal, else the sign of the
        reduction in distance to the goal; 0 (and masked out) for episodes that had already ended."""
        reward = np.zeros(len(obs), dtype=np.float32)
        mask = (~ended).astype(np.float32)
        distance = np.array([ob["distance"] for ob in obs], dtype=np.float32)
        for i in range(len(obs)):
            if ended[i]:
                continue
            if actions[i] == -1:
                reward[i] = 2.0 if distance[i] < 3.0 else -2.0
            else:
                reward[i] = float(np.sign(self.last_distance[i] - distance[i]))
        self.rewards.append(reward)
        self.masks.append(mask)
        self.last_distance = distance

    def a2c_loss(self, bootstrap: np.ndarray, gamma: float, entropy_weight: float, device) -> torch.Tensor:
        """Policy gradient with advantage (return − value), ½ squared error for the critic and the entropy bonus,
        over the returns discounted by `gamma` from `bootstrap` (batch,); normalised by the number of live steps."""
        discounted = bootstrap.astype(np.float32)
        rl_loss = torch.zeros((), dtype=torch.float32, device=device)
        self.live_steps = 0.0
        for t in range(len(self.rewards) - 1, -1, -1):
            discounted = discounted * gamma + self.rewards[t]
            mask = torch.from_numpy(self.masks[t]).to(device)
            returns = torch.from_numpy(discounted.copy()).to(device)
            advantage = (returns - self.values[t]).detach()
            rl_loss = rl_loss + (-self.log_probs[t] * advantage * mask).sum()
            rl_loss = rl_loss + ((returns - self.values[t]) ** 2 * mask).sum() * 0.5
            rl_loss = rl_loss - (entropy_weight * self.entropies[t] * mask).sum()
            self.live_steps += float(self.masks[t].sum())
        return rl_loss / max(self.live_steps, 1.0)

    def summary(self, rl_loss: torch.Tensor) -> dict[str, float]:
        """The logged numbers of the rollout (after `a2c_loss`)."""
        batch = len(self.last_distance)
        return {"rl_loss": rl_loss.item(), "sample_steps": self.live_steps / batch,
                "sample_success": float(np.mean([d < 3.0 for d in self.last_distance]))}  # fmt: skip


# --------------------------------------------------------------------------------------------------------- helpers
class EpisodeSampler:
    """Batches of episode indices from a reshuffled permutation per epoch (its own stream per process)."""

    def __init__(self, size: int, batch_size: int, seed: int = 0):
        self.size, self.batch_size = size, batch_size
        self.rng = np.random.RandomState(seed)
        self.order, self.cursor = self.rng.permutation(size), 0

    def next(self) -> list[int]:
        if self.cursor + self.batch_size > self.size:
            self.order, self.cursor = self.rng.permutation(self.size), 0
        batch = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += len(batch)
        return [int(i) for i in batch]

    # the position in the stream is part of a checkpoint (one JSON file per process: each walks its own stream)
    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, cached = self.rng.get_state()
        return {"rng": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)], "order": self.order.tolist(),
                "cursor": self.cursor}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        kind, keys, pos, has_gauss, cached = state["rng"]
        self.rng.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        self.order, self.cursor = np.asarray(state["order"], dtype=np.int64), int(state["cursor"])


def tokenize(tokenizer, obs: list[dict], device) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer([ob["instruction"] for ob in obs], padding=True, truncation=True, max_length=80, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


@torch.no_grad()
def evaluate_agent(model, tokenizer, dataset, graphs, features=None, batch_size: int = 64, device="cpu") -> tuple[dict, list[dict]]:
    """Greedy rollouts over every episode of `dataset`; (vln metrics summary, submission entries)."""
    from hf_dgm.vln import R2REnv
    from hf_dgm.vln.evaluation import score_submission

    was_training = model.training
    model.eval()
    env = R2REnv(dataset, graphs, features=features, batch_size=batch_size, angle_feat_size=model.config.angle_feature_size)
    env.clear_results()
    for _ in range(env.num_batches):
        obs = env.reset()
        ids, mask = tokenize(tokenizer, obs, device)
        greedy_navigate(model, env, ids, mask, obs)
    submission = env.results()
    summary, _ = score_submission(submission, dataset, graphs)
    model.train(was_training)
    return summary, submission


def build_agent(args: FinetuneArguments, tokenizer):
    """The navigation agent: from a Prevalent pretraining folder, or from scratch (text layers from a BERT)."""
    from transformers import AutoConfig

    from hf_dgm.models.prevalent import PrevalentForNavigation, PrevalentNavigationConfig
    from hf_dgm.training.prevalent.pretrain import _bert_path

    overrides = {"nav_hidden_size": args.nav_hidden_size}
    if args.pretrained:
        config = PrevalentNavigationConfig.from_pretraining_config(AutoConfig.from_pretrained(args.pretrained), **overrides)
        if config.vision_feature_size != args.vision_feature_size:
            raise ValueError(f"{args.pretrained} was pretrained with vision_feature_size={config.vision_feature_size}; "
                             f"--vision_feature_size is {args.vision_feature_size}")  # fmt: skip
        return PrevalentForNavigation.from_pretrained(args.pretrained, config=config)
    path = _bert_path(args.init_bert)
    sizes = {}
    if path is not None:
        bert = AutoConfig.from_pretrained(path)
        sizes = {k: getattr(bert, k) for k in ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size",
                                               "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "hidden_act")}  # fmt: skip
    config = PrevalentNavigationConfig(
        la_layers=args.la_layers, vl_layers=args.vl_layers, vision_feature_size=args.vision_feature_size,
        angle_feature_size=args.angle_feature_size, pad_token_id=tokenizer.pad_token_id, **sizes, **overrides,
    )  # fmt: skip
    model = PrevalentForNavigation(config)
    if path is not None:
        model.prevalent.load_bert_weights(path)
    return model


def set_stage(model, stage: int, args: FinetuneArguments):
    """Freeze/unfreeze for the stage and return the RMSprop optimizer over the trainable parameters."""
    for p in model.prevalent.parameters():
        p.requires_grad_(False)
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("prevalent.")], "lr": args.learning_rate}]
    if stage == 2:
        encoder = [p for p in model.prevalent.cross_modal_layers.parameters()]
        for p in encoder:
            p.requires_grad_(True)
        if encoder:
            groups.append({"params": encoder, "lr": args.learning_rate * args.stage2_encoder_lr_ratio})
    return torch.optim.RMSprop(groups, lr=args.learning_rate)


def parse_args(argv: list[str] | None = None):
    """(FinetuneArguments, recipe path) from `--recipe FILE` plus overriding flags (`hf_dgm.training.recipes`
    rules: recipe paths starting with ./ or ../ are relative to the recipe file)."""
    from hf_dgm.training.recipes import parse_recipe_args, split_recipe_flag

    argv = list(sys.argv[1:] if argv is None else argv)
    recipe, _ = split_recipe_flag(argv)
    (args,) = parse_recipe_args((FinetuneArguments,), argv)
    if args.feedback not in ("sample", "teacher"):
        raise ValueError(f"--feedback must be 'sample' or 'teacher'; got {args.feedback!r}")
    return args, recipe


def _report_to(value) -> list[str] | str | None:
    """`report_to` as `TrainingArguments` reads it: "none" (or empty) = no tracker, "all" = every installed one, else
    a comma-separated list of accelerate tracker names ("tensorboard", "wandb", ...)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    value = [v for v in value if v != "none"]
    if not value:
        return None
    return "all" if "all" in value else value


def _tracker_values(row: dict) -> dict:
    """The numeric entries of a history row (what a tracker can plot)."""
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _prepare_stage(accelerator, model, stage: int, args: FinetuneArguments):
    """(rollout, optimizer, scheduler) of `stage`, prepared by `accelerator` as its ONLY model/optimizer/scheduler, so
    that `save_state` / `load_state` always see one of each (the stage switch rebuilds the optimizer, as the original
    does, and re-wraps the model so that DDP sees the newly trainable encoder layers)."""
    from transformers.optimization import get_scheduler

    accelerator.free_memory()  # forget the previous stage's objects
    optimizer = set_stage(model, stage, args)
    iters = args.stage1_iters if stage == 1 else args.stage2_iters
    # accelerate steps a prepared scheduler once per process per iteration
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=0,
                              num_training_steps=max(iters, 1) * accelerator.num_processes)  # fmt: skip
    return accelerator.prepare(NavigationRollout(model), optimizer, scheduler)


def _publish_checkpoint(staging: Path, final: Path) -> None:
    """The atomic step: a complete staging folder becomes `checkpoint-N` (the only step a kill cannot split)."""
    import shutil

    if final.is_dir():
        shutil.rmtree(final)
    os.replace(staging, final)


def _save_checkpoint(accelerator, out: Path, iteration: int, trainer_state: dict, save_total_limit: int | None,
                     sampler: EpisodeSampler) -> None:
    """`accelerator.save_state` (model, optimizer, scheduler, every process's RNG states), every process's episode
    sampler position (`sampler_state_<rank>.json`, beside accelerate's `random_states_<rank>.pkl`) and
    `trainer_state.json` (iteration, stage, logged history, seconds trained) into
    `<out>/.incomplete-checkpoint-N/checkpoint-N`, renamed to `<out>/checkpoint-N` once complete (as
    `hf_dgm.training.checkpoints.AtomicCheckpointMixin` does for the Trainer-based runs). Every process calls it."""
    import shutil

    from hf_dgm.training.checkpoints import INCOMPLETE_PREFIX

    name = f"checkpoint-{iteration}"
    staging_root = out / (INCOMPLETE_PREFIX + name)
    if accelerator.is_main_process and staging_root.is_dir():
        shutil.rmtree(staging_root)  # left by an interrupted save of the same iteration
    accelerator.wait_for_everyone()
    staging = staging_root / name
    accelerator.save_state(str(staging))
    (staging / SAMPLER_STATE_FILE.format(accelerator.process_index)).write_text(json.dumps(sampler.state_dict()))
    accelerator.wait_for_everyone()  # every process has written its RNG state
    if accelerator.is_main_process:
        # written last: `is_complete_checkpoint` needs it (and the weights)
        (staging / TRAINER_STATE_FILE).write_text(json.dumps(trainer_state))
        _publish_checkpoint(staging, out / name)
        shutil.rmtree(staging_root, ignore_errors=True)
        if save_total_limit:
            _rotate_checkpoints(out, save_total_limit)
    accelerator.wait_for_everyone()


def _rotate_checkpoints(out: Path, keep: int) -> None:
    import re
    import shutil

    found = sorted((int(m.group(1)), p) for p in out.iterdir() if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    for _, path in found[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class _FinetuneData:
    """What the loop reads: the tokenizer, the navigation graphs, the view-feature store (or None), the training
    episodes with their environment, and val_seen."""

    tokenizer: object
    graphs: object
    features: object
    train: object
    val: object
    env: object


@dataclass
class _RunState:
    """Where the run stands (restored from a checkpoint's trainer_state.json): the iteration it starts from, the
    stage, the logged history, the seconds trained before this process started and those trained since."""

    start_iteration: int = 0
    stage: int = 1
    history: list[dict] = field(default_factory=list)
    seconds_before: float = 0.0
    train_seconds: float = 0.0
    train_iterations: int = 0

    def trainer_state(self, iteration: int) -> dict:
        """The trainer_state.json of a checkpoint at `iteration`."""
        return {"iteration": iteration, "stage": self.stage, "history": self.history,
                "train_seconds": round(self.seconds_before + self.train_seconds, 3)}  # fmt: skip


def _make_accelerator(args: FinetuneArguments, out: Path):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    # the critic is idle in imitation-only iterations: let DDP skip parameters without gradients
    return Accelerator(
        cpu=args.use_cpu,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        log_with=_report_to(args.report_to),
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "runs")),
    )


def _load_data(args: FinetuneArguments) -> _FinetuneData:
    from hf_dgm.training.prevalent.pretrain import load_tokenizer
    from hf_dgm.vln import NavGraphs, R2RDataset, R2REnv, load_feature_store

    tokenizer = load_tokenizer(args.pretrained or args.init_bert)
    graphs = NavGraphs.from_dir(Path(args.data_dir) / "connectivity")
    features = load_feature_store(args.features) if args.features else None
    train = R2RDataset.load(args.data_dir, "train")
    if args.max_train_items:
        train = train.select(range(min(args.max_train_items, len(train))))
    val = R2RDataset.load(args.data_dir, "val_seen")
    if args.max_eval_items:
        val = val.select(range(min(args.max_eval_items, len(val))))
    env = R2REnv(train, graphs, features=features, batch_size=args.batch_size, angle_feat_size=args.angle_feature_size)
    return _FinetuneData(tokenizer, graphs, features, train, val, env)


def _resume_state(out: Path, args: FinetuneArguments) -> tuple[str | None, _RunState]:
    """(the newest complete checkpoint of `out` or None, the run state it holds)."""
    from hf_dgm.training.checkpoints import last_complete_checkpoint

    checkpoint = last_complete_checkpoint(out) if out.is_dir() else None
    state = json.loads((Path(checkpoint) / TRAINER_STATE_FILE).read_text()) if checkpoint else {}
    start_iter = int(state.get("iteration", 0))
    # the stage the checkpoint's optimizer belongs to (a checkpoint at the last stage-1 iteration holds stage 1's)
    stage = int(state.get("stage", 1 if start_iter < args.stage1_iters else 2))
    return checkpoint, _RunState(start_iter, stage, list(state.get("history", [])), float(state.get("train_seconds", 0.0)))


def _restore_checkpoint(accelerator, checkpoint: str, sampler: EpisodeSampler, run: _RunState) -> None:
    """Model, optimizer, scheduler and RNG states from `checkpoint`, and this process's episode-sampler position."""
    accelerator.load_state(checkpoint)
    sampler_file = Path(checkpoint) / SAMPLER_STATE_FILE.format(accelerator.process_index)
    if sampler_file.is_file():
        sampler.load_state_dict(json.loads(sampler_file.read_text()))
    else:  # e.g. resumed with more processes than were saved
        logger.warning("%s has no %s: process %d starts a fresh episode stream", checkpoint, sampler_file.name,
                       accelerator.process_index)  # fmt: skip
    logger.info("resuming from %s (iteration %d, stage %d)", checkpoint, run.start_iteration, run.stage)


def _train_step(accelerator, rollout, optimizer, scheduler, data: _FinetuneData, sampler: EpisodeSampler,
                args: FinetuneArguments, run: _RunState) -> tuple[torch.Tensor, dict]:
    """One timed iteration on the sampler's next episodes: rollouts, backward, clipping, optimizer and scheduler
    step; (loss, the rollouts' logs)."""
    tic = time.perf_counter()
    rollout.train()
    indices = sampler.next()
    ids, mask = tokenize(data.tokenizer, [data.env.items[i] for i in indices], accelerator.device)
    loss, logs = rollout(data.env, indices, ids, mask, args.feedback, args.ml_weight, args.gamma, args.entropy_weight)
    accelerator.backward(loss)
    if args.max_grad_norm:
        accelerator.clip_grad_norm_([p for p in rollout.parameters() if p.requires_grad], args.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    run.train_seconds += time.perf_counter() - tic
    run.train_iterations += 1
    return loss, logs


def _history_row(accelerator, model, iteration: int, loss: torch.Tensor, logs: dict, scheduler, data: _FinetuneData,
                 args: FinetuneArguments, run: _RunState) -> dict:
    """The logged row of `iteration` (1-based), with the val_seen metrics every `eval_every` iterations."""
    row = {"iteration": iteration, "stage": run.stage, "loss": loss.item(), **logs,
           "learning_rate": scheduler.get_last_lr()[0]}  # fmt: skip
    if args.eval_every and iteration % args.eval_every == 0 and accelerator.is_main_process:
        summary, _ = evaluate_agent(model, data.tokenizer, data.val, data.graphs, data.features, args.eval_batch_size,
                                    accelerator.device)  # fmt: skip
        row.update({f"val_seen_{k}": v for k, v in summary.items()})
        logger.info("iteration %d val_seen %s", iteration, summary)
    return row


def _evaluate_and_save(accelerator, model, data: _FinetuneData, args: FinetuneArguments, run: _RunState,
                       recipe: str | None) -> dict:
    """Main process: the final val_seen evaluation, then the agent, tokenizer, metrics, history, submission and
    recipe into the output folder; returns the metrics."""
    import yaml

    out = Path(args.output_dir)
    tic = time.perf_counter()
    summary, submission = evaluate_agent(model, data.tokenizer, data.val, data.graphs, data.features, args.eval_batch_size,
                                         accelerator.device)  # fmt: skip
    eval_seconds = time.perf_counter() - tic
    metrics = {f"val_seen_{k}": v for k, v in summary.items()}
    metrics.update({
        "train_iterations": run.train_iterations,
        "train_seconds": run.train_seconds,
        "train_episodes_per_second": run.train_iterations * args.batch_size / max(run.train_seconds, 1e-9),
        "train_seconds_whole_run": run.seconds_before + run.train_seconds,
        "resumed_from_iteration": run.start_iteration,
        "eval_seconds": eval_seconds,
        "pretrained": args.pretrained,
    })  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    data.tokenizer.save_pretrained(out)
    (out / "finetune_metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "history.json").write_text(json.dumps(run.history))
    (out / "val_seen_submission.json").write_text(json.dumps(submission))
    (out / "recipe.yaml").write_text(yaml.safe_dump({"recipe": recipe, **asdict(args)}, sort_keys=False))
    return metrics


def train_agent(args: FinetuneArguments, recipe: str | None = None) -> dict:
    """Fine-tune the agent (resuming from the newest complete checkpoint of `output_dir`), checkpointing as it goes;
    then evaluate and save it. Returns the final metrics on the main process, {} on the others."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    out = Path(args.output_dir)
    accelerator = _make_accelerator(args, out)
    set_seed(args.seed + accelerator.process_index)
    data = _load_data(args)
    sampler = EpisodeSampler(len(data.train), args.batch_size, seed=args.seed + 1000 * accelerator.process_index)
    model = build_agent(args, data.tokenizer)
    total_iters = args.stage1_iters + args.stage2_iters
    checkpoint, run = _resume_state(out, args)
    rollout, optimizer, scheduler = _prepare_stage(accelerator, model, run.stage, args)
    if checkpoint:
        _restore_checkpoint(accelerator, checkpoint, sampler, run)
    if accelerator.log_with:
        config = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in asdict(args).items()}
        accelerator.init_trackers("prevalent-finetune", config=config)
    saved_at = run.start_iteration if checkpoint else -1
    progress = tqdm(range(run.start_iteration, total_iters), disable=not accelerator.is_local_main_process, desc="fine-tune")
    for it in progress:
        if it == args.stage1_iters and run.stage == 1:
            run.stage = 2
            rollout, optimizer, scheduler = _prepare_stage(accelerator, accelerator.unwrap_model(rollout).model, 2, args)
        loss, logs = _train_step(accelerator, rollout, optimizer, scheduler, data, sampler, args, run)
        progress.set_postfix(loss=f"{loss.item():.3f}", stage=run.stage, **{k: f"{v:.3f}" for k, v in logs.items()})
        row = _history_row(accelerator, accelerator.unwrap_model(rollout).model, it + 1, loss, logs, scheduler, data, args, run)
        run.history.append(row)
        accelerator.log(_tracker_values(row), step=it + 1)
        if args.save_every and (it + 1) % args.save_every == 0:
            _save_checkpoint(accelerator, out, it + 1, run.trainer_state(it + 1), args.save_total_limit, sampler)
            saved_at = it + 1
    model = accelerator.unwrap_model(rollout).model
    if saved_at != total_iters:  # the end state, so that a longer rerun continues from here
        _save_checkpoint(accelerator, out, total_iters, run.trainer_state(total_iters), args.save_total_limit, sampler)
    metrics = _evaluate_and_save(accelerator, model, data, args, run, recipe) if accelerator.is_main_process else {}
    accelerator.log({f"final/{k}": v for k, v in _tracker_values(metrics).items()}, step=total_iters)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes the trackers (and, under DDP, the process group)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args, recipe = parse_args(argv)
    metrics = train_agent(args, recipe)
    if metrics:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}, indent=2))
    return metrics


# ------------------------------------------------------------------------------------------- evaluation entry point
def add_arguments(parser) -> None:
    """`python -m hf_dgm.evaluate prevalent_navigation MODEL_DIR --data DIR [--split val_seen]`."""
    parser.add_argument("model", help="folder of a PrevalentForNavigation agent (with its tokenizer)")
    parser.add_argument("--data", default="../shared/data/r2r", help="folder with R2R_<split>.json and connectivity/")
    parser.add_argument("--split", default="val_seen")
    parser.add_argument("--features", default=None, help="view-feature store, when the agent has an image part")
    parser.add_argument("--max_items", type=int, default=None, help="the first N instructions only")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--predictions", default=None, help="also write the submission JSON here")
    parser.add_argument("--output", default=None, help="write the metrics JSON here")


def run(args) -> dict:
    """Greedy rollouts of a saved agent on a split with goals, scored with the hf_dgm.vln evaluator."""
    from transformers import AutoModel, AutoTokenizer

    from hf_dgm.vln import NavGraphs, R2RDataset, load_feature_store

    if not R2RDataset.has_goals(args.split):
        raise ValueError(f"the {args.split} split has no goals; its scores come only from the R2R leaderboard server")
    model = AutoModel.from_pretrained(args.model)
    if type(model).__name__ != "PrevalentForNavigation":
        raise ValueError(f"{args.model} holds a {type(model).__name__}, not a PrevalentForNavigation agent")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    dataset = R2RDataset.load(args.data, args.split)
    if args.max_items:
        dataset = dataset.select(range(min(args.max_items, len(dataset))))
    graphs = NavGraphs.from_dir(Path(args.data) / "connectivity", scans=sorted(set(dataset["scan"])))
    features = load_feature_store(args.features) if args.features else None
    summary, submission = evaluate_agent(model, tokenizer, dataset, graphs, features, args.batch_size)
    if args.predictions:
        Path(args.predictions).write_text(json.dumps(submission))
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2))
    return summary
