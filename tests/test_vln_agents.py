import json

import vln_tiny
from hf_dgm.vln import NavGraphs, R2RDataset, R2REnv
from hf_dgm.vln.agents import RandomAgent, ShortestAgent, StopAgent, main, run_agent
from hf_dgm.vln.evaluation import score_submission


def test_baselines_on_the_tiny_scan(tmp_path):
    root = vln_tiny.write_data(tmp_path)
    graphs = NavGraphs.from_dir(root / "connectivity")
    episodes = R2RDataset.load(root, "val_seen")
    env = R2REnv(episodes, graphs, batch_size=3)
    stop = run_agent(StopAgent(), env)
    assert [r["instr_id"] for r in stop] == episodes["instr_id"]
    assert all(len(r["trajectory"]) == 1 for r in stop)
    summary, _ = score_submission(run_agent(ShortestAgent(), env), episodes, graphs)
    assert summary["success_rate"] == 1.0 and summary["spl"] == 1.0
    first = run_agent(RandomAgent(seed=3), env)
    again = run_agent(RandomAgent(seed=3), env)
    assert first == again
    score_submission(first, episodes, graphs)  # every move is along an edge and starts right
    # at most 5 moves and 30 actions
    for r in first:
        moves = sum(a[0] != b[0] for a, b in zip(r["trajectory"], r["trajectory"][1:]))
        assert moves <= 5 and len(r["trajectory"]) <= 31


def test_agents_cli_writes_a_submission(tmp_path):
    root = vln_tiny.write_data(tmp_path / "data")
    out = tmp_path / "preds.json"
    assert main(["--agent", "shortest", "--split", "val_seen", "--data", str(root), "--out", str(out)]) == 0
    entries = json.loads(out.read_text())
    assert entries[0]["instr_id"] == "7_0" and [e[0] for e in entries[0]["trajectory"]] == ["A", "B", "C"]
