"""Loading the FID Inception weights, hash-checked.

The weights: the PyTorch port of the TF Inception graph of 2015-12-05 used by every published FID, file
`pt_inception-2015-12-05-6726825d.pth` (distributed by pytorch-fid and torch-fidelity; not shipped in any wheel).
:func:`load_fid_inception` accepts a local path to that file, a folder holding it (or a safetensors conversion), or
a Hub repo id holding either, and checks the file's SHA-256 against the `6726825d` in its name (torch.hub's
`check_hash` convention); other weights load only with `allow_nonstandard_weights=True`, which the `evaluate`
modules record in their output (`feature_extractor`, see :func:`feature_extractor_description`).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from .inception import FIDInceptionV3

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub's naming convention (`load_state_dict_from_url(..., check_hash=True)`): the part of the file name after
# the last "-" is the first hex digits of the file's SHA-256. pytorch-fid and torch-fidelity name the file so but
# never pass check_hash=True; hf-dgm checks it on every load.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FID_WEIGHTS_SAFETENSORS = "pt_inception-2015-12-05.safetensors"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 over the tensors of a state dict (sorted names, dtype, shape and raw bytes): the identity of the
    weights themselves, whatever file format holds them (used for safetensors conversions)."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _weights_error(path: str, found: str, how: str) -> ValueError:
    return ValueError(
        f"{path} is not the standard FID Inception weights: expected the file {FID_WEIGHTS_FILENAME} (SHA-256 "
        f"starting with {FID_WEIGHTS_SHA256_PREFIX}, torch.hub's check_hash convention), or its safetensors "
        f"conversion by hf_dgm.metrics.image_features.convert_fid_inception_to_safetensors; {how} {found}. "
        "FID/KID/IS computed with other weights are not comparable to published numbers. To use other weights "
        "deliberately, pass allow_nonstandard_weights=True (the metrics record it)."
    )


def load_fid_inception(
    path_or_repo_id: str | os.PathLike,
    preprocessing: str = "pytorch-fid",
    quantize: bool = True,
    filename: str | None = None,
    revision: str | None = None,
    allow_nonstandard_weights: bool = False,
) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load the standard FID weights, checking their hash.

    `path_or_repo_id` is the `.pth` file itself (loaded with `torch.load(weights_only=True)`), a `.safetensors`
    conversion, a folder holding either, or a Hub repo id holding either (`filename` picks the file; by default
    the safetensors conversion, else `pt_inception-2015-12-05-6726825d.pth`).

    The `.pth` file's SHA-256 must start with `6726825d` (the hash part of its standard name, as
    `torch.hub.load_state_dict_from_url(check_hash=True)` checks it); a safetensors file must be a conversion made
    by :func:`convert_fid_inception_to_safetensors` (its metadata holds the source file's SHA-256 and the tensors'
    hash, both checked). Anything else raises a ValueError naming the expected file and hash, unless
    `allow_nonstandard_weights=True`: then the weights load with a warning, and the returned model records
    `standard_weights=False` and its `weights_sha256`, which the metrics report.
    """
    path = _locate_weights(path_or_repo_id, filename, revision)
    state_dict, weights_sha256, problem, found = _read_weights(path)
    if problem is not None:
        if not allow_nonstandard_weights:
            raise _weights_error(path, found, problem)
        warnings.warn(
            f"Loading non-standard FID Inception weights {path} (SHA-256 {weights_sha256[:16]}...): "
            "FID/KID/IS are not comparable to published numbers."
        )
    model = FIDInceptionV3(preprocessing=preprocessing, quantize=quantize)
    model.load_weights(state_dict)
    model.weights_sha256 = weights_sha256
    model.standard_weights = problem is None
    return model.eval()


