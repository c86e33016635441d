"""Pipelines over Optimus's latent space: interpolation, analogy, reconstruction and sentence latents.

```python
>>> import hf_dgm
>>> from transformers import pipeline
>>> pipe = pipeline("sentence-interpolation", model="optimus-dir")
>>> pipe(("a man is playing a guitar .", "two dogs run through the snow ."), num_steps=5)
[{'alpha': 0.0, 'text': ...}, {'alpha': 0.25, 'text': ...}, ..., {'alpha': 1.0, 'text': ...}]
```
Every pipeline takes one input or a list of inputs (a list gives a list of results). Keyword arguments other than
the pipeline's own go to generation (`num_beams`, `do_sample`, `top_p`, `max_new_tokens`, ...).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Pipeline

from .processing_optimus import OptimusProcessor

_OWN_PARAMETERS = ("max_length", "num_steps", "degree", "return_tensors", "seed")


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string; got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    return value


class _OptimusPipeline(Pipeline):
    """Shared plumbing: the two-tokenizer processor, parameter routing, and per-item batching."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        processor = kwargs.pop("optimus_processor", None)
        super().__init__(*args, **kwargs)
        if isinstance(self.processor, OptimusProcessor):
            processor = processor or self.processor
        if processor is None:
            processor = getattr(self.model, "processor", None)
        if processor is None:
            # the tokenizers of the very revision the model came from (a branch or PR, not main)
            revision = getattr(self.model.config, "_commit_hash", None)
            processor = OptimusProcessor.from_pretrained(self.model.name_or_path, revision=revision)
        self.processor = processor

    def _sanitize_parameters(self, max_length=None, num_steps=None, degree=None, return_tensors=None, seed=None, **generate_kwargs):
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {"generate_kwargs": generate_kwargs}
        postprocess: dict[str, Any] = {}
        if max_length is not None:
            if not isinstance(max_length, int) or max_length < 3:
                raise ValueError(f"`max_length` must be an int >= 3; got {max_length!r}")
            preprocess["max_length"] = max_length
        if num_steps is not None:
            if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 2:
                raise ValueError(f"`num_steps` must be an int >= 2 (both endpoints are included); got {num_steps!r}")
            forward["num_steps"] = num_steps
        if degree is not None:
            if not isinstance(degree, (int, float)) or isinstance(degree, bool):
                raise ValueError(f"`degree` must be a number; got {degree!r}")
            forward["degree"] = float(degree)
        if seed is not None:
            if not isinstance(seed, int):
                raise ValueError(f"`seed` must be an int; got {seed!r}")
            forward["seed"] = seed
        if return_tensors is not None:
            postprocess["return_tensors"] = bool(return_tensors)
        return preprocess, forward, postprocess

    def _tokenize(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        enc = self.processor(texts, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def _encode_mean(self, model_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.encode(model_inputs["input_ids"], model_inputs["attention_mask"]).mean

    def _generate(self, latents: torch.Tensor, generate_kwargs: dict, seed: int | None) -> torch.Tensor:
        """Decode `latents`. With `seed`, sampling draws from a generator seeded with it, local to this call: the
        caller's global RNG state is saved and restored around it (`torch.random.fork_rng`), because the decoder's
        `generate` has no `generator` argument and samples from the default generator of the model's device."""
        if seed is None:
            return self.model.generate(latents=latents, **generate_kwargs)
        devices = [self.model.device] if self.model.device.type != "cpu" else []
        with torch.random.fork_rng(devices=devices, device_type=self.model.device.type if devices else "cuda"):
            torch.manual_seed(seed)
            return self.model.generate(latents=latents, **generate_kwargs)

    def _texts(self, sequences: torch.Tensor) -> list[str]:
        return self.processor.batch_decode(sequences)

    def _texts_postprocess(self, model_outputs, return_tensors: bool = False) -> list[dict[str, Any]]:
        """`[{"text": ...}]`, one per returned sequence (+ the decoded `latent` with `return_tensors=True`)."""
        results: list[dict[str, Any]] = [{"text": text} for text in self._texts(model_outputs["sequences"])]
        if return_tensors:
            for item in results:
                item["latent"] = model_outputs["latents"][0]
        return results


class SentenceInterpolationPipeline(_OptimusPipeline):
    """
    `("sentence A", "sentence B")` → `num_steps` (default 5, ≥ 2) sentences decoded along the straight line between
    the two posterior means: `[{"alpha": 0.0, "text": ...}, ..., {"alpha": 1.0, "text": ...}]`.
    Also accepts `{"source": A, "target": B}`.
    """

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, list) and len(inputs) == 2 and all(isinstance(x, str) for x in inputs):
            inputs = tuple(inputs)  # a pair given as a list
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs, max_length: int = 64):
        if isinstance(inputs, dict):
            if set(inputs) != {"source", "target"}:
                raise ValueError(f"a dict input needs exactly the keys 'source' and 'target'; got {sorted(inputs)}")
            inputs = (inputs["source"], inputs["target"])
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
            raise ValueError(
                "sentence-interpolation expects a pair of sentences (a tuple of two strings, or "
                f"{{'source': ..., 'target': ...}}); got {inputs!r}"
            )
        texts = [_check_text(inputs[0], "the first sentence"), _check_text(inputs[1], "the second sentence")]
        return self._tokenize(texts, max_length)

    def _forward(self, model_inputs, num_steps: int = 5, generate_kwargs=None, seed=None, degree=None):
        mean = self._encode_mean(model_inputs)
        alphas = torch.linspace(0.0, 1.0, num_steps, device=mean.device, dtype=mean.dtype)
        path = mean[0:1] + alphas.unsqueeze(1) * (mean[1:2] - mean[0:1])
        return {"alphas": alphas, "latents": path, "sequences": self._generate(path, generate_kwargs or {}, seed)}

    def postprocess(self, model_outputs, return_tensors: bool = False):
        texts = self._texts(model_outputs["sequences"])
        per_alpha = len(texts) // len(model_outputs["alphas"])
        results = []
        for i, alpha in enumerate(model_outputs["alphas"].tolist()):
            item: dict[str, Any] = {"alpha": round(alpha, 6)}
            if per_alpha == 1:
                item["text"] = texts[i]
            else:
                item["text"] = texts[i * per_alpha : (i + 1) * per_alpha]
            if return_tensors:
                item["latent"] = model_outputs["latents"][i]
            results.append(item)
        return results


class SentenceAnalogyPipeline(_OptimusPipeline):
    """
    `("a", "b", "c")` (a : b :: c : ?) → `[{"text": d}]`, decoding z_c + degree·(z_b − z_a) (`degree` defaults
    to 1). Also accepts `{"a": ..., "b": ..., "c": ...}`.
    """

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, list) and len(inputs) == 3 and all(isinstance(x, str) for x in inputs):
            inputs = tuple(inputs)
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs, max_length: int = 64):
        if isinstance(inputs, dict):
            if set(inputs) != {"a", "b", "c"}:
                raise ValueError(f"a dict input needs exactly the keys 'a', 'b', 'c'; got {sorted(inputs)}")
            inputs = (inputs["a"], inputs["b"], inputs["c"])
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 3:
            raise ValueError(
                f"sentence-analogy expects three sentences (a, b, c) for a : b :: c : ?; got {inputs!r}"
            )
        texts = [_check_text(t, f"sentence {name!r}") for t, name in zip(inputs, "abc")]
        return self._tokenize(texts, max_length)

    def _forward(self, model_inputs, degree: float = 1.0, generate_kwargs=None, seed=None, num_steps=None):
        mean = self._encode_mean(model_inputs)
        target = mean[2:3] + degree * (mean[1:2] - mean[0:1])
        return {"latents": target, "sequences": self._generate(target, generate_kwargs or {}, seed)}

    postprocess = _OptimusPipeline._texts_postprocess


