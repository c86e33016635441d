"""`vln-instruction`: write a navigation instruction for a path, with the Prevalent (R2R-EnvDrop) speaker.

```python
speak = pipeline("vln-instruction", model="speaker-dir", connectivity_dir="../shared/data/r2r/connectivity")
speak({"scan": "...", "path": [vp0, vp1, vp2], "heading": 3.14}, features=None)          # -> {"instruction": "..."}
speak([episode, episode, ...], batch_size=16, num_beams=3)                               # -> [{"instruction": ...}, ...]
speak(episode, do_sample=True, top_p=0.9, seed=0)
```

An input is a dict with `scan`, `path` (viewpoint ids, adjacent in the navigation graph) and `heading` (radians, the
start heading); or with precomputed `action_features` (T, D) and `view_features` (T, 36, D); or, for a
geometry-only speaker, the compact form `view_indices` (T ints: the agent's view index 0–35 at each step, i.e. the
start view, then the view of each candidate taken) and `action_angles` (T − 1 pairs `[heading, elevation]` of the
candidates taken, heading relative to the current view; the last step is STOP), from which the angle features are
built exactly as the environment builds them. The graphs come from
`connectivity_dir` (argument, else the `R2R_CONNECTIVITY_DIR` environment variable, else the folder recorded in the
model config at training time). `features`: None (geometry-only) or a feature store / file (`.tsv`, `.h5`) — required
when the model was trained with visual features. Decoding: greedy (default), `num_beams`, or `do_sample` with
`temperature`/`top_k`/`top_p`; `seed` makes sampling reproducible through a local `torch.Generator`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from transformers import Pipeline


_GENERATION = ("max_length", "num_beams", "do_sample", "temperature", "top_k", "top_p", "length_penalty")
_NUM_VIEWS = 36
_HEADING_COUNT = 12
_STEP = np.pi / 6.0  # 30°


def _angle_feature(heading, elevation, size: int) -> np.ndarray:
    heading = np.asarray(heading, dtype=np.float64)
    elevation = np.asarray(elevation, dtype=np.float64)
    base = np.stack([np.sin(heading), np.cos(heading), np.sin(elevation), np.cos(elevation)], axis=-1)
    return np.tile(base, size // 4).astype(np.float32)


def compact_walk(view_indices, action_angles, size: int) -> dict:
    """Geometry-only step features from view indices and the taken candidates' angles (see the module docstring)."""
    if isinstance(view_indices, (str, bytes)) or not isinstance(view_indices, (list, tuple, np.ndarray, torch.Tensor)):
        raise ValueError(
            f"view_indices must be a non-empty list of ints in 0..{_NUM_VIEWS - 1}; got {type(view_indices).__name__} "
            f"{view_indices!r:.80}"
        )
    if isinstance(action_angles, (str, bytes)):
        raise ValueError(f"action_angles must be a list of [heading, elevation] pairs; got str {action_angles!r:.80}")
    if any(isinstance(v, (bool, float, str)) or not isinstance(v, (int, np.integer)) for v in list(np.asarray(view_indices).tolist())):
        raise ValueError(f"view_indices must be a non-empty list of ints in 0..{_NUM_VIEWS - 1}; got {view_indices!r:.80}")
    views = [int(v) for v in view_indices]
    angles = np.asarray(action_angles, dtype=np.float64).reshape(-1, 2)
    if not views or any(not 0 <= v < _NUM_VIEWS for v in views):
        raise ValueError(f"view_indices must be a non-empty list of ints in 0..{_NUM_VIEWS - 1}")
    if len(angles) != len(views) - 1:
        raise ValueError(f"action_angles needs {len(views) - 1} [heading, elevation] pairs (one per move); got {len(angles)}")
    all_views = np.arange(_NUM_VIEWS)
    view_headings = (all_views % _HEADING_COUNT) * _STEP
    view_elevations = (all_views // _HEADING_COUNT - 1) * _STEP
    view_features = np.stack([_angle_feature(view_headings - view_headings[v], view_elevations, size) for v in views])
    action_features = np.zeros((len(views), size), dtype=np.float32)
    if len(angles):
        action_features[:-1] = _angle_feature(angles[:, 0], angles[:, 1], size)
    return {"action_features": action_features, "view_features": view_features}


def _pad(walks: list[dict]) -> dict[str, np.ndarray]:
    steps = max(len(w["action_features"]) for w in walks)
    size = walks[0]["action_features"].shape[-1]
    views = walks[0]["view_features"].shape[1]
    batch = {
        "action_features": np.zeros((len(walks), steps, size), dtype=np.float32),
        "view_features": np.zeros((len(walks), steps, views, size), dtype=np.float32),
        "trajectory_mask": np.zeros((len(walks), steps), dtype=bool),
    }
    for i, w in enumerate(walks):
        n = len(w["action_features"])
        batch["action_features"][i, :n] = w["action_features"]
        batch["view_features"][i, :n] = w["view_features"]
        batch["trajectory_mask"][i, :n] = True
    return batch


class VLNInstructionPipeline(Pipeline):
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = None  # tried, not required: a missing tokenizer is named below, after the model type
    _load_video_processor = False

    def __init__(self, *args, connectivity_dir: str | None = None, features=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._connectivity_dir = connectivity_dir
        self._features = features
        self._walkers: dict[Any, Any] = {}
        if self.tokenizer is None:
            self.tokenizer = getattr(self.model, "tokenizer", None)  # loaded with the model by from_pretrained
        from ...modules.validation import check_pipeline_model

        check_pipeline_model(
            self.model, "vln-instruction", "prevalent_speaker", self.tokenizer,
            hints={"prevalent": "a Prevalent encoder; the speaker is the R2R-EnvDrop speaker, PrevalentSpeakerModel",
                   "prevalent_navigation": "a navigation agent: use the vln-navigation pipeline"},
        )  # fmt: skip

    def _sanitize_parameters(self, features=None, connectivity_dir=None, seed=None, **kwargs):
        forward = {}
        for key in list(kwargs):
            if key in _GENERATION:
                forward[key] = kwargs.pop(key)
        if kwargs:
            raise ValueError(f"unknown vln-instruction argument(s): {sorted(kwargs)}")
        if seed is not None:
            if not isinstance(seed, int):
                raise ValueError(f"`seed` must be an int; got {seed!r}")
            forward["seed"] = seed
        preprocess = {}
        if features is not None:
            preprocess["features"] = features
        if connectivity_dir is not None:
            preprocess["connectivity_dir"] = connectivity_dir
        return preprocess, forward, {}

    def __call__(self, inputs, batch_size: int | None = None, **kwargs):
        single = isinstance(inputs, dict)
        items = [inputs] if single else list(inputs)
        if not items:
            raise ValueError("vln-instruction got no inputs")
        size = batch_size or self._batch_size or 8
        pre, fwd, post = self._sanitize_parameters(**kwargs)
        pre = {**self._preprocess_params, **pre}
        fwd = {**self._forward_params, **fwd}
        post = {**self._postprocess_params, **post}
        results = []
        for start in range(0, len(items), size):
            results.extend(self.run_single(items[start : start + size], pre, fwd, post))
        return results[0] if single else results

    # ------------------------------------------------------------------------------------------------ steps
    def _walker(self, connectivity_dir, features):
        from hf_dgm.vln.graphs import NavGraphs
        from hf_dgm.vln.trajectories import PathWalker

        connectivity_dir = (
            connectivity_dir
            or self._connectivity_dir
            or os.environ.get("R2R_CONNECTIVITY_DIR")
            or getattr(self.model.config, "connectivity_dir", None)
        )
        if connectivity_dir is None:
            raise ValueError(
                "vln-instruction needs the navigation graphs: pass connectivity_dir= (a folder of "
                "<scan>_connectivity.json files) or set R2R_CONNECTIVITY_DIR"
            )
        key = (str(connectivity_dir), id(features) if features is not None and not isinstance(features, str) else features)
        if key not in self._walkers:
            self._walkers[key] = PathWalker(
                NavGraphs.from_dir(connectivity_dir), features=features, angle_feat_size=self.model.config.angle_feat_size
            )
        return self._walkers[key]

    def preprocess(self, items, features=None, connectivity_dir=None):
        config = self.model.config
        features = features if features is not None else self._features
        if config.feature_size > 0 and features is None and not all(
            isinstance(item, dict) and "action_features" in item for item in items
        ):
            raise ValueError(
                f"this speaker was trained with {config.feature_size}-d visual features: pass features= (a .tsv/.h5 file or store)"
            )
        walks = [None] * len(items)
        to_walk = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(
                    f"input {n}: expected a dict with scan/path/heading, action_features/view_features, or view_indices/action_angles"
                )
            if "action_features" in item:
                walks[n] = {
                    "action_features": np.asarray(item["action_features"], dtype=np.float32),
                    "view_features": np.asarray(item["view_features"], dtype=np.float32),
                }
            elif "view_indices" in item:
                if config.feature_size > 0:
                    raise ValueError(f"input {n}: the compact view_indices/action_angles form is for geometry-only speakers")
                walks[n] = compact_walk(item["view_indices"], item.get("action_angles", []), config.angle_feat_size)
            else:
                for key in ("scan", "path"):
                    if key not in item:
                        raise ValueError(f"input {n}: missing {key!r}")
                path = item["path"]
                if isinstance(path, (str, bytes)) or not isinstance(path, (list, tuple)) or not all(
                    isinstance(v, str) for v in path
                ):
                    raise ValueError(
                        f"input {n}: `path` must be a list of viewpoint ids (strings), e.g. ['vp0', 'vp1']; got "
                        f"{type(path).__name__} {path!r:.80}"
                    )
                if not isinstance(item["scan"], str):
                    raise ValueError(f"input {n}: `scan` must be a scan id (a string); got {type(item['scan']).__name__}")
                if len(path) < 1:
                    raise ValueError(f"input {n}: empty path")
                to_walk.append(n)
        if to_walk:
            walker = self._walker(connectivity_dir, features)
            if walker.input_size != config.input_size:
                raise ValueError(
                    f"the features give {walker.input_size}-d inputs but the speaker expects {config.input_size}"
                )
            named = [dict(items[n], instr_id=items[n].get("instr_id", f"input {n}")) for n in to_walk]
            for n, walk in zip(to_walk, walker.walk(named)):
                walks[n] = walk
        for n, walk in enumerate(walks):
            if walk["action_features"].ndim != 2 or walk["action_features"].shape[-1] != config.input_size:
                raise ValueError(f"input {n}: action_features must be (steps, {config.input_size})")
            if walk["view_features"].shape[0] != walk["action_features"].shape[0] or walk["view_features"].shape[-1] != config.input_size:
                raise ValueError(f"input {n}: view_features must be (steps, views, {config.input_size}) like action_features")
        batch = _pad(walks)
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    def _forward(self, model_inputs, seed=None, **generate_kwargs):
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        model_inputs = {k: v.to(self.model.dtype) if v.is_floating_point() else v for k, v in model_inputs.items()}
        ids = self.model.generate_instructions(**model_inputs, generator=generator, **generate_kwargs)
        return {"token_ids": ids}

    def postprocess(self, model_outputs):
        return [
            {"instruction": self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)}
            for ids in model_outputs["token_ids"]
        ]


__all__ = ["VLNInstructionPipeline"]
