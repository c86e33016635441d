"""Pipelines over Optimus's latent space: interpolation, analogy, reconstruction and sentence latents.

```python
>>> import hf_dgm
>>> from transformers import pipeline
>>> pipe = pipeline("sentence-interpolation", model="optimus-dir")
>>> pipe(("a man is playing a guitar .", "two dogs run through the snow ."), num_steps=5)
[{'alpha': 0.0, 'text': ...}, {'alpha': 0.25, 'text': ...}, ..., {'alpha': 1.0, 'text': ...}]
```
Every pipeline takes one input or a non-empty list of inputs (a list gives a list of results). Keyword arguments
other than the pipeline's own go to generation (`num_beams`, `do_sample`, `top_p`, `max_new_tokens`, ...), which
raises a `ValueError` naming any it does not know; a parameter of another Optimus pipeline (`degree` given to
`sentence-interpolation`, say) raises a `ValueError` too: nothing is silently dropped.

Bounded work: `sentence-interpolation` refuses `num_steps` above `max_num_steps` (default
`DEFAULT_MAX_NUM_STEPS` = 256; pass a larger `max_num_steps` to allow more) and decodes the path in chunks of
`LATENT_CHUNK_SIZE` latents, so memory does not grow with `num_steps`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Pipeline

from .processing_optimus import OptimusProcessor
from ...modules.validation import check_float, check_int

_OWN_PARAMETERS = ("max_length", "num_steps", "max_num_steps", "degree", "return_tensors", "seed")
DEFAULT_MAX_NUM_STEPS = 256
LATENT_CHUNK_SIZE = 64


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string; got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{what} is not valid Unicode text: it holds {value[err.start:err.end]!r} at position {err.start} "
            "(a lone surrogate); pass text that encodes to UTF-8"
        ) from None
    return value


class _OptimusPipeline(Pipeline):
    """Shared plumbing: the two-tokenizer processor, parameter routing, and per-item batching."""

    #: the pipeline's own parameters (of `_OWN_PARAMETERS`) that this task uses; the others raise
    _task_parameters: tuple[str, ...] = ("max_length", "return_tensors", "seed")
    #: whether keyword arguments other than the own parameters go to generation
    _generates = True

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

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise ValueError(f"`inputs` is an empty {type(inputs).__name__}: pass one input or a non-empty list")
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(
        self, max_length=None, num_steps=None, max_num_steps=None, degree=None, return_tensors=None, seed=None,
        **generate_kwargs,
    ):
        given = {"max_length": max_length, "num_steps": num_steps, "max_num_steps": max_num_steps, "degree": degree,
                 "return_tensors": return_tensors, "seed": seed}
        foreign = sorted(k for k, v in given.items() if v is not None and k not in self._task_parameters)
        if foreign:
            raise ValueError(
                f"{type(self).__name__} does not take {foreign} (its parameters: {list(self._task_parameters)}"
                + (", plus generation arguments)" if self._generates else ")")
            )
        if generate_kwargs and not self._generates:
            raise ValueError(
                f"{type(self).__name__} takes no generation arguments; got {sorted(generate_kwargs)} (its parameters: "
                f"{list(self._task_parameters)})"
            )
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {"generate_kwargs": generate_kwargs} if self._generates else {}
        postprocess: dict[str, Any] = {}
        if max_length is not None:
            preprocess["max_length"] = check_int(max_length, "max_length", minimum=3)
        cap = DEFAULT_MAX_NUM_STEPS if max_num_steps is None else check_int(max_num_steps, "max_num_steps", minimum=2)
        if num_steps is not None:
            num_steps = check_int(num_steps, "num_steps", minimum=2)
            if num_steps > cap:
                raise ValueError(
                    f"`num_steps`={num_steps} exceeds `max_num_steps`={cap} (the default cap bounds the work of one "
                    "call); pass a larger `max_num_steps` to allow it"
                )
            forward["num_steps"] = num_steps
        if degree is not None:
            forward["degree"] = check_float(degree, "degree")
        if seed is not None:
            forward["seed"] = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
        for key in ("num_beams", "num_return_sequences", "max_new_tokens"):
            if generate_kwargs.get(key) is not None:
                check_int(generate_kwargs[key], key, minimum=1)
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

    _task_parameters = ("max_length", "num_steps", "max_num_steps", "return_tensors", "seed")

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

    def _forward(self, model_inputs, num_steps: int = 5, generate_kwargs=None, seed=None):
        mean = self._encode_mean(model_inputs)
        alphas = torch.linspace(0.0, 1.0, num_steps, device=mean.device, dtype=mean.dtype)
        path = mean[0:1] + alphas.unsqueeze(1) * (mean[1:2] - mean[0:1])
        chunks = [self._generate(chunk, generate_kwargs or {}, None if seed is None else seed + i)
                  for i, chunk in enumerate(path.split(LATENT_CHUNK_SIZE))]
        return {"alphas": alphas, "latents": path, "sequences": self._pad_and_cat(chunks)}

    def _pad_and_cat(self, chunks: list[torch.Tensor]) -> torch.Tensor:
        if len(chunks) == 1:
            return chunks[0]
        pad = self.model.config.decoder_pad_token_id
        pad = self.model.config.decoder_eos_token_id if pad is None else pad
        length = max(c.shape[1] for c in chunks)
        return torch.cat([torch.nn.functional.pad(c, (0, length - c.shape[1]), value=pad or 0) for c in chunks])

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

    _task_parameters = ("max_length", "degree", "return_tensors", "seed")

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

    def _forward(self, model_inputs, degree: float = 1.0, generate_kwargs=None, seed=None):
        mean = self._encode_mean(model_inputs)
        target = mean[2:3] + degree * (mean[1:2] - mean[0:1])
        return {"latents": target, "sequences": self._generate(target, generate_kwargs or {}, seed)}

    postprocess = _OptimusPipeline._texts_postprocess


class SentenceReconstructionPipeline(_OptimusPipeline):
    """`"sentence"` → `[{"text": reconstruction}]`: encode with the posterior mean, decode."""

    def preprocess(self, inputs, max_length: int = 64):
        return self._tokenize([_check_text(inputs, "the input sentence")], max_length)

    def _forward(self, model_inputs, generate_kwargs=None, seed=None):
        mean = self._encode_mean(model_inputs)
        return {"latents": mean, "sequences": self._generate(mean, generate_kwargs or {}, seed)}

    postprocess = _OptimusPipeline._texts_postprocess


class SentenceLatentPipeline(_OptimusPipeline):
    """`"sentence"` → the posterior mean μ(x) as a list of `latent_size` floats (a tensor with `return_tensors=True`)."""

    _task_parameters = ("max_length", "return_tensors")
    _generates = False

    def preprocess(self, inputs, max_length: int = 64):
        return self._tokenize([_check_text(inputs, "the input sentence")], max_length)

    def _forward(self, model_inputs):
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