class SentenceReconstructionPipeline(_OptimusPipeline):
    """`"sentence"` → `[{"text": reconstruction}]`: encode with the posterior mean, decode."""

    def preprocess(self, inputs, max_length: int = 64):
        return self._tokenize([_check_text(inputs, "the input sentence")], max_length)

    def _forward(self, model_inputs, generate_kwargs=None, seed=None, num_steps=None, degree=None):
        mean = self._encode_mean(model_inputs)
        return {"latents": mean, "sequences": self._generate(mean, generate_kwargs or {}, seed)}

    postprocess = _OptimusPipeline._texts_postprocess


class SentenceLatentPipeline(_OptimusPipeline):
    """`"sentence"` → the posterior mean μ(x) as a list of `latent_size` floats (a tensor with `return_tensors=True`)."""

    def _sanitize_parameters(self, **kwargs):
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        if forward.pop("generate_kwargs"):
            unknown = sorted(kwargs.keys() - set(_OWN_PARAMETERS))
            raise ValueError(f"sentence-latent takes no generation arguments; got {unknown}")
        return preprocess, forward, postprocess

    def preprocess(self, inputs, max_length: int = 64):
        return self._tokenize([_check_text(inputs, "the input sentence")], max_length)

    def _forward(self, model_inputs, **unused):
        return {"mean": self._encode_mean(model_inputs)}

    def postprocess(self, model_outputs, return_tensors: bool = False):
        mean = model_outputs["mean"][0]
        return mean if return_tensors else mean.tolist()


__all__ = [
    "SentenceInterpolationPipeline",
    "SentenceAnalogyPipeline",
    "SentenceReconstructionPipeline",
    "SentenceLatentPipeline",
]
