"""Optimus parity with the original code: the β schedule and one training step, run side by side (issue 27).

Verified against ChunyuanLI/Optimus at commit f3190fe82578f91929ac4984aa8868b61a3eee22 (2023-08-27). The original is
never part of this repository: pass a checkout of it (the folder holding `code/`) as `--original DIR`, e.g.

    git clone https://github.com/ChunyuanLI/Optimus /tmp/orig-optimus
    PYTHONPATH=$PWD python benchmarks/parity/optimus.py --original /tmp/orig-optimus

What runs on the original's side is its own code, unmodified: `frange_cycle_zero_linear` from
`code/examples/big_ae/utils.py`, `VAE` from `code/examples/big_ae/modules/vae.py`, and the `BertForLatentConnector` /
`GPT2ForLatentConnector` of its vendored pytorch-transformers (`code/pytorch_transformers`). Run-time shims, made in
this process only (nothing in the checkout is edited): the package `__init__` of `pytorch_transformers` (which imports
every tokenizer and model of the library, some needing packages absent here) and of `examples/big_ae/modules` are
replaced by empty package objects whose `__path__` is their folder, so only the modules used are imported; `utils.py`
is loaded from its file under a private module name; `six`, `boto3` and `botocore` (imported by its download helpers,
which never run here) get empty stand-ins when they are not installed.

(a) **β schedule.** `frange_cycle_zero_linear(n_iter, 0, β, n_cycle, ratio_increase, ratio_zero)` against
    `hf_dgm.training.optimus.trainer.cyclical_beta` for every step of many (n_iter, n_cycle, ratios, β) combinations;
    the whole-epoch length `run_lm_vae_training.py` gives the schedule under `max_steps` (its lines 269-326:
    `num_train_epochs = max_steps // (len(loader) // accumulation) + 1`, `n_iter = int(num_train_epochs) × len(loader)`,
    β indexed by `step + epoch × len(loader)`) against `OptimusTrainingArguments.beta_schedule_length`; and the β that
    `OptimusTrainer` actually uses at every batch of short runs (with and without gradient accumulation) against the
    original's list at the original's index.
(b) **One training step.** Tiny configurations (BERT 2 layers × 32, GPT-2 2 layers × 32, vocabulary 50260 with
    `<PAD>`/`<BOS>`/`<EOS>` at 50257-50259 as the original hard-codes, latent 8), memory and embedding injection both
    on, dropout off (both sides in eval mode; our forward is told to sample z as in training), every parameter moved
    from its initial value (N(0, 0.02²) added), float64 on both sides (`--dtype float32` to see fp32 rounding).
    The original's weights go to ours through `hf_dgm.models.optimus.convert_optimus` (the converter is part of what is checked).
    Batch: the first `--batch_size` sentences of `../shared/data/snli/train.txt` (real SNLI text), word-level ids
    (a vocabulary built from that file: encoder `[CLS] words [SEP]` padded with 0, decoder `<BOS> words <EOS>` padded
    with `<PAD>`), so sentences of different lengths are padded as in training. z is drawn from the same seed on
    both sides. The original's step: `loss_rec, loss_kl, loss = VAE(inputs, labels)` with `fb_mode` 1 (β > 0: the
    dimension-wise mask at `dim_target_kl`) or 0 (β = 0), `loss.mean().backward()`. Ours:
    `OptimusForConditionalGeneration(..., beta, kl_threshold, sample_latent=True)`, `loss.backward()`. λ is set to
    the midpoint of the two middle KL values of the batch, so the mask keeps half the entries and none sits on λ. Cases: β = 1 and
    β = 0, each with and without `length_weighted_loss`.

Reported per quantity: max |ours − original| and max relative difference = max |ours − original| / max |original|
(relative to the tensor's scale, as `tests/tolerances.py`; elementwise ratios are meaningless where a value is ~0).
Quantities: posterior mean and logvar, z, KL per dimension, the λ mask (number of differing entries), the
reconstruction loss per sentence, the KL term, the total loss, and the gradient of every parameter group. The
script exits with status 1 when a schedule value differs or a step quantity exceeds `--rtol` (default 1e-5).

Measured at the verified commit (2 CPU threads, torch 2.13): the schedule equal bitwise everywhere; in float64 every
step quantity within 6e-14 relative (the λ mask identical). In float32 the gradients agree within 1e-7 relative, but
the KL per dimension only within 3e-5 relative (6e-8 absolute): with weights this close to the prior, KL_d =
½(μ² + e^logvar − logvar − 1) is a difference of terms near 1 that cancel to ~1e-3, so one fp32 rounding of those
terms (6e-8) is large against KL's own scale. That is fp32 cancellation, not a difference of the computations (float64
shows them equal), and the reason float64 is the default here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import os
import sys
import types
from pathlib import Path

VERIFIED_COMMIT = "f3190fe82578f91929ac4984aa8868b61a3eee22"
REPOSITORY = "https://github.com/ChunyuanLI/Optimus"
PAD, BOS, EOS, DECODER_VOCAB = 50257, 50258, 50259, 50260
LATENT = 8
REPO_ROOT = Path(__file__).resolve().parents[2]
SNLI = REPO_ROOT.parent / "shared" / "data" / "snli" / "train.txt"
REQUIRED = (
    "code/examples/big_ae/utils.py",
    "code/examples/big_ae/modules/vae.py",
    "code/pytorch_transformers/modeling_bert.py",
    "code/pytorch_transformers/modeling_gpt2.py",
)


# ------------------------------------------------------------------------------------------------ the original
def check_original(path: str) -> Path:
    root = Path(path).resolve()
    missing = [f for f in REQUIRED if not (root / f).is_file()]
    if missing:
        raise SystemExit(
            f"--original {str(root)!r} is not a checkout of {REPOSITORY} (missing {missing}). Get it with\n"
            f"    git clone {REPOSITORY} /tmp/orig-optimus\nand pass --original /tmp/orig-optimus"
        )
    return root


def _stub_download_dependencies() -> list[str]:
    """`six`, `boto3` and `botocore` are imported by the original's `file_utils.py` / `modeling_utils.py` for Python 2
    compatibility and S3 downloads, neither of which runs here: where they are not installed, empty stand-ins are
    registered (`six.PY2 = False` is the only value read at import)."""
    def missing(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            return True

    import importlib.machinery

    def module(name: str) -> types.ModuleType:
        stub = types.ModuleType(name)
        stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
        added.append(name)
        return stub

    added: list[str] = []
    if missing("six"):
        six = module("six")
        six.PY2, six.PY3, six.string_types = False, True, (str,)
        sys.modules["six"] = six
    if missing("boto3"):
        sys.modules["boto3"] = module("boto3")
    if missing("botocore"):
        botocore = module("botocore")
        config, exceptions = module("botocore.config"), module("botocore.exceptions")
        config.Config = type("Config", (), {"__init__": lambda self, *a, **k: None})
        exceptions.ClientError = type("ClientError", (Exception,), {})
        botocore.config, botocore.exceptions = config, exceptions
        sys.modules.update({"botocore": botocore, "botocore.config": config, "botocore.exceptions": exceptions})
    return added


def import_original(root: Path):
    """(utils, modeling_bert, modeling_gpt2, vae) of the original, without running its package `__init__` files."""
    code = root / "code"
    # our side (transformers, accelerate) is imported first: it must see the real environment, not the stand-ins
    import hf_dgm  # noqa: F401
    import hf_dgm.training.optimus.trainer  # noqa: F401

    stubs = _stub_download_dependencies()
    for name, folder in (("pytorch_transformers", code / "pytorch_transformers"),
                         ("optimus_big_ae_modules", code / "examples" / "big_ae" / "modules")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    spec = importlib.util.spec_from_file_location("optimus_big_ae_utils", code / "examples" / "big_ae" / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    bert = importlib.import_module("pytorch_transformers.modeling_bert")
    gpt2 = importlib.import_module("pytorch_transformers.modeling_gpt2")
    vae = importlib.import_module("optimus_big_ae_modules.vae")
    for name in stubs:  # the stand-ins were needed at import only
        sys.modules.pop(name, None)
    return utils, bert, gpt2, vae


# ------------------------------------------------------------------------------------------------ (a) schedule
def original_whole_epoch_length(batches: int, max_steps: int, accumulation: int) -> int:
    """`n_iter` of run_lm_vae_training.py (lines 269-271 and 325) for a loader of `batches` batches."""
    num_train_epochs = max_steps // (batches // accumulation) + 1
    return int(num_train_epochs) * batches


def schedule_parity(utils) -> list[str]:
    from hf_dgm.training.optimus.trainer import OptimusTrainingArguments, cyclical_beta

    failures = []
    combos = values = 0
    lengths = list(range(1, 301)) + [1003, 1037, 3331, 10007, 508523]
    for n_iter in lengths:
        cycles = (1, 2, 3, 4, 7, 10) if n_iter <= 10007 else (1, 10)
        ratios = ((0.5, 0.25), (0.25, 0.25), (0.3, 0.5), (0.1, 0.3), (0.0, 1.0), (0.5, 0.5), (0.4, 0.3))
        for n_cycle, (zero, increase), beta in itertools.product(cycles, ratios, (1.0, 0.5)):
            if n_iter > 10007 and (zero, increase) != (0.5, 0.25):
                continue
            theirs = utils.frange_cycle_zero_linear(n_iter, 0.0, beta, n_cycle, increase, zero)
            ours = [cyclical_beta(s, n_iter, beta, n_cycle, increase, zero) for s in range(n_iter)]
            differ = [s for s in range(n_iter) if float(theirs[s]) != ours[s]]
            combos += 1
            values += n_iter
            if differ:
                failures.append(f"schedule n_iter={n_iter} n_cycle={n_cycle} zero={zero} increase={increase} "
                                f"beta={beta}: {len(differ)} steps differ, first {differ[:5]}")
    lines = [f"| β schedule: `frange_cycle_zero_linear` vs `cyclical_beta` | {combos} combinations, {values:,} "
             f"values | {'all equal (bitwise)' if not failures else f'{len(failures)} combinations differ'} |"]
    # whole-epoch length under max_steps
    bad = []
    checked = 0
    for batches, max_steps, accumulation in itertools.product((1, 2, 3, 6, 7, 50, 101), (1, 5, 6, 12, 100, 1000),
                                                              (1, 2, 3)):
        if batches // accumulation == 0:
            continue  # the original divides by zero
        args = OptimusTrainingArguments(output_dir="unused", max_steps=max_steps,
                                        gradient_accumulation_steps=accumulation, report_to="none")
        checked += 1
        if args.beta_schedule_length(batches) != original_whole_epoch_length(batches, max_steps, accumulation):
            bad.append((batches, max_steps, accumulation))
    failures += [f"schedule length differs for (batches, max_steps, accumulation) = {b}" for b in bad]
    lines.append(f"| schedule length under `max_steps` (whole epochs) | {checked} (batches, max_steps, accumulation) "
                 f"| {'all equal' if not bad else f'{len(bad)} differ'} |")
    trainer_failures, runs = trainer_schedule_parity(utils)
    failures += trainer_failures
    lines.append(f"| β used by `OptimusTrainer` at each batch vs the original's list at `step + epoch × len(loader)` "
                 f"| {runs} | {'all equal' if not trainer_failures else 'differ'} |")
    return lines, failures


def trainer_schedule_parity(utils) -> tuple[list[str], str]:
    """Runs OptimusTrainer on a tiny model and compares the β of every batch with the original's."""
    import tempfile

    import torch
    from datasets import Dataset

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from optimus_tiny import SENTENCES, build_parts

    from hf_dgm import OptimusForConditionalGeneration
    from hf_dgm.training.optimus.data import OptimusDataCollator, tokenize_sentences
    from hf_dgm.training.optimus.trainer import OptimusTrainer, OptimusTrainingArguments

    failures, described = [], []
    with tempfile.TemporaryDirectory() as tmp:
        enc_dir, dec_dir = build_parts(Path(tmp), "gpt2")
        torch.manual_seed(0)
        model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir),
                                                                                latent_size=8)
        data = tokenize_sentences(Dataset.from_dict({"text": SENTENCES * 3}), model.processor, max_length=16)
        data = data.remove_columns(["text"])  # 24 sentences: 6 batches of 4, or 12 batches of 2
        seen: list[float] = []

        class Spy(OptimusTrainer):
            def compute_loss(self, model, inputs, *args, **kwargs):
                if model.training:
                    seen.append(self.current_beta())
                return super().compute_loss(model, inputs, *args, **kwargs)

        for batch_size, max_steps, accumulation, cycles in ((4, 9, 1, 1), (4, 13, 1, 3), (2, 7, 2, 2), (4, 5, 4, 1)):
            seen.clear()
            args = OptimusTrainingArguments(
                output_dir=tmp, max_steps=max_steps, per_device_train_batch_size=batch_size,
                gradient_accumulation_steps=accumulation, beta_n_cycles=cycles, logging_steps=100,
                save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
            )
            Spy(model=model, args=args, train_dataset=data,
                data_collator=OptimusDataCollator.from_processor(model.processor)).train()
            batches = len(data) // batch_size
            n_iter = original_whole_epoch_length(batches, max_steps, accumulation)
            theirs = utils.frange_cycle_zero_linear(n_iter, 0.0, args.beta, cycles, args.beta_ratio_increase,
                                                    args.beta_ratio_zero)
            # the original's loop: batch `step` of epoch `epoch` uses theirs[step + epoch * batches]
            expected = [float(theirs[i]) for i in range(len(seen))]
            described.append(f"{max_steps} steps × {accumulation} of {batches} batches/epoch, {cycles} cycle(s)")
            if seen != expected:
                failures.append(f"trainer β ({described[-1]}): ours {seen} vs original {expected}")
    return failures, "; ".join(described)


