"""`vln-instruction`: write a navigation instruction for a path, with the Prevalent (R2R-EnvDrop) speaker.

```python
speak = pipeline("vln-instruction", model="speaker-dir", connectivity_dir="../shared/data/r2r/connectivity")
speak({"scan": "...", "path": [vp0, vp1, vp2], "heading": 3.14}, features=None)          # -> {"instruction": "..."}
speak([episode, episode, ...], batch_size=16, num_beams=3)                               # -> [{"instruction": ...}, ...]
speak(episode, do_sample=True, top_p=0.9, seed=0)
```

An input is a dict with `scan`, `path` (viewpoint ids, adjacent in the navigation graph) and `heading` (radians, the
start heading), or with precomputed `action_features` (T, D) and `view_features` (T, 36, D). The graphs come from
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


class VLNInstructionPipeline(Pipeline):
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    _load_video_processor = False

    def __init__(self, *args, connectivity_dir: str | None = None, features=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._connectivity_dir = connectivity_dir
        self._features = features
        self._walkers: dict[Any, Any] = {}
        if self.tokenizer is None:
            raise ValueError("vln-instruction needs the speaker's tokenizer (BERT uncased word-piece) next to the model")

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
        if config.feature_size > 0 and features is None and not all("action_features" in item for item in items):
            raise ValueError(
                f"this speaker was trained with {config.feature_size}-d visual features: pass features= (a .tsv/.h5 file or store)"
            )
        walks = [None] * len(items)
        to_walk = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"input {n}: expected a dict with scan/path/heading or action_features/view_features")
            if "action_features" in item:
                walks[n] = {
                    "action_features": np.asarray(item["action_features"], dtype=np.float32),
                    "view_features": np.asarray(item["view_features"], dtype=np.float32),
                }
                walks[n]["actions"] = [0] * len(walks[n]["action_features"])
            else:
                for key in ("scan", "path"):
                    if key not in item:
                        raise ValueError(f"input {n}: missing {key!r}")
                if len(item["path"]) < 1:
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
        from hf_dgm.vln.trajectories import pad_walks

        for n, walk in enumerate(walks):
            if walk["action_features"].ndim != 2 or walk["action_features"].shape[-1] != config.input_size:
                raise ValueError(f"input {n}: action_features must be (steps, {config.input_size})")
        batch = pad_walks(walks)
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
