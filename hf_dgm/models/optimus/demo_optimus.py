"""Gradio app for Optimus: walk the latent space between sentences.

Tabs: interpolation (two sentences → the sentences decoded along the line between their posterior means, with a
steps slider), analogy (a : b :: c : ?) and reconstruction. Every tab has the decoding choice (greedy, beam
search, nucleus sampling) and a seed.

    python -m hf_dgm.demo runs/optimus-main        # any saved Optimus folder or Hub repo id
"""

from __future__ import annotations

import os
from typing import Any

from ...demo.common import guarded, load_pipeline, model_title, parse_seed, run_app, sibling_pipeline


# the Space's README metadata (upload/publish_space.py)
SPACE = {"emoji": "🔀", "colorFrom": "indigo", "colorTo": "green",
         "short_description": "Interpolate, complete analogies and reconstruct sentences"}
TASKS = ("sentence-interpolation", "sentence-analogy", "sentence-reconstruction")
DECODINGS = {
    "greedy": {},
    "beam search (4 beams)": {"num_beams": 4},
    "sampling (top-p 0.9)": {"do_sample": True, "top_p": 0.9, "top_k": 0},
}
EMPTY = "(empty)"  # shown where the decoder stopped at once
EXAMPLE_PAIR = ("a man is playing a guitar .", "two dogs run through the snow .")
EXAMPLE_ANALOGY = ("a man is playing a guitar .", "a woman is playing a guitar .", "a man is reading a book .")


def generation_kwargs(decoding: str, max_new_tokens: Any) -> dict[str, Any]:
    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r}; choose one of {', '.join(DECODINGS)}")
    try:
        max_new = int(max_new_tokens)
    except (TypeError, ValueError):
        raise ValueError(f"max new tokens must be a whole number; got {max_new_tokens!r}") from None
    if max_new < 1:
        raise ValueError(f"max new tokens must be at least 1; got {max_new}")
    return {**DECODINGS[decoding], "max_new_tokens": max_new}


def format_path(results: list[dict[str, Any]]) -> str:
    """One line per step: `α=0.25  sentence` (several sequences per step: the first; nothing decoded: `(empty)`)."""
    lines = []
    for item in results:
        text = item["text"][0] if isinstance(item["text"], list) else item["text"]
        lines.append(f"α={item['alpha']:.2f}  {text.strip() or EMPTY}")
    return "\n".join(lines)


class OptimusDemo:
    """The three Optimus pipelines over one loaded model."""

    def __init__(self, model: str | os.PathLike, revision: str | None = None, device: Any = None):
        self.model_id, self.revision = str(model), revision
        self.interpolation = load_pipeline("sentence-interpolation", model, revision=revision, device=device)
        shared = {"optimus_processor": self.interpolation.processor}
        self.analogy = sibling_pipeline(self.interpolation, "sentence-analogy", **shared)
        self.reconstruction = sibling_pipeline(self.interpolation, "sentence-reconstruction", **shared)

    def interpolate(self, first: str, second: str, steps: Any, decoding: str, seed: Any, max_new_tokens: Any,
                    progress=None) -> tuple[str, str]:
        gen = generation_kwargs(decoding, max_new_tokens)
        num_steps = int(steps)
        if progress is not None:
            progress(0.1, desc=f"decoding {num_steps} points")
        results = self.interpolation((first, second), num_steps=num_steps, seed=parse_seed(seed), **gen)
        return format_path(results), f"Decoded {len(results)} points from α=0 to α=1 ({decoding})."

    def analogy_(self, a: str, b: str, c: str, degree: Any, decoding: str, seed: Any, max_new_tokens: Any,
                 progress=None) -> tuple[str, str]:
        gen = generation_kwargs(decoding, max_new_tokens)
        if progress is not None:
            progress(0.1, desc="decoding z_c + degree·(z_b − z_a)")
        result = self.analogy((a, b, c), degree=float(degree), seed=parse_seed(seed), **gen)
        return result[0]["text"].strip() or EMPTY, f"a : b :: c : ? decoded with degree {float(degree):g} ({decoding})."

    def reconstruct(self, sentence: str, decoding: str, seed: Any, max_new_tokens: Any, progress=None) -> tuple[str, str]:
        gen = generation_kwargs(decoding, max_new_tokens)
        if progress is not None:
            progress(0.1, desc="encoding and decoding")
        result = self.reconstruction(sentence, seed=parse_seed(seed), **gen)
        return result[0]["text"].strip() or EMPTY, f"Decoded from the posterior mean ({decoding})."


