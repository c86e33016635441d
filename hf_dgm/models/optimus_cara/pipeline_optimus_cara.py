"""The `label-conditional-generation` pipeline: labels in, sentences out.

```python
>>> import hf_dgm
>>> from transformers import pipeline
>>> pipe = pipeline("label-conditional-generation", model="optimus-cara-dir")
>>> pipe("positive", num_return_sequences=3, seed=0)
[{'label': 'positive', 'text': ...}, {'label': 'positive', 'text': ...}, {'label': 'positive', 'text': ...}]
>>> pipe(["negative", 1], seed=0)           # a list of labels: one list of results per label
[[{'label': 'negative', 'text': ...}], [{'label': 'positive', 'text': ...}]]
```
A label is a name of `config.id2label` or an id. `generator` (a `torch.Generator`) or `seed` (a shortcut that makes
one) fixes the latents drawn from the generator G, shared across the labels of one call in order; decoding is greedy
unless generation arguments say otherwise (`do_sample`, `top_p`, `max_new_tokens`, ...), in which case the
decoder's sampling is seeded from the same generator (the caller's global RNG is restored afterwards).
`return_tensors=True` adds each sentence's latent.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Pipeline

from ..optimus.processing_optimus import OptimusProcessor
from ...modules.validation import check_int

DEFAULT_MAX_RETURN_SEQUENCES = 256


class LabelConditionalGenerationPipeline(Pipeline):
    """Labels (names or ids) → sentences generated for them (see the module docstring)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        processor = kwargs.pop("optimus_processor", None)
        super().__init__(*args, **kwargs)
        if processor is None:
            processor = getattr(self.model, "processor", None)
        if processor is None:
            revision = getattr(self.model.config, "_commit_hash", None)
            processor = OptimusProcessor.from_pretrained(self.model.name_or_path, revision=revision)
        self.processor = processor

    def __call__(self, inputs=None, *, seed: int | None = None, generator: torch.Generator | None = None, **kwargs):
        if inputs is None:
            raise ValueError("pass a label (a name of config.id2label or an id) or a list of labels")
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            raise ValueError(f"`inputs` is an empty {type(inputs).__name__}: pass one label or a non-empty list")
        if seed is not None and generator is not None:
            raise ValueError("pass `seed` or `generator`, not both")
        if seed is not None:
            generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0, maximum=2**63 - 1))
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"`generator` must be a torch.Generator; got {type(generator).__name__}")
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        return super().__call__(inputs, generator=generator, **kwargs)

    def _sanitize_parameters(self, num_return_sequences=None, max_return_sequences=None, return_tensors=None,
                             generator=None, **generate_kwargs):
        cap = DEFAULT_MAX_RETURN_SEQUENCES if max_return_sequences is None else check_int(
            max_return_sequences, "max_return_sequences", minimum=1)
        forward: dict[str, Any] = {"generate_kwargs": generate_kwargs, "generator": generator}
        if num_return_sequences is not None:
            num_return_sequences = check_int(num_return_sequences, "num_return_sequences", minimum=1)
            if num_return_sequences > cap:
                raise ValueError(f"`num_return_sequences`={num_return_sequences} exceeds `max_return_sequences`={cap}"
                                 " (the default cap bounds one call's work); pass a larger `max_return_sequences`")
            forward["num_return_sequences"] = num_return_sequences
        for key in ("num_beams", "max_new_tokens"):
            if generate_kwargs.get(key) is not None:
                check_int(generate_kwargs[key], key, minimum=1)
        postprocess = {"return_tensors": bool(return_tensors)} if return_tensors is not None else {}
        return {}, forward, postprocess

    def preprocess(self, inputs):
        if isinstance(inputs, bool) or not isinstance(inputs, (str, int)):
            raise ValueError(f"a label must be a name of config.id2label or an int id; got {type(inputs).__name__}")
        return {"labels": self.model.label_ids(inputs)}

    def _forward(self, model_inputs, num_return_sequences: int = 1, generate_kwargs=None, generator=None):
        generate_kwargs = dict(generate_kwargs or {})
        ids = model_inputs["labels"]
        noise = self.model.sample_noise(ids.shape[0] * num_return_sequences, generator)
        sampling = bool(generate_kwargs.get("do_sample"))
        if not (sampling and generator is not None):
            sequences, latents = self.model.generate(ids, num_return_sequences, noise=noise, return_latents=True,
                                                     **generate_kwargs)
        else:  # the decoder samples from the global RNG: seed it from `generator`, restore the caller's state
            decode_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            devices = [self.model.device] if self.model.device.type != "cpu" else []
            with torch.random.fork_rng(devices=devices, device_type=self.model.device.type if devices else "cuda"):
                torch.manual_seed(decode_seed)
                sequences, latents = self.model.generate(ids, num_return_sequences, noise=noise, return_latents=True,
                                                         **generate_kwargs)
        return {"labels": ids.repeat_interleave(num_return_sequences), "sequences": sequences, "latents": latents}

    def postprocess(self, model_outputs, return_tensors: bool = False):
        texts = self.processor.batch_decode(model_outputs["sequences"])
        names = self.model.config.id2label
        results = []
        for i, (label, text) in enumerate(zip(model_outputs["labels"].tolist(), texts)):
            item: dict[str, Any] = {"label": names.get(label, str(label)), "text": text}
            if return_tensors:
                item["latent"] = model_outputs["latents"][i]
            results.append(item)
        return results


__all__ = ["LabelConditionalGenerationPipeline", "DEFAULT_MAX_RETURN_SEQUENCES"]
