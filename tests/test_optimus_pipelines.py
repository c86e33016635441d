"""The four sentence pipelines: registration, documented structures, batching, generation kwargs, bad input."""

from __future__ import annotations

import pytest
import torch
from transformers import pipeline

import hf_dgm  # noqa: F401
from hf_dgm import OptimusForConditionalGeneration
from optimus_tiny import SENTENCES, build_parts

PAIR = (SENTENCES[0], SENTENCES[1])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("optimus")
    enc_dir, dec_dir = build_parts(root, "gpt2")
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    model.save_pretrained(root / "optimus-dir")
    return str(root / "optimus-dir")


@pytest.fixture(scope="module")
def pipes(model_dir):
    tasks = ["sentence-interpolation", "sentence-analogy", "sentence-reconstruction", "sentence-latent"]
    return {task: pipeline(task, model=model_dir, device="cpu") for task in tasks}


def test_interpolation_structure(pipes):
    out = pipes["sentence-interpolation"](PAIR, num_steps=5, max_new_tokens=6)
    assert [item["alpha"] for item in out] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(isinstance(item["text"], str) for item in out)
    # endpoints are the reconstructions of the two sentences (greedy)
    recon = pipes["sentence-reconstruction"]([PAIR[0], PAIR[1]], max_new_tokens=6)
    assert out[0]["text"] == recon[0][0]["text"] and out[-1]["text"] == recon[1][0]["text"]
    as_list = pipes["sentence-interpolation"](list(PAIR), num_steps=2, max_new_tokens=6)
    as_dict = pipes["sentence-interpolation"]({"source": PAIR[0], "target": PAIR[1]}, num_steps=2, max_new_tokens=6)
    assert as_list == as_dict == [out[0], out[-1]]


def test_interpolation_batch_and_generation_kwargs(pipes):
    pipe = pipes["sentence-interpolation"]
    batch = pipe([PAIR, (SENTENCES[2], SENTENCES[3])], num_steps=3, max_new_tokens=4)
    assert len(batch) == 2 and all(len(item) == 3 for item in batch)
    beams = pipe(PAIR, num_steps=2, num_beams=2, num_return_sequences=2, max_new_tokens=4)
    assert all(isinstance(item["text"], list) and len(item["text"]) == 2 for item in beams)
    sampled_a = pipe(PAIR, num_steps=3, do_sample=True, seed=7, max_new_tokens=6)
    sampled_b = pipe(PAIR, num_steps=3, do_sample=True, seed=7, max_new_tokens=6)
    assert sampled_a == sampled_b
    with_latents = pipe(PAIR, num_steps=3, max_new_tokens=2, return_tensors=True)
    assert with_latents[1]["latent"].shape == (8,)


def test_analogy_reconstruction_latent(pipes, model_dir):
    analogy = pipes["sentence-analogy"]((SENTENCES[0], SENTENCES[1], SENTENCES[2]), max_new_tokens=5)
    assert isinstance(analogy, list) and set(analogy[0]) == {"text"}
    # a : a :: c : ?  decodes c itself
    same = pipes["sentence-analogy"]({"a": SENTENCES[0], "b": SENTENCES[0], "c": SENTENCES[3]}, max_new_tokens=5)
    assert same == pipes["sentence-reconstruction"](SENTENCES[3], max_new_tokens=5)
    latent = pipes["sentence-latent"](SENTENCES[0])
    assert isinstance(latent, list) and len(latent) == 8 and all(isinstance(v, float) for v in latent)
    model = OptimusForConditionalGeneration.from_pretrained(model_dir).eval()
    batch = model.processor([SENTENCES[0]])
    expected = model.encode(batch["input_ids"], batch["attention_mask"]).mean[0]
    torch.testing.assert_close(torch.tensor(latent), expected)
    batched = pipes["sentence-latent"]([SENTENCES[0], SENTENCES[1]])
    assert len(batched) == 2 and batched[0] == pytest.approx(latent)


@pytest.mark.parametrize(
    "task, bad, message",
    [
        ("sentence-interpolation", (SENTENCES[0],), "pair"),
        ("sentence-interpolation", ("", SENTENCES[0]), "non-empty"),
        ("sentence-interpolation", (SENTENCES[0], 3), "string"),
        ("sentence-interpolation", {"source": SENTENCES[0]}, "source"),
        ("sentence-analogy", (SENTENCES[0], SENTENCES[1]), "three"),
        ("sentence-reconstruction", "   ", "non-empty"),
        ("sentence-reconstruction", 42, "string"),
        ("sentence-latent", None, "string"),
    ],
)
def test_bad_inputs_raise(pipes, task, bad, message):
    with pytest.raises(ValueError, match=message):
        pipes[task](bad)


def test_bad_parameters_raise(pipes):
    with pytest.raises(ValueError, match="num_steps"):
        pipes["sentence-interpolation"](PAIR, num_steps=1)
    with pytest.raises(ValueError, match="num_steps"):
        pipes["sentence-interpolation"](PAIR, num_steps=2.5)
    with pytest.raises(ValueError, match="generation"):
        pipes["sentence-latent"](SENTENCES[0], num_beams=2)


@pytest.mark.parametrize(
    "task, inputs, kwargs, named",
    [
        ("sentence-interpolation", PAIR, {"degree": 2.0}, "degree"),  # another pipeline's parameter
        ("sentence-analogy", (SENTENCES[0], SENTENCES[1], SENTENCES[2]), {"num_steps": 3}, "num_steps"),
        ("sentence-reconstruction", SENTENCES[0], {"degree": 0.5}, "degree"),
        ("sentence-reconstruction", SENTENCES[0], {"num_steps": 3}, "num_steps"),
        ("sentence-latent", SENTENCES[0], {"seed": 3}, "seed"),
        ("sentence-reconstruction", SENTENCES[0], {"max_new_token": 3}, "max_new_token"),  # a typo: generate names it
        ("sentence-interpolation", PAIR, {"temprature": 0.5}, "temprature"),
    ],
)
def test_unknown_keywords_raise_naming_them(pipes, task, inputs, kwargs, named):
    with pytest.raises(ValueError, match=named):
        pipes[task](inputs, **kwargs)


def test_seed_is_local_to_the_call(pipes):
    """`seed=` makes sampling reproducible without reseeding the caller's global RNG (the caller's later draws
    still depend on the caller's own seed)."""
    pipe = pipes["sentence-reconstruction"]
    kwargs = dict(seed=3, do_sample=True, max_new_tokens=6, min_new_tokens=6)
    outputs, draws = [], []
    for caller_seed in (123, 456):
        torch.manual_seed(caller_seed)
        outputs.append(pipe(["a man is playing a guitar ."], **kwargs))
        draws.append(torch.rand(4))
    assert outputs[0] == outputs[1]
    assert not torch.equal(draws[0], draws[1])