# ------------------------------------------------------------------------------------------------ (b) one step
def snli_batch(batch_size: int):
    """Word-level ids of the first `batch_size` SNLI training sentences (encoder, decoder), padded."""
    import torch

    if not SNLI.is_file():
        raise SystemExit(f"{SNLI} not found: the SNLI sentences of ../shared/data (see its README) are needed")
    lines = [line.strip() for line in SNLI.read_text(encoding="utf-8").splitlines() if line.strip()]
    words = sorted({w for line in lines for w in line.split()})
    enc_vocab = {w: i + 5 for i, w in enumerate(words)}  # 0 pad, 1 unk, 2 cls, 3 sep, 4 mask
    dec_vocab = {w: i for i, w in enumerate(words)}  # < 50257
    if len(dec_vocab) >= PAD:
        raise SystemExit("the SNLI vocabulary does not fit below the decoder's special tokens")
    sentences = lines[:batch_size]
    enc = [[2] + [enc_vocab[w] for w in s.split()] + [3] for s in sentences]
    dec = [[BOS] + [dec_vocab[w] for w in s.split()] + [EOS] for s in sentences]
    width_e, width_d = max(map(len, enc)), max(map(len, dec))
    enc_ids = torch.tensor([r + [0] * (width_e - len(r)) for r in enc])
    dec_ids = torch.tensor([r + [PAD] * (width_d - len(r)) for r in dec])
    return sentences, enc_ids, dec_ids, len(enc_vocab) + 5


