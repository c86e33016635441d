"""Gradio app for FQ-BigGAN (and any GAN served by the image-generation pipelines): classes in, an image grid out.

A class-conditional model (`config.num_classes > 0`) gets a class picker with the names of `config.id2label`;
an unconditional one only the number of images. Both have a truncation slider and a seed.

    python -m hf_dgm.demo runs/fq-biggan-digits        # any saved FQ-BigGAN folder or Hub repo id
"""

from __future__ import annotations

import os
from typing import Any

from ...demo.common import guarded, load_pipeline, model_title, parse_seed, run_app


# the Space's README metadata (upload/publish_space.py)
SPACE = {"emoji": "🎨", "colorFrom": "pink", "colorTo": "yellow",
         "short_description": "Generate images class by class with FQ-BigGAN"}
TASKS = ("class-conditional-image-generation", "unconditional-image-generation")
MAX_CLASSES_SHOWN = 1000


def class_names(config) -> list[str]:
    """Class names in id order, from `id2label` (ids as strings where a name is missing)."""
    num_classes = int(getattr(config, "num_classes", 0) or 0)
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    return [id2label.get(i, str(i)) for i in range(num_classes)]


class GANDemo:
    def __init__(self, model: str | os.PathLike, revision: str | None = None, device: Any = None):
        from transformers import AutoConfig

        from ...demo.common import register_local_families

        register_local_families()
        config = AutoConfig.from_pretrained(str(model), trust_remote_code=True, revision=revision)
        self.model_id, self.revision = str(model), revision
        self.classes = class_names(config)
        task = TASKS[0] if self.classes else TASKS[1]
        self.pipe = load_pipeline(task, model, revision=revision, device=device)
        self.resolution = int(getattr(self.pipe.model.config, "resolution", 0) or 0)

    @property
    def conditional(self) -> bool:
        return bool(self.classes)

    def generate(self, classes: Any, per_class: Any, truncation: Any, seed: Any, progress=None) -> list:
        """(image, caption) pairs: `per_class` images of each picked class (or `per_class` images in all)."""
        seed = parse_seed(seed)
        per_class = int(per_class)
        truncation = float(truncation)
        if not self.conditional:
            if progress is not None:
                progress(0.1, desc=f"generating {per_class} images")
            images = self.pipe(num_images=per_class, truncation=truncation, seed=seed).images
            return [(image, f"#{i}") for i, image in enumerate(images)]
        if isinstance(classes, str):
            classes = [classes]
        classes = [c for c in (classes or []) if str(c).strip()]
        if not classes:
            raise ValueError("pick at least one class")
        pairs = []
        for k, name in enumerate(classes):
            if progress is not None:
                progress(k / len(classes), desc=f"class {name!r} ({k + 1}/{len(classes)})")
            # one seed per class keeps each class's images the same whatever else is picked
            class_seed = None if seed is None else seed + (self.classes.index(name) if name in self.classes else 0)
            images = self.pipe([name], num_images_per_prompt=per_class, truncation=truncation, seed=class_seed).images
            pairs += [(image, f"{name} #{i}") for i, image in enumerate(images)]
        return pairs


def build_demo(model: str | os.PathLike, revision: str | None = None, device: Any = None):
    """The image-generation Gradio app for a saved folder or Hub repo (`revision`: pinned commit)."""
    import gradio as gr

    app = GANDemo(model, revision=revision, device=device)
    kind = "class-conditional" if app.conditional else "unconditional"
    with gr.Blocks(title=f"FQ-BigGAN — {app.model_id}") as demo:
        gr.Markdown(
            f"# FQ-BigGAN: a GAN with feature quantization\nModel {model_title(model, revision)}, {kind}, "
            f"{app.resolution}×{app.resolution} pixels. Smaller truncation gives more typical, less varied images."
        )
        with gr.Row():
            with gr.Column(scale=1):
                picker = gr.Dropdown(
                    app.classes[:MAX_CLASSES_SHOWN], value=app.classes[:1], multiselect=True, label="Classes",
                    visible=app.conditional, elem_id="gan-classes",
                )
                per_class = gr.Slider(1, 8, value=4, step=1, label="Images per class" if app.conditional else "Images",
                                      elem_id="gan-count")
                truncation = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Truncation", elem_id="gan-truncation")
                seed = gr.Textbox(value="0", label="Seed (empty: random)", max_lines=1, elem_id="gan-seed")
                run = gr.Button("Generate", variant="primary", elem_id="gan-run")
                status = gr.Markdown(elem_id="gan-status")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="Samples", columns=4, object_fit="contain", format="png", elem_id="gan-gallery")

        def generate(classes, n, t, s, progress=gr.Progress()):
            pairs = app.generate(classes, n, t, s, progress=progress)
            return pairs, f"{len(pairs)} images, truncation {float(t):g}, seed {s or 'random'}."

        run.click(guarded(generate, ([],)), [picker, per_class, truncation, seed], [gallery, status])
    demo.gan = app
    return demo


def main(argv: list[str] | None = None) -> None:
    """`hf-dgm demo fq_biggan MODEL_DIR_OR_REPO [--revision R] [--host H] [--port P]`."""
    run_app(build_demo, argv, prog="hf-dgm demo fq_biggan")


if __name__ == "__main__":
    main()
