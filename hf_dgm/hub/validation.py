"""Prove a repo folder (or a Hub repo) loads and computes the source model's outputs without hf_dgm.

`run_isolated_probe` starts a fresh interpreter (`python -I`: no PYTHONPATH, no user site, no cwd on sys.path)
from an empty temporary directory, installs an import blocker for `hf_dgm` before anything else runs (so even an
editable install of the package is invisible), checks that `import hf_dgm` fails there, then loads the model with
`AutoModel.from_pretrained(ref, trust_remote_code=True)` and the family's pipeline with
`pipeline(task, model=ref, trust_remote_code=True)`, runs the family's probe (`HubEntry.probe`, its module loaded
by file path) and writes the results to a folder. `compare_probe_outputs` checks them against the source model's.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from safetensors.torch import load_file

if TYPE_CHECKING:
    from ..registry import FamilySpec

logger = logging.getLogger(__name__)


def probe_file_and_name(probe: str) -> tuple[str, str]:
    """`"module.path:function"` -> (the module's file, the function name), for loading it by file path."""
    import importlib.util

    module_name, sep, name = probe.partition(":")
    if not sep or not name:
        raise ValueError(f"a probe is named 'module.path:function'; got {probe!r}")
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"probe module {module_name!r} is not an importable .py file")
    return spec.origin, name

# Runs in the isolated interpreter; argv[1] is a JSON object of arguments.
_CHILD = r'''
import importlib.abc, importlib.util, json, sys
class _BlockHfDgm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hf_dgm" or name.startswith("hf_dgm."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: remote-code validation)")
        return None
sys.meta_path.insert(0, _BlockHfDgm())
try:
    import hf_dgm  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("hf_dgm is importable in the isolated interpreter; the validation would prove nothing")
args = json.loads(sys.argv[1])
import torch
from safetensors.torch import save_file
import transformers
from transformers import pipeline
torch.manual_seed(0)
spec = importlib.util.spec_from_file_location("_hf_dgm_hub_probes", args["probes_file"])
probes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probes)
kwargs = {"trust_remote_code": True}
if args.get("revision"):
    kwargs["revision"] = args["revision"]
model = getattr(transformers, args.get("auto_class") or "AutoModel").from_pretrained(args["model"], **kwargs)
model_module = type(model).__module__
pipe = pipeline(args["task"], model=args["model"], device="cpu", **kwargs) if args["task"] else None
result = getattr(probes, args["probe"])(model, pipe)
import contextlib, io
snippet_outputs = []
for i, code in enumerate(args.get("snippets") or []):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, f"<model card snippet {i + 1}>", "exec"), {"__name__": "__card_snippet__"})
    snippet_outputs.append(buffer.getvalue())
out = args["out_dir"]
save_file({k: v.detach().float().contiguous().cpu() for k, v in result["tensors"].items()}, out + "/tensors.safetensors")
info = {"values": result["values"], "model_class": type(model).__name__, "model_module": model_module,
        "pipeline_class": type(pipe).__name__ if pipe is not None else "",
        "pipeline_module": type(pipe).__module__ if pipe is not None else "",
        "hf_dgm_in_modules": sorted(m for m in sys.modules if m == "hf_dgm" or m.startswith("hf_dgm.")),
        "snippets_run": len(snippet_outputs), "snippet_outputs": snippet_outputs}
with open(out + "/values.json", "w") as f:
    json.dump(info, f)
'''


class ValidationError(RuntimeError):
    """The assembled repo does not load, or does not compute what the source model computes."""


@dataclass
class ProbeOutput:
    tensors: dict[str, torch.Tensor]
    values: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """Outcome of a validation: max |difference| per compared tensor, and the equal non-tensor values."""

    max_abs_diff: dict[str, float]
    values: dict[str, Any]
    model_class: str
    pipeline_class: str
    model_module: str
    snippets_run: int = 0
    snippet_outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_abs_diff": self.max_abs_diff,
            "values": self.values,
            "model_class": self.model_class,
            "pipeline_class": self.pipeline_class,
            "model_module": self.model_module,
            "snippets_run": self.snippets_run,
            "warnings": self.warnings,
        }


def run_reference_probe(model, pipe, probe: str) -> ProbeOutput:
    """Run the probe in this process (on the source model, with hf_dgm)."""
    from ..registry import resolve_callable

    torch.manual_seed(0)
    result = resolve_callable(probe)(model, pipe)
    tensors = {k: v.detach().float().cpu() for k, v in result["tensors"].items()}
    return ProbeOutput(tensors=tensors, values=json.loads(json.dumps(result["values"])))


