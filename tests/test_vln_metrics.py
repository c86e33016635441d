import json
import math
from pathlib import Path

import evaluate
import pytest

import vln_tiny
from hf_dgm.evaluate import main as evaluate_main
from hf_dgm.vln import NavGraphs, R2RDataset
from hf_dgm.vln.evaluation import evaluate_file, score_submission
from hf_dgm.vln.metrics import collapse_repeats


METRICS = Path(__file__).resolve().parents[1] / "hf_dgm" / "metrics"
AB, AD, BC = vln_tiny.AB, vln_tiny.AD, vln_tiny.BC


def traj(*viewpoints):
    return [[vp, 0.0, 0.0] for vp in viewpoints]


@pytest.fixture()
def data(tmp_path):
    return vln_tiny.write_data(tmp_path)


def submission(**overrides):
    entries = {
        "7_0": traj("A", "B", "C"),
        "7_1": traj("A", "A", "B"),
        "7_2": traj("A", "B", "C"),
        "8_0": traj("D", "A", "B", "A"),
        "8_1": traj("D"),
        "8_2": traj("D"),
        "8_3": traj("D"),
    }
    entries.update(overrides)
    return [{"instr_id": k, "trajectory": v} for k, v in entries.items()]


def test_hand_computed_episode_scores(data):
    graphs = NavGraphs.from_dir(data / "connectivity")
    summary, per = score_submission(submission(), R2RDataset.load(data, "val_seen"), graphs)
    ok = per["7_0"]
    assert ok["trajectory_length"] == pytest.approx(AB + BC)
    assert (ok["nav_error"], ok["success"], ok["spl"], ok["ndtw"], ok["sdtw"]) == (0.0, 1.0, 1.0, 1.0, 1.0)
    short = per["7_1"]  # a turn (repeated viewpoint) then one move
    assert short["trajectory_length"] == pytest.approx(AB)
    assert short["nav_error"] == pytest.approx(BC) and short["success"] == 0.0 and short["oracle_success"] == 0.0
    # DTW([A, B], [A, B, C]) = d(B, C)
    assert short["ndtw"] == pytest.approx(math.exp(-BC / (3 * 3)))
    assert short["sdtw"] == 0.0 and short["spl"] == 0.0
    loop = per["8_0"]  # D A B A against D A: success, SPL = 2 / 8, DTW = d(B, A) = 3
    assert loop["trajectory_length"] == pytest.approx(AD + 2 * AB)
    assert loop["success"] == 1.0 and loop["spl"] == pytest.approx(AD / (AD + 2 * AB))
    assert loop["ndtw"] == pytest.approx(math.exp(-AB / (3 * 2)))
    stay = per["8_1"]  # never moved: 2 m from the goal is still a success (strict < 3)
    assert stay["success"] == 1.0 and stay["spl"] == 1.0 and stay["trajectory_length"] == 0.0
    # the official evaluator scores three instructions per path: 8_3 (a fourth) is reported apart
    assert "8_3" not in per
    assert summary["num_episodes"] == 6 and summary["num_extra_instructions"] == 1
    assert summary["success_rate"] == pytest.approx(5 / 6)
    assert summary["oracle_success_rate"] == pytest.approx(5 / 6)
    assert summary["spl"] == pytest.approx((2 + 0.25 + 2) / 6)
    assert summary["extra_instructions"]["num_episodes"] == 1 and summary["extra_instructions"]["success_rate"] == 1.0
    # every instruction (R2R-EnvDrop's evaluator)
    every, per_all = score_submission(submission(), R2RDataset.load(data, "val_seen"), graphs, instructions_per_path=None)
    assert every["num_episodes"] == 7 and "8_3" in per_all
    assert every["num_extra_instructions"] == 0 and every["extra_instructions"] is None
    assert every["success_rate"] == pytest.approx(6 / 7)
    assert every["oracle_success_rate"] == pytest.approx(6 / 7)
    assert every["spl"] == pytest.approx((2 + 0.25 + 3) / 7)


