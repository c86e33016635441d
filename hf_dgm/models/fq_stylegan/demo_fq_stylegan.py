"""Gradio app for FQ-StyleGAN: ψ, noise mode and a seed in, an image grid out; a style-mixing tab.

Tab "Generate": `num_images` samples of the `unconditional-image-generation` pipeline (`truncation_psi`,
`noise_mode`, `seed`). Tab "Style mixing": two seeds and a crossover layer k; the mixed image takes the first k
w's (coarse layers: pose, shape) of seed A and the rest (finer layers: colour, texture) of seed B, through the
model's latent API (`mapping` → `mix_styles` → `synthesis`). Image A of a seed is the pipeline's first image for
that seed.

    python -m hf_dgm.demo runs/fq-stylegan-tiny        # any saved FQ-StyleGAN folder or Hub repo id
"""

from __future__ import annotations

import os
from typing import Any

from ...demo.common import guarded, load_pipeline, model_title, parse_seed, run_app


# the Space's README metadata (upload/publish_space.py)
SPACE = {"emoji": "🖼️", "colorFrom": "indigo", "colorTo": "pink",
         "short_description": "Sample and style-mix images with FQ-StyleGAN"}
TASK = "unconditional-image-generation"
NOISE_MODES = ("const", "random", "none")


def to_pil(images) -> list:
    """(B, C, H, W) in about [-1, 1] → RGB PIL images, rounded as the image-generation pipeline rounds."""
    import numpy as np
    import torch
    from PIL import Image

    array = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).cpu().numpy()
    if array.shape[-1] == 1:
        array = array[..., 0]
    return [Image.fromarray(np.ascontiguousarray(image)).convert("RGB") for image in array]


def _check_psi(value: Any) -> float:
    try:
        psi = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"ψ (truncation) must be a number; got {value!r}") from None
    return psi


def _check_noise_mode(value: Any) -> str:
    if value not in NOISE_MODES:
        raise ValueError(f"the noise mode must be one of {', '.join(NOISE_MODES)}; got {value!r}")
    return value


class StyleGANDemo:
    def __init__(self, model: str | os.PathLike, revision: str | None = None, device: Any = None):
        self.model_id, self.revision = str(model), revision
        self.pipe = load_pipeline(TASK, model, revision=revision, device=device)
        config = self.pipe.model.config
        self.resolution = int(config.resolution)
        self.num_ws = int(config.num_ws)
        self.z_dim = int(config.z_dim)

    def generate(self, num_images: Any, psi: Any, noise_mode: Any, seed: Any, progress=None) -> list:
        """(image, caption) pairs from the pipeline."""
        seed = parse_seed(seed)
        num_images = int(num_images)
        psi, noise_mode = _check_psi(psi), _check_noise_mode(noise_mode)
        if progress is not None:
            progress(0.1, desc=f"generating {num_images} images")
        images = self.pipe(num_images=num_images, truncation_psi=psi, noise_mode=noise_mode, seed=seed).images
        return [(image, f"#{i}") for i, image in enumerate(images)]

    def _ws(self, seed: int, psi: float):
        import torch

        model = self.pipe.model
        z = torch.randn(1, self.z_dim, generator=torch.Generator().manual_seed(seed))  # the pipeline's first z
        return model.mapping(z.to(model.device), truncation_psi=psi)

    def mix(self, seed_a: Any, seed_b: Any, crossover: Any, psi: Any, noise_mode: Any) -> tuple:
        """(image A, image B, mixed): the mix has the first `crossover` w's of A and the rest of B."""
        import torch

        seed_a, seed_b = parse_seed(seed_a), parse_seed(seed_b)
        if seed_a is None or seed_b is None:
            raise ValueError("style mixing needs two seeds (whole numbers ≥ 0)")
        crossover = int(crossover)
        if not 0 <= crossover <= self.num_ws:
            raise ValueError(f"the crossover layer must be between 0 and {self.num_ws}; got {crossover}")
        psi, noise_mode = _check_psi(psi), _check_noise_mode(noise_mode)
        model = self.pipe.model
        ws_a, ws_b = self._ws(seed_a, psi), self._ws(seed_b, psi)
        images = []
        # one image per call: a batch of one renders exactly as the pipeline's first image of that seed
        for ws in (ws_a, ws_b, model.mix_styles(ws_a, ws_b, crossover)):
            generator = torch.Generator(device=model.device).manual_seed(seed_a)  # "random" noise: reproducible
            images += to_pil(model.synthesis(ws, noise_mode=noise_mode, generator=generator))
        return tuple(images)


