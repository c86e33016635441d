"""Gradio app for FQ-U-GAT-IT: an image in, the translated image and the generator's CAM heat map out.

The `image-translation` pipeline resizes the input to the model's `image_size`, translates it A→B or B→A and, with
`return_attention=True`, returns the CAM heat map (jet colours: blue low, red high). "Keep the input size" resizes
both back to the uploaded image's size. The translation is deterministic: no seed.

    python -m hf_dgm.demo runs/fq-ugatit-selfie2anime        # any saved FQ-U-GAT-IT folder or Hub repo id
"""

from __future__ import annotations

import os
from typing import Any

from ...demo.common import guarded, load_pipeline, model_title, run_app


# the Space's README metadata (upload/publish_space.py)
SPACE = {"emoji": "🔁", "colorFrom": "green", "colorTo": "blue",
         "short_description": "Unpaired image-to-image translation with FQ-U-GAT-IT"}
TASK = "image-translation"
DIRECTIONS = ("A2B", "B2A")


class UGATITDemo:
    def __init__(self, model: str | os.PathLike, revision: str | None = None, device: Any = None):
        self.model_id, self.revision = str(model), revision
        self.pipe = load_pipeline(TASK, model, revision=revision, device=device)
        self.image_size = int(self.pipe.model.config.image_size)

    def translate(self, image: Any, direction: Any, keep_size: Any = False) -> tuple:
        """(translated image, CAM heat map) for one uploaded image."""
        if image is None:
            raise ValueError("upload an image first")
        if direction not in DIRECTIONS:
            raise ValueError(f"the direction must be A2B or B2A; got {direction!r}")
        out = self.pipe(image, direction=direction, keep_size=bool(keep_size), return_attention=True)
        return out.images[0], out.attention[0]


def build_demo(model: str | os.PathLike, revision: str | None = None, device: Any = None):
    """The FQ-U-GAT-IT Gradio app for a saved folder or Hub repo (`revision`: pinned commit)."""
    import gradio as gr

    app = UGATITDemo(model, revision=revision, device=device)
    with gr.Blocks(title=f"FQ-U-GAT-IT — {app.model_id}") as demo:
        gr.Markdown(
            f"# FQ-U-GAT-IT: unpaired image-to-image translation\nModel {model_title(model, revision)}, "
            f"{app.image_size}×{app.image_size} pixels. Upload an image of domain A (for A2B) or B (for B2A). "
            "The heat map is the generator's class activation map: where it attends (red high, blue low)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="Input image", type="pil", image_mode="RGB", sources=["upload", "clipboard"], height=256,
                                 elem_id="ug-input")
                direction = gr.Radio(list(DIRECTIONS), value="A2B", label="Direction", elem_id="ug-direction")
                keep_size = gr.Checkbox(value=False, label="Keep the input size", elem_id="ug-keep-size")
                run = gr.Button("Translate", variant="primary", elem_id="ug-run")
                status = gr.Markdown(elem_id="ug-status")
            with gr.Column(scale=2):
                with gr.Row():
                    translated = gr.Image(label="Translated", type="pil", format="png", height=256,
                                         elem_id="ug-output")
                    heatmap = gr.Image(label="CAM heat map", type="pil", format="png", height=256,
                                         elem_id="ug-cam")

        def translate(img, d, keep, progress=gr.Progress()):
            progress(0.1, desc=f"translating {d}")
            out, cam = app.translate(img, d, keep)
            return out, cam, f"Translated {d}: {out.width}×{out.height} pixels."

        run.click(guarded(translate, (None, None)), [image, direction, keep_size], [translated, heatmap, status])
    demo.ugatit = app
    return demo


def main(argv: list[str] | None = None) -> None:
    """`hf-dgm demo fq_ugatit MODEL_DIR_OR_REPO [--revision R] [--host H] [--port P]`."""
    run_app(build_demo, argv, prog="hf-dgm demo fq_ugatit")


if __name__ == "__main__":
    main()