def run_isolated_probe(
    model_ref: str | os.PathLike,
    task: str | None,
    probe: str,
    *,
    model_auto_class: str = "AutoModel",
    env: Mapping[str, str] | None = None,
    revision: str | None = None,
    offline: bool = True,
    snippets: list[str] | None = None,
    timeout: float = 600,
) -> ProbeOutput:
    """Load `model_ref` (a folder or a Hub repo id) with remote code in an interpreter that cannot import hf_dgm,
    and run `probe` on it.

    Args:
        model_ref: a local folder (absolute path) or a repo id.
        task: the pipeline task to build for the probe (None: no pipeline, the probe gets `pipe=None`).
        probe: `"module.path:function"`; the module must import only torch and transformers.
        model_auto_class: the transformers Auto class to load the model with.
        env: extra environment variables (e.g. `HF_ENDPOINT`, `HF_HOME` for a clean cache).
        revision: Hub revision to load.
        offline: set `HF_HUB_OFFLINE=1` (right for a local folder).
        snippets: Python sources to run after the probe (the model card's usage snippets); their stdout is
            returned in `info["snippet_outputs"]`, and any exception fails the validation.
    """
    if os.path.isdir(model_ref):
        model_ref = os.path.abspath(model_ref)
    probe_path, probe_name = probe_file_and_name(probe)
    with tempfile.TemporaryDirectory(prefix="hf_dgm_validate_") as tmp:
        out_dir = Path(tmp) / "out"
        cwd = Path(tmp) / "cwd"
        out_dir.mkdir()
        cwd.mkdir()
        args = {
            "model": str(model_ref), "task": task, "auto_class": model_auto_class, "probe": probe_name, "probes_file": probe_path,
            "out_dir": str(out_dir), "revision": revision, "snippets": list(snippets or []),
        }
        proc = subprocess.run(
            [sys.executable, "-I", "-B", "-c", _CHILD, json.dumps(args)],  # -B: no __pycache__ in the repo folder
            cwd=cwd, env=_child_env(Path(tmp), offline, env), capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise ValidationError(
                f"loading {model_ref} with trust_remote_code=True in an interpreter without hf_dgm failed "
                f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}"
            )
        tensors = load_file(str(out_dir / "tensors.safetensors"))
        info = json.loads((out_dir / "values.json").read_text())
    info["warnings"] = _prompt_warnings(proc.stdout + proc.stderr)
    if info["hf_dgm_in_modules"]:
        raise ValidationError(f"hf_dgm modules were imported in the isolated interpreter: {info['hf_dgm_in_modules']}")
    return ProbeOutput(tensors=tensors, values=info.pop("values"), info=info)


def _child_env(tmp: Path, offline: bool, env: Mapping[str, str] | None) -> dict[str, str]:
    """The isolated interpreter's environment: ours without PYTHON* variables, a fresh dynamic-module cache in
    `tmp`, no tokenizer threads, offline unless asked, then `env`."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    child_env["HF_MODULES_CACHE"] = str(tmp / "modules")  # fresh dynamic-module cache
    child_env["TOKENIZERS_PARALLELISM"] = "false"
    if offline:
        child_env["HF_HUB_OFFLINE"] = "1"
    child_env.update(env or {})
    return child_env


def _prompt_warnings(output: str) -> list[str]:
    """transformers asks "Do you wish to run the custom code?" (and waits TIME_OUT_REMOTE_CODE seconds) when some
    loader reached the repo's remote code without trust_remote_code: users of the repo would see that prompt."""
    if "Do you wish to run the custom code?" not in output:
        return []
    return [
        "a loader asked interactively whether to run the repo's custom code (a call without "
        "trust_remote_code reached auto_map, e.g. AutoTokenizer.from_pretrained(repo) loading the config); "
        "users would see that prompt and wait for its timeout"
    ]


def compare_probe_outputs(
    reference: ProbeOutput, candidate: ProbeOutput, *, atol: float = 1e-5, rtol: float = 1e-4
) -> ValidationReport:
    """Raise `ValidationError` unless every tensor matches (allclose) and every value is equal."""
    problems = []
    diffs: dict[str, float] = {}
    if set(reference.tensors) != set(candidate.tensors):
        problems.append(f"tensor names differ: {sorted(reference.tensors)} vs {sorted(candidate.tensors)}")
    for name in sorted(set(reference.tensors) & set(candidate.tensors)):
        ref, cand = reference.tensors[name], candidate.tensors[name]
        if ref.shape != cand.shape:
            problems.append(f"{name}: shape {tuple(ref.shape)} vs {tuple(cand.shape)}")
            continue
        diff = (ref - cand).abs().max().item() if ref.numel() else 0.0
        diffs[name] = diff
        if not torch.allclose(ref, cand, atol=atol, rtol=rtol):
            problems.append(f"{name}: max |difference| {diff:.3g} exceeds atol={atol}, rtol={rtol}")
    if reference.values != candidate.values:
        problems.append(f"values differ: source {reference.values!r} vs published {candidate.values!r}")
    if problems:
        raise ValidationError("the published repo does not reproduce the source model:\n- " + "\n- ".join(problems))
    return ValidationReport(
        max_abs_diff=diffs,
        values=candidate.values,
        model_class=candidate.info.get("model_class", ""),
        pipeline_class=candidate.info.get("pipeline_class", ""),
        model_module=candidate.info.get("model_module", ""),
        snippets_run=candidate.info.get("snippets_run", 0),
        snippet_outputs=list(candidate.info.get("snippet_outputs", [])),
        warnings=list(candidate.info.get("warnings", [])),
    )


__all__ = [
    "ValidationError",
    "ValidationReport",
    "ProbeOutput",
    "run_reference_probe",
    "run_isolated_probe",
    "compare_probe_outputs",
]


def validate_repo_folder(
    folder: Path, source_model, family: FamilySpec, snippets: list[str] | None = None
) -> ValidationReport:
    """Compare the source model with the folder loaded through remote code in an interpreter without hf_dgm;
    also run the card's usage `snippets` there (pointed at the folder)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    task = family.hub.task_for(source_model.config)
    pipe = None  # a family without a pipeline: the probe drives the model alone
    if task is not None:
        impl = PIPELINE_REGISTRY.supported_tasks[task]["impl"]
        pipe = impl(model=source_model, task=task, device="cpu")
    reference = run_reference_probe(source_model, pipe, family.hub.probe)
    logger.info("validating %s in an interpreter without hf_dgm", folder)
    candidate = run_isolated_probe(folder, task, family.hub.probe, snippets=snippets,
                                   model_auto_class=family.hub.model_auto_class)
    report = compare_probe_outputs(reference, candidate)
    logger.info("validated: max |diff| %s", report.max_abs_diff)
    for warning in report.warnings:
        logger.warning("validation warning: %s", warning)
    return report
