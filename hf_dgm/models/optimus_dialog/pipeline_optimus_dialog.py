"""The `dialog-response` pipeline: a dialog context in, several diverse responses out.

```python
>>> import hf_dgm
>>> from transformers import pipeline
>>> chat = pipeline("dialog-response", model="optimus-dialog-dir")
>>> chat(["hi , how are you ?", "fine , thanks . and you ?"], num_responses=3, seed=0)
[{'text': ...}, {'text': ...}, {'text': ...}]
```
Inputs: a string (a one-turn context), a list of strings (the turns of ONE context, oldest first), or
`{"context": ...}`; a list of lists or of dicts is a batch of contexts and gives a list of results. Each response
decodes its own sample of the context's posterior by nucleus sampling (default `top_p=0.9`, `top_k=0`, as the original);
`sample_latent=False` decodes the posterior mean for all, `do_sample=False` decodes greedily. Other keyword arguments
go to generation (`max_new_tokens`, `temperature`, ...), which raises a `ValueError` naming any it does not know.
"""

from __future__ import annotations

from typing import Any

import torch

from ..optimus.pipelines_optimus import _OptimusPipeline
from .processing_optimus_dialog import check_turns, encode_contexts
from ...modules.validation import check_int

MAX_NUM_RESPONSES = 64


class DialogResponsePipeline(_OptimusPipeline):
    """Context → `num_responses` (default 5) responses: `[{"text": ...}, ...]` (+ `"latent"` with
    `return_tensors=True`: the latent each response was decoded from)."""

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, str) for x in inputs):
            inputs = {"context": list(inputs)}  # the turns of one context, not a batch
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(
        self, max_length=None, num_responses=None, sample_latent=None, return_tensors=None, seed=None, **generate_kwargs
    ):
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {"generate_kwargs": generate_kwargs}
        postprocess: dict[str, Any] = {}
        if max_length is not None:
            preprocess["max_length"] = check_int(max_length, "max_length", minimum=3)
        if num_responses is not None:
            forward["num_responses"] = check_int(num_responses, "num_responses", minimum=1, maximum=MAX_NUM_RESPONSES)
        if sample_latent is not None:
            if not isinstance(sample_latent, bool):
                raise ValueError(f"`sample_latent` must be a bool; got {sample_latent!r}")
            forward["sample_latent"] = sample_latent
        if seed is not None:
            forward["seed"] = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
        for key in ("num_return_sequences", "num_beams"):
            if generate_kwargs.get(key) not in (None, 1):
                raise ValueError(f"`{key}` is not used by dialog-response: pass `num_responses` for several responses")
        if generate_kwargs.get("max_new_tokens") is not None:
            check_int(generate_kwargs["max_new_tokens"], "max_new_tokens", minimum=1)
        if return_tensors is not None:
            postprocess["return_tensors"] = bool(return_tensors)
        return preprocess, forward, postprocess

    def preprocess(self, inputs, max_length: int | None = None):
        if isinstance(inputs, dict):
            if set(inputs) != {"context"}:
                raise ValueError(f"a dict input needs exactly the key 'context'; got {sorted(inputs)}")
            inputs = inputs["context"]
        turns = check_turns(inputs)
        if max_length is None:
            max_length = self.model.config.max_context_length
        return encode_contexts(self.processor.tokenizer, [turns], max_length=max_length)

    def _forward(self, model_inputs, num_responses: int = 5, sample_latent: bool = True, generate_kwargs=None,
                 seed: int | None = None):
        kwargs = dict(generate_kwargs or {})

        def run():
            return self.model.generate_responses(
                model_inputs["context_input_ids"], model_inputs["context_attention_mask"],
                num_responses=num_responses, sample_latent=sample_latent, output_latents=True, **kwargs,
            )

        if seed is None:
            sequences, latents = run()
        else:  # a generator local to this call: the caller's global RNG state is restored afterwards
            devices = [self.model.device] if self.model.device.type != "cpu" else []
            with torch.random.fork_rng(devices=devices, device_type=self.model.device.type if devices else "cuda"):
                torch.manual_seed(seed)
                sequences, latents = run()
        return {"sequences": sequences, "latents": latents}

    def postprocess(self, model_outputs, return_tensors: bool = False) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{"text": text} for text in self._texts(model_outputs["sequences"])]
        if return_tensors:
            for item, latent in zip(results, model_outputs["latents"]):
                item["latent"] = latent
        return results


__all__ = ["DialogResponsePipeline", "MAX_NUM_RESPONSES"]