def build_pair(bert, gpt2, vae_module, encoder_vocab: int, dtype, seed: int = 0):
    """The original VAE with moved weights, and our model holding the same weights (through the converter)."""
    import torch
    from transformers import BertConfig, GPT2Config

    from hf_dgm import OptimusConfig, OptimusForConditionalGeneration
    from hf_dgm.models.optimus.convert_optimus import convert_decoder_state_dict, convert_encoder_state_dict

    bert_kwargs = dict(vocab_size=encoder_vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    gpt2_kwargs = dict(n_embd=32, n_layer=2, n_head=4, n_positions=64, n_ctx=64, resid_pdrop=0.0, embd_pdrop=0.0,
                       attn_pdrop=0.0)
    torch.manual_seed(seed)
    encoder = bert.BertForLatentConnector(
        bert.BertConfig(vocab_size_or_config_json_file=encoder_vocab, **{k: v for k, v in bert_kwargs.items()
                                                                          if k != "vocab_size"}),
        latent_size=LATENT,
    )
    decoder_config = gpt2.GPT2Config(vocab_size_or_config_json_file=DECODER_VOCAB, **gpt2_kwargs)
    decoder_config.latent_size = LATENT
    decoder = gpt2.GPT2ForLatentConnector(decoder_config, latent_size=LATENT, latent_as_gpt_emb=True,
                                          latent_as_gpt_memory=True)
    with torch.no_grad():  # move every parameter from its initial value, as training does
        generator = torch.Generator().manual_seed(seed + 1)
        for module in (encoder, decoder):
            for param in module.parameters():
                param.add_(0.02 * torch.randn(param.shape, generator=generator))
    original = types.SimpleNamespace(encoder=encoder, decoder=decoder)

    gpt2_kwargs.pop("n_ctx")
    config = OptimusConfig(
        encoder=BertConfig(pad_token_id=0, **bert_kwargs),
        decoder=GPT2Config(vocab_size=DECODER_VOCAB, activation_function="gelu_new", bos_token_id=BOS,
                           eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=True, **gpt2_kwargs),
        latent_size=LATENT, latent_injection="both", pooling="pooler", posterior_logvar_bias=None,
        decoder_bos_token_id=BOS, decoder_eos_token_id=EOS, decoder_pad_token_id=PAD, encoder_pad_token_id=0,
    )
    ours = OptimusForConditionalGeneration(config)
    state = convert_encoder_state_dict(encoder.state_dict())
    state.update(convert_decoder_state_dict(decoder.state_dict(), "both"))
    missing, unexpected = ours.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "attn.bias", "masked_bias"))]
    if missing or unexpected:
        raise SystemExit(f"weights did not transfer: missing {missing}, unexpected {unexpected}")
    encoder.to(dtype), decoder.to(dtype), ours.to(dtype)
    return original, ours, vae_module


