"""Scoring R2R submissions: `python -m hf_dgm.evaluate vln --predictions preds.json --split val_seen --data DIR`.

Submission format (the R2R leaderboard's): `[{"instr_id": "<path_id>_<k>", "trajectory": [[viewpoint, heading,
elevation], ...]}, ...]`. Every instruction id of the split must be present (ids not in the split are ignored, as
the reference evaluator does). `--data DIR` holds `R2R_<split>.json` and `connectivity/`. The `test` split has no
goals (its scores come only from the leaderboard server), so scoring it is refused.

Python: `score_submission(submission, episodes, graphs) -> (summary, per_episode)`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from hf_dgm.vln.data import R2RDataset
from hf_dgm.vln.graphs import NavGraphs
from hf_dgm.vln.metrics import score_episode, summarize


def load_submission(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        submission = json.load(f)
    if not isinstance(submission, list):
        raise ValueError(f"{path}: a submission is a JSON list of {{'instr_id', 'trajectory'}} entries")
    return submission


def _viewpoints(entry: dict, n: int) -> tuple[str, list[str]]:
    if not isinstance(entry, dict) or "instr_id" not in entry or "trajectory" not in entry:
        raise ValueError(f"submission entry {n} needs 'instr_id' and 'trajectory'")
    name = str(entry["instr_id"])
    trajectory = entry["trajectory"]
    if not isinstance(trajectory, list) or not trajectory:
        raise ValueError(f"{name}: the trajectory must be a non-empty list of [viewpoint, heading, elevation]")
    viewpoints = []
    for step in trajectory:
        if isinstance(step, str):
            viewpoints.append(step)
        elif isinstance(step, (list, tuple)) and step and isinstance(step[0], str):
            viewpoints.append(step[0])
        else:
            raise ValueError(f"{name}: trajectory entry {step!r} is not [viewpoint, heading, elevation]")
    return name, viewpoints


def score_submission(submission: list[dict], episodes, graphs: NavGraphs, error_margin: float = 3.0):
    """Score `submission` against `episodes` (an `R2RDataset` dataset or a list of its rows)."""
    rows = episodes.to_list() if hasattr(episodes, "to_list") else list(episodes)
    expected = {row["instr_id"]: row for row in rows}
    if any(len(row["path"]) < 2 for row in rows):
        raise ValueError("these episodes have no goals (paths of one viewpoint, as in the test split): nothing to score")
    trajectories = {}
    for n, entry in enumerate(submission):
        name, viewpoints = _viewpoints(entry, n)
        if name in expected:
            if name in trajectories:
                raise ValueError(f"{name}: appears more than once in the submission")
            trajectories[name] = viewpoints
    missing = [k for k in expected if k not in trajectories]
    if missing:
        raise ValueError(f"missing instruction id(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
                         f"{len(missing)} of {len(expected)} absent from the submission")
    per_episode = {}
    for name, row in expected.items():
        scan = row["scan"]
        graph = graphs.graph(scan)
        distances = graphs.distances(scan)

        def distance(a, b, distances=distances):
            return distances[a][b]

        per_episode[name] = score_episode(
            trajectories[name],
            list(row["path"]),
            distance,
            is_edge=graph.has_edge,
            has_viewpoint=graph.__contains__,
            name=f"instr_id {name} (scan {scan})",
            error_margin=error_margin,
        )
    return summarize(list(per_episode.values())), per_episode


def evaluate_file(predictions: str | os.PathLike, split: str, data: str | os.PathLike) -> dict:
    if not R2RDataset.has_goals(split):
        raise ValueError(
            f"the {split} split has no goals (its paths hold only the start viewpoint); its scores come only from the "
            "R2R leaderboard server, so it cannot be scored locally"
        )
    episodes = R2RDataset.load(data, split)
    graphs = NavGraphs.from_dir(Path(data) / "connectivity", scans=sorted(set(episodes["scan"])))
    summary, _ = score_submission(load_submission(predictions), episodes, graphs)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="submission JSON: [{instr_id, trajectory}, ...]")
    parser.add_argument("--split", default="val_seen", help="R2R split to score against (default: val_seen; not test)")
    parser.add_argument("--data", required=True, help="folder with R2R_<split>.json and connectivity/")
    parser.add_argument("--output", default=None, help="write the metrics JSON here (default: print only)")


def run(args: argparse.Namespace) -> dict:
    return evaluate_file(args.predictions, args.split, args.data)