def _decoding_controls(gr, prefix: str):
    """One row of decoding choice, seed and max-new-tokens slider (element ids `<prefix>-…`)."""
    with gr.Row():
        decoding = gr.Radio(list(DECODINGS), value="greedy", label="Decoding", elem_id=f"{prefix}-decoding")
        seed = gr.Textbox(value="0", label="Seed (empty: random)", max_lines=1, elem_id=f"{prefix}-seed")
        max_new = gr.Slider(4, 64, value=30, step=1, label="Max new tokens", elem_id=f"{prefix}-max-new-tokens")
    return decoding, seed, max_new


def _interpolation_tab(gr, app: OptimusDemo) -> None:
    with gr.Tab("Interpolation", id="interpolation"):
        with gr.Row():
            first = gr.Textbox(value=EXAMPLE_PAIR[0], label="First sentence", elem_id="interp-first")
            second = gr.Textbox(value=EXAMPLE_PAIR[1], label="Second sentence", elem_id="interp-second")
        steps = gr.Slider(2, 12, value=5, step=1, label="Steps (both ends included)", elem_id="interp-steps")
        decoding, seed, max_new = _decoding_controls(gr, "interp")
        run = gr.Button("Interpolate", variant="primary", elem_id="interp-run")
        path = gr.Textbox(label="Interpolation path", lines=8, interactive=False, elem_id="interp-output")
        status = gr.Markdown(elem_id="interp-status")

        def interpolate(a, b, n, dec, s, m, progress=gr.Progress()):
            return app.interpolate(a, b, n, dec, s, m, progress=progress)

        run.click(guarded(interpolate, ("",)), [first, second, steps, decoding, seed, max_new], [path, status])


def _analogy_tab(gr, app: OptimusDemo) -> None:
    with gr.Tab("Analogy", id="analogy"):
        with gr.Row():
            a = gr.Textbox(value=EXAMPLE_ANALOGY[0], label="a", elem_id="analogy-a")
            b = gr.Textbox(value=EXAMPLE_ANALOGY[1], label="b", elem_id="analogy-b")
            c = gr.Textbox(value=EXAMPLE_ANALOGY[2], label="c", elem_id="analogy-c")
        degree = gr.Slider(0.0, 2.0, value=1.0, step=0.1, label="Degree", elem_id="analogy-degree")
        decoding, seed, max_new = _decoding_controls(gr, "analogy")
        run = gr.Button("Complete a : b :: c : ?", variant="primary", elem_id="analogy-run")
        out = gr.Textbox(label="d", interactive=False, elem_id="analogy-output")
        status = gr.Markdown(elem_id="analogy-status")

        def analogy(x, y, z, d, dec, s, m, progress=gr.Progress()):
            return app.analogy_(x, y, z, d, dec, s, m, progress=progress)

        run.click(guarded(analogy, ("",)), [a, b, c, degree, decoding, seed, max_new], [out, status])


def _reconstruction_tab(gr, app: OptimusDemo) -> None:
    with gr.Tab("Reconstruction", id="reconstruction"):
        sentence = gr.Textbox(value=EXAMPLE_PAIR[0], label="Sentence", elem_id="recon-input")
        decoding, seed, max_new = _decoding_controls(gr, "recon")
        run = gr.Button("Reconstruct", variant="primary", elem_id="recon-run")
        out = gr.Textbox(label="Reconstruction", interactive=False, elem_id="recon-output")
        status = gr.Markdown(elem_id="recon-status")

        def reconstruct(x, dec, s, m, progress=gr.Progress()):
            return app.reconstruct(x, dec, s, m, progress=progress)

        run.click(guarded(reconstruct, ("",)), [sentence, decoding, seed, max_new], [out, status])


def build_demo(model: str | os.PathLike, revision: str | None = None, device: Any = None):
    """The Optimus Gradio app for a saved folder or Hub repo (`revision`: pinned commit): one tab per task, each
    with its inputs, decoding controls, button and outputs."""
    import gradio as gr

    app = OptimusDemo(model, revision=revision, device=device)
    with gr.Blocks(title=f"Optimus — {app.model_id}") as demo:
        gr.Markdown(
            f"# Optimus: a sentence VAE\nModel {model_title(model, revision)}. Sentences are encoded to their "
            "posterior means in the latent space and decoded back; moving between the means moves between sentences."
        )
        with gr.Tabs():
            _interpolation_tab(gr, app)
            _analogy_tab(gr, app)
            _reconstruction_tab(gr, app)
    demo.optimus = app  # the loaded pipelines, for scripts and tests
    return demo


def main(argv: list[str] | None = None) -> None:
    """`hf-dgm demo optimus MODEL_DIR_OR_REPO [--revision R] [--host H] [--port P]`."""
    run_app(build_demo, argv, prog="hf-dgm demo optimus")


if __name__ == "__main__":
    main()