def compare(rows: list, name: str, ours, theirs) -> None:
    ours, theirs = ours.detach().double(), theirs.detach().double()
    if ours.shape != theirs.shape:
        raise SystemExit(f"{name}: shape {tuple(ours.shape)} vs original {tuple(theirs.shape)}")
    diff = float((ours - theirs).abs().max()) if ours.numel() else 0.0
    scale = float(theirs.abs().max()) if theirs.numel() else 0.0
    rows.append((name, diff, diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))))


def gradient_groups(name: str) -> str:
    """Parameter group of one of our parameter names."""
    if name.startswith("encoder.embeddings."):
        return "encoder embeddings"
    if name.startswith("encoder.encoder.layer."):
        return f"encoder layer {name.split('.')[3]}"
    if name.startswith("encoder.pooler."):
        return "encoder pooler"
    if name.startswith("posterior."):
        return "posterior head (μ, log σ²)"
    if name.startswith(("decoder.transformer.wte.", "decoder.lm_head.")):
        return "decoder token embeddings / lm_head (tied)"
    if name.startswith("decoder.transformer.wpe."):
        return "decoder position embeddings"
    if name.startswith("decoder.transformer.h."):
        return f"decoder layer {name.split('.')[3]}"
    if name.startswith("decoder.transformer.ln_f."):
        return "decoder final LayerNorm"
    if name.startswith("latent_to_memory."):
        return "latent → memory"
    if name.startswith("latent_to_embedding."):
        return "latent → embedding"
    return name


