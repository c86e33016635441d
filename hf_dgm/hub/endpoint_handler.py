"""Inference Endpoints handler shipped as `handler.py` in every published hf-dgm repo.

The Hub's serverless widget does not run custom code; a dedicated Inference Endpoint does, through a repo-root
`handler.py` defining `EndpointHandler(path)` whose `__call__(data)` receives the request body
`{"inputs": ..., "parameters": {...}}`. This handler serves every pipeline task the repo declares in
`config.json` (`custom_pipelines`): `parameters["task"]` picks one (default: `DEFAULT_TASK`), the other parameters
go to the pipeline. A repo without pipelines (a pretraining checkpoint) is served through the model's forward:
`inputs` is a JSON object of named nested lists (integers become int64 tensors, others float32), the model is
loaded with `MODEL_AUTO_CLASS`, and its output fields come back as nested lists. Images come back as base64 PNG.

This file is copied verbatim into the repo (the publisher only fills in `DEFAULT_TASK`), so it imports nothing from
hf_dgm.
"""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

import torch
from transformers import pipeline


DEFAULT_TASK: str | None = None  # filled in by the publisher
MODEL_AUTO_CLASS: str = "AutoModel"  # filled in by the publisher


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if hasattr(value, "save") and hasattr(value, "size") and hasattr(value, "mode"):  # PIL.Image.Image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return {"image": base64.b64encode(buffer.getvalue()).decode("ascii"), "format": "png", "size": list(value.size)}
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


class EndpointHandler:
    """`EndpointHandler(path)({"inputs": ..., "parameters": {"task": ..., ...}})` → JSON-serialisable output."""

    def __init__(self, path: str = ""):
        self.path = path or "."
        with open(os.path.join(self.path, "config.json"), encoding="utf-8") as f:
            self.tasks = list(json.load(f).get("custom_pipelines", {}))
        self.default_task = DEFAULT_TASK if DEFAULT_TASK in self.tasks else (self.tasks or [None])[0]
        self.device = 0 if torch.cuda.is_available() else -1
        self._pipelines: dict[str, Any] = {}
        self.model = None
        if not self.tasks:  # no pipeline: serve the model's forward
            import transformers

            auto_class = getattr(transformers, MODEL_AUTO_CLASS)
            self.model = auto_class.from_pretrained(self.path, trust_remote_code=True).eval()
            if torch.cuda.is_available():
                self.model.to("cuda")

    def _forward(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError('this repo has no pipeline: "inputs" must be a JSON object of the model\'s named inputs')
        tensors = {}
        for name, value in inputs.items():
            tensor = torch.tensor(value)
            tensor = tensor.long() if not tensor.is_floating_point() else tensor.float()
            tensors[name] = tensor.to(self.model.device)
        with torch.inference_mode():
            output = self.model(**tensors, **parameters)
        return _jsonable({key: value for key, value in output.items() if value is not None})

    def _pipeline(self, task: str):
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; this repo serves {self.tasks}")
        if task not in self._pipelines:
            self._pipelines[task] = pipeline(task, model=self.path, trust_remote_code=True, device=self.device)
        return self._pipelines[task]

    def __call__(self, data: dict[str, Any]) -> Any:
        if not isinstance(data, dict):
            raise ValueError('the request body must be a JSON object {"inputs": ..., "parameters": {...}}')
        parameters = dict(data.get("parameters") or {})
        inputs = data.get("inputs")
        if self.model is not None:
            return self._forward(inputs, parameters)
        task = parameters.pop("task", self.default_task)
        pipe = self._pipeline(task)
        with torch.inference_mode():
            result = pipe(**parameters) if inputs is None else pipe(inputs, **parameters)
        return _jsonable(result)