def build_demo(model: str | os.PathLike, revision: str | None = None, device: Any = None):
    """The FQ-StyleGAN Gradio app for a saved folder or Hub repo (`revision`: pinned commit)."""
    import gradio as gr

    app = StyleGANDemo(model, revision=revision, device=device)
    with gr.Blocks(title=f"FQ-StyleGAN — {app.model_id}") as demo:
        gr.Markdown(
            f"# FQ-StyleGAN: StyleGAN2 with feature quantization\nModel {model_title(model, revision)}, "
            f"{app.resolution}×{app.resolution} pixels, {app.num_ws} style inputs (w's). ψ truncates in w space: "
            "w ← w_avg + ψ·(w − w_avg); ψ = 1 is no truncation, ψ = 0 the average image."
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    count = gr.Slider(1, 8, value=4, step=1, label="Images", elem_id="sg-count")
                    psi = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="ψ (truncation)", elem_id="sg-psi")
                    noise = gr.Radio(list(NOISE_MODES), value="const", label="Noise", elem_id="sg-noise")
                    seed = gr.Textbox(value="0", label="Seed (empty: random)", max_lines=1, elem_id="sg-seed")
                    run = gr.Button("Generate", variant="primary", elem_id="sg-run")
                    status = gr.Markdown(elem_id="sg-status")
                with gr.Column(scale=2):
                    gallery = gr.Gallery(label="Samples", columns=4, object_fit="contain", format="png",
                                         elem_id="sg-gallery")

            def generate(n, p, m, s, progress=gr.Progress()):
                pairs = app.generate(n, p, m, s, progress=progress)
                return pairs, f"{len(pairs)} images, ψ {float(p):g}, noise {m}, seed {s or 'random'}."

            run.click(guarded(generate, ([],)), [count, psi, noise, seed], [gallery, status])

        with gr.Tab("Style mixing"):
            with gr.Row():
                with gr.Column(scale=1):
                    seed_a = gr.Textbox(value="0", label="Seed A (coarse styles)", max_lines=1, elem_id="mix-seed-a")
                    seed_b = gr.Textbox(value="1", label="Seed B (fine styles)", max_lines=1, elem_id="mix-seed-b")
                    crossover = gr.Slider(0, app.num_ws, value=app.num_ws // 2, step=1,
                                          label="Crossover: w's taken from A", elem_id="mix-crossover")
                    mix_psi = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="ψ (truncation)", elem_id="mix-psi")
                    mix_noise = gr.Radio(list(NOISE_MODES), value="const", label="Noise", elem_id="mix-noise")
                    mix_run = gr.Button("Mix", variant="primary", elem_id="mix-run")
                    mix_status = gr.Markdown(elem_id="mix-status")
                with gr.Column(scale=2):
                    with gr.Row():
                        out_a = gr.Image(label="A", type="pil", format="png", height=256, elem_id="mix-a")
                        out_b = gr.Image(label="B", type="pil", format="png", height=256, elem_id="mix-b")
                        out_mix = gr.Image(label="Mixed", type="pil", format="png", height=256, elem_id="mix-out")

            def mix(a, b, k, p, m):
                image_a, image_b, mixed = app.mix(a, b, k, p, m)
                k = int(k)
                return image_a, image_b, mixed, f"w's 1–{k} from seed {a}, {k + 1}–{app.num_ws} from seed {b}."

            mix_run.click(guarded(mix, (None, None, None)), [seed_a, seed_b, crossover, mix_psi, mix_noise],
                          [out_a, out_b, out_mix, mix_status])
    demo.stylegan = app
    return demo


def main(argv: list[str] | None = None) -> None:
    """`hf-dgm demo fq_stylegan MODEL_DIR_OR_REPO [--revision R] [--host H] [--port P]`."""
    run_app(build_demo, argv, prog="hf-dgm demo fq_stylegan")


if __name__ == "__main__":
    main()