def one_step(original, ours, vae_module, enc_ids, dec_ids, beta: float, length_weighted: bool, dtype, seed: int = 3):
    """Runs one step on both sides; returns (rows, λ, number of masked dimensions)."""
    import torch

    from hf_dgm.models.optimus.convert_optimus import convert_decoder_state_dict, convert_encoder_state_dict

    ours.config.length_weighted_loss = length_weighted
    with torch.no_grad():  # λ between the two middle KL values of this batch: the mask keeps half the entries
        pooled = original.encoder(enc_ids, (enc_ids > 0).to(dtype))[1]
        mu, logvar = original.encoder.linear(pooled).chunk(2, -1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)
        ordered = kl.flatten().sort().values
        middle = ordered.numel() // 2
        threshold = float(ordered[middle - 1] + ordered[middle]) / 2  # between two values: no entry sits on λ
    args = types.SimpleNamespace(latent_size=LATENT, device=torch.device("cpu"), fb_mode=1 if beta > 0 else 0,
                                 dim_target_kl=threshold, beta=beta, length_weighted_loss=length_weighted)
    vae = vae_module.VAE(original.encoder, original.decoder, _DecoderTokens(), _DecoderTokens(), args).eval()
    vae.zero_grad(), ours.zero_grad()
    ours.eval()
    rows: list = []

    torch.manual_seed(seed)
    loss_rec, loss_kl, loss = vae(enc_ids, dec_ids)
    loss.mean().backward()  # run_lm_vae_training.py: `loss.mean()` (its multi-GPU branch; `loss` is per sentence)
    torch.manual_seed(seed)
    theirs_z = vae.reparameterize(mu, logvar, 1).squeeze(1)  # the same draw the forward made (same seed)

    torch.manual_seed(seed)
    out = ours(input_ids=enc_ids, attention_mask=(enc_ids > 0).long(), decoder_input_ids=dec_ids,
               decoder_attention_mask=(dec_ids != PAD).long(), beta=beta, kl_threshold=threshold, sample_latent=True)
    out.loss.backward()

    compare(rows, "posterior mean μ", out.mean, mu)
    compare(rows, "posterior logvar", out.logvar, logvar)
    compare(rows, "z (same seed)", out.latents, theirs_z)
    compare(rows, "KL per dimension", out.kl_per_dim, kl)
    if beta > 0:
        mask_theirs = (kl > threshold)
        mask_ours = out.kl_per_dim > threshold
        differ = int((mask_theirs != mask_ours).sum())
        rows.append((f"λ mask ({int(mask_theirs.sum())} of {mask_theirs.numel()} kept; entries differing)",
                     float(differ), float(differ)))
    compare(rows, "reconstruction loss (per sentence)", out.reconstruction_loss, loss_rec)
    compare(rows, "KL term (thresholded when β > 0)", out.kl_thresholded, loss_kl)
    compare(rows, "total loss (batch mean)", out.loss, loss.mean())
    theirs_grads = convert_encoder_state_dict(
        {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in original.encoder.named_parameters()})
    theirs_grads.update(convert_decoder_state_dict(
        {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in original.decoder.named_parameters()},
        "both"))
    groups: dict[str, list] = {}
    for name, param in ours.named_parameters():
        if name not in theirs_grads:
            raise SystemExit(f"no original gradient for {name}")
        grad = param.grad if param.grad is not None else torch.zeros_like(param)
        groups.setdefault(gradient_groups(name), []).append((grad.flatten(), theirs_grads[name].flatten()))
    for group, pairs in groups.items():
        compare(rows, f"grad: {group}", torch.cat([a for a, _ in pairs]), torch.cat([b for _, b in pairs]))
    return rows, threshold


