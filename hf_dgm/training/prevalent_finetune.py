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
NE, SR, OSR, SPL, nDTW, SDTW with the `hf_dgm.vln` evaluator), `val_seen_submission.json`, `checkpoint/` for resume
(model, optimizer, iteration; rerun the same command to continue).
"""

from __future__ import annotations

import json
import logging
import math
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
    save_every: int = field(default=100)
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
        model = self.model
        config = model.config
        device = input_ids.device
        batch = len(obs)
        first = observation_tensors(obs, config.vision_feature_size, config.angle_feature_size, device)
        enc = model.encode(input_ids, attention_mask, first["candidate_features"], first["candidate_mask"].long())
        tilde, cell = enc.hidden, enc.cell
        previous = start_action_features(obs, config.angle_feature_size, device)
        ended = np.zeros(batch, dtype=bool)
        last_distance = np.array([ob["distance"] for ob in obs], dtype=np.float32)
        ml_loss = input_ids.new_zeros((), dtype=torch.float32)
        log_probs, entropies, values, rewards, masks = [], [], [], [], []
        tensors = first
        for t in range(config.max_action_length):
            if t:
                tensors = observation_tensors(obs, config.vision_feature_size, config.angle_feature_size, device)
            cands = tensors["candidate_features"]
            stop_column = cands.shape[1]
            step = model.decode_step(previous, tensors["view_features"], cands, tensors["candidate_mask"], tilde, cell,
                                     enc.context, enc.context_mask)  # fmt: skip
            tilde, cell = step.attended_hidden, step.cell
            target = torch.tensor(
                [-100 if ended[i] else (stop_column if ob["teacher"] == -1 else ob["teacher"]) for i, ob in enumerate(obs)],
                device=device,
            )
            if mode == "teacher":
                ml_loss = ml_loss + F.cross_entropy(step.logits, target, ignore_index=-100, reduction="sum")
                chosen = target.clone()
            else:
                dist = torch.distributions.Categorical(logits=step.logits)
                chosen = dist.sample()
                log_probs.append(dist.log_prob(chosen))
                entropies.append(dist.entropy())
                values.append(model.value(tilde))
            chosen_np = chosen.cpu().numpy()
            actions = []
            prev = torch.zeros_like(previous)
            for i in range(batch):
                a = int(chosen_np[i])
                if ended[i] or a == stop_column or a < 0:
                    actions.append(-1)
                else:
                    actions.append(a)
                    prev[i] = cands[i, a, config.vision_feature_size :]
            previous = prev
            obs = env.step(actions)
            if mode == "sample":
                reward = np.zeros(batch, dtype=np.float32)
                mask = (~ended).astype(np.float32)
                distance = np.array([ob["distance"] for ob in obs], dtype=np.float32)
                for i in range(batch):
                    if ended[i]:
                        continue
                    if actions[i] == -1:
                        reward[i] = 2.0 if distance[i] < 3.0 else -2.0
                    else:
                        reward[i] = float(np.sign(last_distance[i] - distance[i]))
                rewards.append(reward)
                masks.append(mask)
                last_distance = distance
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
            discounted = np.where(ended, 0.0, bootstrap).astype(np.float32)
            rl_loss = input_ids.new_zeros((), dtype=torch.float32)
            total = 0.0
            for t in range(len(rewards) - 1, -1, -1):
                discounted = discounted * gamma + rewards[t]
                mask = torch.from_numpy(masks[t]).to(device)
                returns = torch.from_numpy(discounted.copy()).to(device)
                advantage = (returns - values[t]).detach()
                rl_loss = rl_loss + (-log_probs[t] * advantage * mask).sum()
                rl_loss = rl_loss + ((returns - values[t]) ** 2 * mask).sum() * 0.5
                rl_loss = rl_loss - (entropy_weight * entropies[t] * mask).sum()
                total += float(masks[t].sum())
            out["rl_loss"] = rl_loss / max(total, 1.0)
            logs["rl_loss"] = out["rl_loss"].item()
            logs["sample_steps"] = total / batch
            logs["sample_success"] = float(np.mean([d < 3.0 for d in last_distance]))
        return out


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
    from hf_dgm.training.prevalent_pretrain import _bert_path

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

def train_agent(args: FinetuneArguments, recipe: str | None = None) -> dict:
    import yaml
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from hf_dgm.training.prevalent_pretrain import load_tokenizer
    from hf_dgm.vln import NavGraphs, R2RDataset, R2REnv, load_feature_store

    from accelerate.utils import DistributedDataParallelKwargs

    # the critic is idle in imitation-only iterations: let DDP skip parameters without gradients
    accelerator = Accelerator(cpu=args.use_cpu, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(args.seed + accelerator.process_index)
    out = Path(args.output_dir)
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
    sampler = EpisodeSampler(len(train), args.batch_size, seed=args.seed + 1000 * accelerator.process_index)
    model = build_agent(args, tokenizer)
    total_iters = args.stage1_iters + args.stage2_iters
    start_iter = 0
    state_file = out / "checkpoint" / "state.json"
    if state_file.is_file():
        from safetensors.torch import load_file

        state = json.loads(state_file.read_text())
        model.load_state_dict(load_file(str(out / "checkpoint" / "model.safetensors")))
        start_iter = int(state["iteration"])
        logger.info("resuming at iteration %d", start_iter)
    stage = 1 if start_iter < args.stage1_iters else 2
    optimizer = set_stage(model, stage, args)
    if state_file.is_file() and (out / "checkpoint" / "optimizer.pt").is_file() and json.loads(state_file.read_text())["stage"] == stage:
        optimizer.load_state_dict(torch.load(out / "checkpoint" / "optimizer.pt", weights_only=True))
    rollout, optimizer = accelerator.prepare(NavigationRollout(model), optimizer)
    history = []
    timings = {"train_seconds": 0.0, "train_iterations": 0}
    progress = tqdm(range(start_iter, total_iters), disable=not accelerator.is_local_main_process, desc="fine-tune")
    for it in progress:
        if it == args.stage1_iters and stage == 1:
            stage = 2
            model = accelerator.unwrap_model(rollout).model
            optimizer = set_stage(model, 2, args)
            rollout, optimizer = accelerator.prepare(NavigationRollout(model), optimizer)
        tic = time.perf_counter()
        rollout.train()
        indices = sampler.next()
        ids, mask = tokenize(tokenizer, [env.items[i] for i in indices], accelerator.device)
        loss, logs = rollout(env, indices, ids, mask, args.feedback, args.ml_weight, args.gamma, args.entropy_weight)
        accelerator.backward(loss)
        if args.max_grad_norm:
            accelerator.clip_grad_norm_([p for p in rollout.parameters() if p.requires_grad], args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        timings["train_seconds"] += time.perf_counter() - tic
        timings["train_iterations"] += 1
        progress.set_postfix(loss=f"{loss.item():.3f}", stage=stage, **{k: f"{v:.3f}" for k, v in logs.items()})
        history.append({"iteration": it + 1, "stage": stage, "loss": loss.item(), **logs})
        if accelerator.is_main_process and args.save_every and (it + 1) % args.save_every == 0:
            _save_checkpoint(accelerator.unwrap_model(rollout).model, optimizer, out, it + 1, stage)
        if args.eval_every and (it + 1) % args.eval_every == 0 and accelerator.is_main_process:
            summary, _ = evaluate_agent(accelerator.unwrap_model(rollout).model, tokenizer, val, graphs, features,
                                        args.eval_batch_size, accelerator.device)  # fmt: skip
            history[-1].update({f"val_seen_{k}": v for k, v in summary.items()})
            logger.info("iteration %d val_seen %s", it + 1, summary)
    model = accelerator.unwrap_model(rollout).model
    metrics: dict = {}
    if accelerator.is_main_process:
        tic = time.perf_counter()
        summary, submission = evaluate_agent(model, tokenizer, val, graphs, features, args.eval_batch_size, accelerator.device)
        eval_seconds = time.perf_counter() - tic
        metrics = {f"val_seen_{k}": v for k, v in summary.items()}
        metrics.update({
            "train_iterations": timings["train_iterations"],
            "train_seconds": timings["train_seconds"],
            "train_episodes_per_second": timings["train_iterations"] * args.batch_size / max(timings["train_seconds"], 1e-9),
            "eval_seconds": eval_seconds,
            "pretrained": args.pretrained,
        })  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (out / "finetune_metrics.json").write_text(json.dumps(metrics, indent=2))
        (out / "history.json").write_text(json.dumps(history))
        (out / "val_seen_submission.json").write_text(json.dumps(submission))
        (out / "recipe.yaml").write_text(yaml.safe_dump({"recipe": recipe, **asdict(args)}, sort_keys=False))
        _save_checkpoint(model, optimizer, out, total_iters, stage)
    accelerator.wait_for_everyone()
    return metrics


def _save_checkpoint(model, optimizer, out: Path, iteration: int, stage: int) -> None:
    from safetensors.torch import save_file

    folder = out / "checkpoint"
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    # the tied/shared storages of the encoder are not shared here (no LM head), so save_file accepts them
    save_file(state, str(folder / "model.safetensors"))
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    (folder / "state.json").write_text(json.dumps({"iteration": iteration, "stage": stage}))


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
