"""The `vln-navigation` pipeline: follow R2R instructions with a [`PrevalentForNavigation`] agent, greedily, in
batches, on the navigation graphs (no simulator).

```python
nav = pipeline("vln-navigation", model="prevalent-r2r-dir", connectivity="../shared/data/r2r/connectivity")
nav({"scan": "...", "start": vp0, "heading": 0.0, "instruction": "walk past the sofa ..."})
# -> {"trajectory": [[viewpoint, heading, elevation], ...], "actions": [2, 0, -1]}
```

Each input: `scan`, `start` (viewpoint id), `heading` (radians), `instruction`; optional `instr_id` (copied to the
output, so a list of outputs is the R2R submission format that `python -m hf_dgm.evaluate vln` scores) and
`elevation`. `actions` are the chosen candidate indices in the environment's candidate order, -1 for STOP (an episode
that reaches `max_action_length` moves ends without a STOP). Bad inputs raise `ValueError` naming the item.

The navigation graphs come from `connectivity=`, given when the pipeline is built or with each call: a folder of
`<scan>_connectivity.json` files, or the parsed files inline as `{scan: [entry, ...]}` (what an Inference Endpoint
request can carry). The geometry (candidates, headings) and the graph code are hf-dgm's environment modules, which a
published repo holds next to this file, so the pipeline runs without the hf-dgm package. View features (when the
model has an image part, `vision_feature_size > 0`) come from `features=` (a TSV/HDF5 store path or object).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from transformers import Pipeline


def observation_tensors(obs: list[dict], vision_feature_size: int, angle_feature_size: int, device=None) -> dict[str, torch.Tensor]:
    """
    Batch environment observations: `candidate_features` (B, K, F) with `candidate_mask` (B, K) (K ≥ 1), and
    `view_features` (B, 36, F); F = vision_feature_size + angle_feature_size (angle part last).
    """
    width = vision_feature_size + angle_feature_size
    count = max(1, max(len(ob["candidates"]) for ob in obs))
    candidates = np.zeros((len(obs), count, width), dtype=np.float32)
    mask = np.zeros((len(obs), count), dtype=bool)
    views = np.zeros((len(obs), 36, width), dtype=np.float32)
    for i, ob in enumerate(obs):
        k = len(ob["candidates"])
        if k:
            feats = np.asarray(ob["candidate_features"], dtype=np.float32)
            if feats.shape[1] != width:
                raise ValueError(
                    f"episode {ob.get('instr_id')}: candidate features have {feats.shape[1]} dims; the model expects "
                    f"{width} (vision {vision_feature_size} + angle {angle_feature_size}): "
                    + ("pass features=" if vision_feature_size and ob.get("view_features") is None else "check the feature store")
                )
            candidates[i, :k] = feats
            mask[i, :k] = True
        if vision_feature_size:
            views[i, :, :vision_feature_size] = np.asarray(ob["view_features"], dtype=np.float32)
        views[i, :, vision_feature_size:] = ob["view_angle_features"]
    return {
        "candidate_features": torch.from_numpy(candidates).to(device),
        "candidate_mask": torch.from_numpy(mask).to(device),
        "view_features": torch.from_numpy(views).to(device),
    }


def start_action_features(obs: list[dict], angle_feature_size: int, device=None) -> torch.Tensor:
    """The first step's "previous action": the angle feature of the agent's heading and elevation (as EnvDrop)."""
    base = np.array([[np.sin(ob["heading"]), np.cos(ob["heading"]), np.sin(ob["elevation"]), np.cos(ob["elevation"])] for ob in obs])
    return torch.from_numpy(np.tile(base, angle_feature_size // 4).astype(np.float32)).to(device)


@torch.no_grad()
def greedy_navigate(model, env, input_ids: torch.Tensor, attention_mask: torch.Tensor, obs: list[dict]) -> list[list[int]]:
    """Run the episodes of `env`'s current batch greedily (argmax over candidates + STOP); returns each episode's
    actions (candidate index, -1 = STOP)."""
    config = model.config
    device = input_ids.device
    first = observation_tensors(obs, config.vision_feature_size, config.angle_feature_size, device)
    enc = model.encode(input_ids, attention_mask, first["candidate_features"], first["candidate_mask"].long())
    tilde, cell = enc.hidden, enc.cell
    previous = start_action_features(obs, config.angle_feature_size, device)
    actions: list[list[int]] = [[] for _ in obs]
    ended = np.array([False] * len(obs))
    for t in range(config.max_action_length):
        tensors = first if t == 0 else observation_tensors(obs, config.vision_feature_size, config.angle_feature_size, device)
        step = model.decode_step(previous, tensors["view_features"], tensors["candidate_features"], tensors["candidate_mask"],
                                 tilde, cell, enc.context, enc.context_mask)  # fmt: skip
        tilde, cell = step.attended_hidden, step.cell
        choice = step.logits.argmax(dim=1).cpu().numpy()
        stop_column = tensors["candidate_features"].shape[1]
        env_actions, prev = [], torch.zeros_like(previous)
        for i, a in enumerate(choice):
            if ended[i]:
                env_actions.append(-1)
                continue
            if a == stop_column:
                env_actions.append(-1)
                actions[i].append(-1)
                ended[i] = True
            else:
                env_actions.append(int(a))
                actions[i].append(int(a))
                prev[i] = tensors["candidate_features"][i, a, config.vision_feature_size :]
        previous = prev
        obs = env.step(env_actions)
        if ended.all():
            break
    return actions


class VLNNavigationPipeline(Pipeline):
    """Greedy instruction following with a `PrevalentForNavigation` agent (see the module docstring)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = None  # tried, not required: a missing tokenizer is named below, after the model type
    _load_video_processor = False

    def __init__(self, *args, connectivity=None, graphs=None, features=None, **kwargs):
        super().__init__(*args, **kwargs)
        from ...modules.validation import check_pipeline_model

        check_pipeline_model(
            self.model, "vln-navigation", "prevalent_navigation", tokenizer=True,
            hints={"prevalent": "a Prevalent pretraining checkpoint: fine-tune it into an agent first "
                                "(`hf-dgm train prevalent`, or PrevalentForNavigation.from_pretrained(folder) and train)",
                   "prevalent_speaker": "a speaker: use the vln-instruction pipeline"},
        )  # fmt: skip
        if graphs is None and connectivity is not None:
            graphs = self._graphs_from(connectivity)
        self.graphs = graphs
        if isinstance(features, (str, os.PathLike)):
            from ...vln.features import load_feature_store

            features = load_feature_store(features)
        self.features = features
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(self.model.name_or_path)
            except (OSError, ValueError, TypeError):
                self.tokenizer = None
            check_pipeline_model(self.model, "vln-navigation", "prevalent_navigation", self.tokenizer)

    @staticmethod
    def _graphs_from(connectivity):
        from ...vln.graphs import NavGraphs

        if isinstance(connectivity, dict):
            return NavGraphs.from_connectivity(connectivity)
        return NavGraphs.from_dir(connectivity)

    def _sanitize_parameters(self, batch_size=None, **kwargs):
        if kwargs:
            raise ValueError(f"unknown vln-navigation arguments: {sorted(kwargs)}")
        forward = {}
        if batch_size is not None:
            if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
                raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}")
            forward["batch_size"] = batch_size
        return {}, forward, {}

    def _check(self, item: Any, n: int, graphs) -> dict:
        name = f"item {n}" + (f" ({item.get('instr_id')})" if isinstance(item, dict) and item.get("instr_id") else "")
        if not isinstance(item, dict):
            raise ValueError(f"{name}: expected a dict with scan, start, heading, instruction; got {type(item).__name__}")
        for key in ("scan", "start", "instruction"):
            if key not in item:
                raise ValueError(f"{name}: missing {key!r}")
        if not isinstance(item["instruction"], str):
            raise ValueError(f"{name}: `instruction` must be a string; got {type(item['instruction']).__name__}")
        if not item["instruction"].strip():
            raise ValueError(f"{name}: empty instruction")
        for key in ("scan", "start"):
            if not isinstance(item[key], str):
                raise ValueError(
                    f"{name}: `{key}` must be a {'scan' if key == 'scan' else 'viewpoint'} id (a string); got "
                    f"{type(item[key]).__name__} {item[key]!r:.80}"
                )
        if graphs is None:
            raise ValueError(
                "the vln-navigation pipeline needs the navigation graphs: connectivity=DIR or {scan: [entries]} "
                "(when building the pipeline or with the call)"
            )
        if item["scan"] not in graphs:
            raise ValueError(f"{name}: unknown scan {item['scan']!r}")
        if not graphs.has_viewpoint(item["scan"], item["start"]):
            raise ValueError(f"{name}: viewpoint {item['start']!r} is not in scan {item['scan']}")
        heading = item.get("heading", 0.0)
        if not isinstance(heading, (int, float)) or isinstance(heading, bool) or not np.isfinite(heading):
            raise ValueError(f"{name}: heading must be a finite number of radians; got {heading!r}")
        if self.model.config.vision_feature_size and self.features is None:
            raise ValueError(f"{name}: this model needs view features (vision_feature_size="
                             f"{self.model.config.vision_feature_size}); pass features=STORE")  # fmt: skip
        if self.features is not None and (item["scan"], item["start"]) not in self.features:
            raise ValueError(f"{name}: the feature store has no features for {item['scan']}_{item['start']}")
        return {
            "instr_id": str(item.get("instr_id", n)),
            "scan": item["scan"],
            "path": [item["start"]],
            "heading": float(heading),
            "elevation": float(item.get("elevation", 0.0)),
            "instruction": item["instruction"],
        }

    def __call__(self, inputs, batch_size: int | None = None, connectivity=None, **kwargs):
        single = isinstance(inputs, dict)
        graphs = self._graphs_from(connectivity) if connectivity is not None else self.graphs
        items = [self._check(item, n, graphs) for n, item in enumerate([inputs] if single else list(inputs))]
        _, forward, _ = self._sanitize_parameters(batch_size=batch_size, **kwargs)
        batch_size = forward.get("batch_size", 16)
        outputs = []
        for start in range(0, len(items), batch_size):
            outputs.extend(self._forward(items[start : start + batch_size], graphs))
        for item, out in zip([inputs] if single else inputs, outputs):
            if "instr_id" not in item:
                del out["instr_id"]
        return outputs[0] if single else outputs

    def preprocess(self, inputs):  # batching is done in __call__
        return inputs

    def _forward(self, items: list[dict], graphs=None) -> list[dict]:
        from ...vln.env import R2REnv

        config = self.model.config
        env = R2REnv(items, graphs if graphs is not None else self.graphs, features=self.features, batch_size=len(items), angle_feat_size=config.angle_feature_size)
        obs = env.reset()
        for ob in obs:
            if config.vision_feature_size and ob["view_features"] is None:
                raise ValueError(f"item {ob['instr_id']}: no view features for {ob['scan']}_{ob['viewpoint']}")
        enc = self.tokenizer([it["instruction"] for it in items], padding=True, truncation=True, max_length=80, return_tensors="pt")
        self.model.eval()
        actions = greedy_navigate(self.model, env, enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device), obs)
        trajectories = {r["instr_id"]: r["trajectory"] for r in env.results()}
        return [{"instr_id": it["instr_id"], "trajectory": trajectories[it["instr_id"]], "actions": a} for it, a in zip(items, actions)]

    def postprocess(self, model_outputs):
        return model_outputs