class _DecoderTokens:
    """What the original's `VAE.__init__` reads from the decoder tokenizer: the ids of `<EOS>` and `<PAD>`."""

    eos_token, pad_token = "<EOS>", "<PAD>"

    def convert_tokens_to_ids(self, tokens):
        return [{"<EOS>": EOS, "<PAD>": PAD}[t] for t in tokens]


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=f"Optimus parity (β schedule and one training step) with the original code, {REPOSITORY}, "
                    f"verified at commit {VERIFIED_COMMIT}.",
        epilog=__doc__.split("\n\n", 1)[1].replace("%", "%%"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--original", required=True, metavar="DIR",
                        help=f"a checkout of {REPOSITORY} (the folder holding code/); verified at {VERIFIED_COMMIT}")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="precision of both sides in the step comparison (default float64)")
    parser.add_argument("--batch_size", type=int, default=8, help="SNLI sentences in the batch (default 8)")
    parser.add_argument("--rtol", type=float, default=1e-5,
                        help="largest relative difference accepted on a step quantity (default 1e-5)")
    parser.add_argument("--skip_trainer", action="store_true", help="skip the OptimusTrainer runs of part (a)")
    parser.add_argument("--output", default=None, help="also write the report (markdown) to this file")
    opts = parser.parse_args(argv)
    root = check_original(opts.original)

    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    utils, bert, gpt2, vae_module = import_original(root)
    dtype = getattr(torch, opts.dtype)
    report = [f"# Optimus parity with {REPOSITORY} ({root})", ""]

    report += ["## (a) β schedule", "", "| check | cases | result |", "|---|---|---|"]
    if opts.skip_trainer:
        global trainer_schedule_parity  # noqa: PLW0603
        trainer_schedule_parity = lambda utils: ([], "skipped")  # noqa: E731
    lines, failures = schedule_parity(utils)
    report += lines + [""]

    sentences, enc_ids, dec_ids, enc_vocab = snli_batch(opts.batch_size)
    report += [f"## (b) one training step ({opts.dtype}, {len(sentences)} SNLI sentences, "
               f"{int((dec_ids != PAD).sum())} decoder tokens, memory + embedding injection, weights moved from init)", ""]
    worst = 0.0
    for beta, length_weighted in ((1.0, False), (1.0, True), (0.0, False), (0.0, True)):
        original, ours, _ = build_pair(bert, gpt2, vae_module, enc_vocab, dtype)
        rows, threshold = one_step(original, ours, vae_module, enc_ids, dec_ids, beta, length_weighted, dtype)
        report += [f"### β = {beta:g}, length_weighted_loss = {length_weighted}, λ = {threshold:.6g}", "",
                   "| quantity | max abs | max rel |", "|---|---|---|"]
        for name, diff, rel in rows:
            report.append(f"| {name} | {diff:.2e} | {rel:.2e} |")
            if name.startswith("λ mask"):
                if diff:
                    failures.append(f"β={beta} lw={length_weighted}: {name} = {diff}")
                continue
            worst = max(worst, rel)
            if rel > opts.rtol:
                failures.append(f"β={beta} lw={length_weighted}: {name} max rel {rel:.2e} > {opts.rtol:g}")
        report.append("")
    report.append(f"Largest relative difference over every step quantity: {worst:.2e} (tolerance {opts.rtol:g}).")
    report += ["", "**Result: " + ("PASS**" if not failures else "FAIL**")] + [f"- {f}" for f in failures]
    text = "\n".join(report)
    print(text)
    if opts.output:
        Path(opts.output).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.output).write_text(text + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