def _locate_weights(path_or_repo_id: str | os.PathLike, filename: str | None, revision: str | None) -> str:
    """The weights file: `path_or_repo_id` itself, the file in that folder, or the file downloaded from that Hub
    repo (`filename`, else the safetensors conversion, else the `.pth` file)."""
    path = os.fspath(path_or_repo_id)
    candidates = [filename] if filename else [FID_WEIGHTS_SAFETENSORS, FID_WEIGHTS_FILENAME]
    if os.path.isdir(path):
        found = [os.path.join(path, c) for c in candidates if os.path.isfile(os.path.join(path, c))]
        if not found:
            raise FileNotFoundError(f"No FID Inception weights ({', '.join(candidates)}) in folder {path}.")
        return found[0]
    if os.path.isfile(path):
        return path
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    last_error: Exception | None = None
    for candidate in candidates:
        try:
            return os.fspath(hf_hub_download(path, candidate, revision=revision))
        except EntryNotFoundError as err:
            last_error = err
    raise FileNotFoundError(f"No FID Inception weights in Hub repo {path_or_repo_id}: {last_error}")


def _read_weights(path: str) -> tuple[dict[str, torch.Tensor], str, str | None, str]:
    """(state dict, weights SHA-256, problem, found): `problem` is None for the standard weights, else the words
    for `_weights_error` ("its SHA-256 is", ...) and `found` the offending hash."""
    if not path.endswith(".safetensors"):
        weights_sha256 = file_sha256(path)
        problem = None if weights_sha256.startswith(FID_WEIGHTS_SHA256_PREFIX) else "its SHA-256 is"
        return torch.load(path, map_location="cpu", weights_only=True), weights_sha256, problem, weights_sha256
    from safetensors import safe_open
    from safetensors.torch import load_file

    state_dict = load_file(path)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    weights_sha256 = tensors_sha256(state_dict)
    source = metadata.get("source_sha256", "")
    if metadata.get("tensors_sha256") != weights_sha256:
        return state_dict, weights_sha256, "its tensors hash to", weights_sha256
    if not source.startswith(FID_WEIGHTS_SHA256_PREFIX):
        return state_dict, weights_sha256, "it was converted from a file with SHA-256", source or "(not recorded)"
    return state_dict, weights_sha256, None, ""


def convert_fid_inception_to_safetensors(
    pth_path: str | os.PathLike, output_path: str | os.PathLike, allow_nonstandard_weights: bool = False
) -> None:
    """Convert `pt_inception-2015-12-05-6726825d.pth` to safetensors (after checking its hash and that it loads).

    The metadata records the source file's SHA-256 and the tensors' hash, which :func:`load_fid_inception` checks.
    """
    from safetensors.torch import save_file

    pth_path = os.fspath(pth_path)
    source = file_sha256(pth_path)
    if not source.startswith(FID_WEIGHTS_SHA256_PREFIX) and not allow_nonstandard_weights:
        raise _weights_error(pth_path, source, "its SHA-256 is")
    state_dict = torch.load(pth_path, map_location="cpu", weights_only=True)
    FIDInceptionV3().load_weights(state_dict)
    state_dict = {k: v.contiguous() for k, v in state_dict.items()}
    metadata = {"source_sha256": source, "tensors_sha256": tensors_sha256(state_dict), "format": "pt"}
    save_file(state_dict, os.fspath(output_path), metadata=metadata)


def feature_extractor_description(extractor: Any) -> str:
    """What the metrics record about the features they measured in: the FID Inception weights' standing and hash,
    or that a custom extractor was used."""
    if isinstance(extractor, FIDInceptionV3):
        sha = getattr(extractor, "weights_sha256", None)
        if sha is None:
            return "fid-inception (weights not loaded through load_fid_inception)"
        if getattr(extractor, "standard_weights", False):
            return f"fid-inception-2015-12-05 (standard weights, sha256 {sha[:16]})"
        return f"fid-inception NON-STANDARD weights (allow_nonstandard_weights=True, sha256 {sha[:16]})"
    return f"custom feature extractor ({type(extractor).__name__})"