def test_official_instruction_count_on_a_split_with_a_four_instruction_path(data):
    """Pins what benchmarks/parity/r2r_eval.py established against Matterport3DSimulator's tasks/R2R/eval.py: a path
    with four instructions contributes three to the official score (val_seen: 1020 scored, not 1021), and the
    fourth is neither required nor averaged."""
    graphs = NavGraphs.from_dir(data / "connectivity")
    episodes = R2RDataset.load(data, "val_seen")
    assert len(episodes) == 7
    without_fourth = [e for e in submission() if e["instr_id"] != "8_3"]
    summary, per = score_submission(without_fourth, episodes, graphs)  # the official evaluator accepts this
    assert summary["num_episodes"] == 6 and sorted(per) == ["7_0", "7_1", "7_2", "8_0", "8_1", "8_2"]
    assert summary["num_extra_instructions"] == 1 and summary["extra_instructions"] is None
    # a failing fourth instruction changes nothing in the official figures
    failing = submission(**{"8_3": traj("D", "A", "B", "C")})
    assert score_submission(failing, episodes, graphs)[0]["success_rate"] == summary["success_rate"]
    assert score_submission(failing, episodes, graphs)[0]["extra_instructions"]["success_rate"] == 0.0
    with pytest.raises(ValueError, match="missing instruction id.*8_3"):
        score_submission(without_fourth, episodes, graphs, instructions_per_path=None)
    with pytest.raises(ValueError, match="instructions_per_path"):
        score_submission(submission(), episodes, graphs, instructions_per_path=0)
    # plain rows without `instruction_index` (e.g. hand-built lists) take k from the instr_id
    rows = [{k: v for k, v in row.items() if k != "instruction_index"} for row in episodes.to_list()]
    assert score_submission(submission(), rows, graphs)[0]["num_episodes"] == 6


def test_errors_name_the_item(data):
    graphs = NavGraphs.from_dir(data / "connectivity")
    episodes = R2RDataset.load(data, "val_seen")
    cases = [
        (submission(**{"7_1": traj("A", "C")}), "7_1.*along no edge"),
        (submission(**{"7_1": traj("B", "C")}), "7_1.*starts at 'B'"),
        (submission(**{"8_2": traj("D", "Q")}), "8_2.*unknown viewpoint 'Q'"),
        ([e for e in submission() if e["instr_id"] != "8_2"], "missing instruction id.*8_2"),
        (submission(**{"7_2": []}), "7_2.*non-empty"),
    ]
    for sub, message in cases:
        with pytest.raises(ValueError, match=message):
            score_submission(sub, episodes, graphs)


def test_strict_threshold_and_evaluate_module(data):
    metric = evaluate.load(str(METRICS / "r2r_navigation"))
    result = metric.compute(
        predictions=[["A"], ["A", "A", "B"]],
        references=[["A", "B"], ["A", "B"]],
        scans=[vln_tiny.SCAN, vln_tiny.SCAN],
        connectivity_dir=str(data / "connectivity"),
    )
    # exactly 3.0 m from the goal is a failure
    assert result["nav_error"] == pytest.approx(AB / 2)
    assert result["success_rate"] == 0.5 and result["num_episodes"] == 2
    assert collapse_repeats(["a", "a", "b", "b", "a"]) == ["a", "b", "a"]
    with pytest.raises(ValueError, match="episode-x.*along no edge"):
        metric.compute(predictions=[["A", "C"]], references=[["A", "B", "C"]], scans=[vln_tiny.SCAN],
                       connectivity_dir=str(data / "connectivity"), ids=["episode-x"], instructions_per_path=None)
    # with instruction ids, the official three per path are averaged and a fourth is reported apart
    official = metric.compute(predictions=[["A"], ["A", "B"], ["A", "B"], ["A"]], references=[["A", "B"]] * 4,
                              scans=[vln_tiny.SCAN] * 4, connectivity_dir=str(data / "connectivity"),
                              ids=["5_0", "5_1", "5_2", "5_3"])  # fmt: skip
    assert official["num_episodes"] == 3 and official["success_rate"] == pytest.approx(2 / 3)
    assert official["num_extra_instructions"] == 1 and official["extra_instructions"]["success_rate"] == 0.0
    with pytest.raises(ValueError, match="path_id"):
        metric.compute(predictions=[["A"]], references=[["A", "B"]], scans=[vln_tiny.SCAN],
                       connectivity_dir=str(data / "connectivity"), ids=["episode-x"])


def test_cli_table_and_json(data, tmp_path, capsys):
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(submission()))
    out = tmp_path / "m" / "metrics.json"
    assert evaluate_main(["vln", "--predictions", str(preds), "--split", "val_seen", "--data", str(data), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "success_rate" in printed and "0.8333" in printed
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["trajectory_length", "nav_error", "oracle_success_rate", "success_rate", "spl", "ndtw",
                             "sdtw", "num_episodes", "num_extra_instructions", "extra_instructions"]  # fmt: skip
    assert metrics["num_episodes"] == 6 and metrics["extra_instructions"]["num_episodes"] == 1
    assert evaluate_main(["vln", "--predictions", str(preds), "--split", "val_seen", "--data", str(data), "--output",
                          str(out), "--all_instructions"]) == 0  # fmt: skip
    assert "0.8571" in capsys.readouterr().out and json.loads(out.read_text())["num_episodes"] == 7
    with pytest.raises(ValueError, match="test split has no goals"):
        evaluate_file(preds, "test", data)
