"""Scoring R2R submissions: `python -m hf_dgm.evaluate vln --predictions preds.json --split val_seen --data DIR`.

Submission format (the R2R leaderboard's): `[{"instr_id": "<path_id>_<k>", "trajectory": [[viewpoint, heading,
elevation], ...]}, ...]`. `--data DIR` holds `R2R_<split>.json` and `connectivity/`. The `test` split has no goals
(its scores come only from the leaderboard server), so scoring it is refused.

Which instructions are scored. By default exactly as the official evaluator, Matterport3DSimulator's
`tasks/R2R/eval.py`: the first **three** instructions of every path (`<path_id>_0` … `<path_id>_2`), each of which
must be in the submission; other ids in the submission are ignored. A few R2R paths carry a fourth instruction
(one in `val_seen`, fourteen in `train`): they are not part of the official score, so `num_episodes` is 1020 on
`val_seen`, not 1021. Those extra instructions are reported separately: `num_extra_instructions` counts them, and
when the submission has trajectories for them, `extra_instructions` holds their own summary (the same metrics).
`--all_instructions` (`instructions_per_path=None`) scores every instruction instead, as R2R-EnvDrop's and
PREVALENT_R2R's `r2r_src/eval.py` do (`range(len(item['instructions']))`); their val figures were computed that way.

Where we differ from the official evaluator on purpose: an instruction id submitted twice is an error (the official
one silently scores the first), and errors are `ValueError`s naming the instruction instead of assertions. The
summary adds nDTW and SDTW, which the official evaluator does not compute. `benchmarks/parity/r2r_eval.py` runs the
official evaluator beside this one on the same predictions.

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


OFFICIAL_INSTRUCTIONS_PER_PATH = 3
"""Matterport3DSimulator's `tasks/R2R/eval.py` expects ids `<path_id>_0`, `_1`, `_2` for every path (`range(3)`)."""


def read_json_file(path: str | os.PathLike, what: str, expected: str):
    """`json.load` of `path`; a missing, undecodable or malformed file is a `ValueError` naming `what`, the file,
    the JSON error (line and column) and what the file should hold."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{what}: {path}: no such file (expected {expected})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{what}: {path} is not UTF-8 text ({err.reason} at byte {err.start}); expected {expected}") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{what}: {path} is not valid JSON ({err.msg}: line {err.lineno} column {err.colno}); expected {expected}"
        ) from None


def load_submission(path: str | os.PathLike) -> list[dict]:
    submission = read_json_file(
        path, "--predictions", "a JSON list of {\"instr_id\", \"trajectory\": [[viewpoint, heading, elevation], ...]}"
    )
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


def _instruction_index(row: dict) -> int:
    """k of `<path_id>_<k>`: the row's `instruction_index`, else parsed from its `instr_id`."""
    if row.get("instruction_index") is not None:
        return int(row["instruction_index"])
    _, _, k = str(row["instr_id"]).rpartition("_")
    if not k.isdigit():
        raise ValueError(f"instr_id {row['instr_id']!r} is not '<path_id>_<k>': cannot tell which instruction of its path it is")
    return int(k)


def score_submission(
    submission: list[dict],
    episodes,
    graphs: NavGraphs,
    error_margin: float = 3.0,
    instructions_per_path: int | None = OFFICIAL_INSTRUCTIONS_PER_PATH,
):
    """
    Score `submission` against `episodes` (an `R2RDataset` dataset or a list of its rows).

    instructions_per_path (`int` or `None`, defaults to 3): score the instructions `k < instructions_per_path` of
        each path, as the official evaluator does with 3; the others (`k >= instructions_per_path`) are "extra": not
        required, not in the main summary, summarised apart under `extra_instructions` when submitted. `None`
        scores every instruction (R2R-EnvDrop's evaluator).

    Returns `(summary, per_episode)`: `summary` has the `hf_dgm.vln.metrics.SUMMARY_KEYS` over the scored
    instructions, `num_extra_instructions`, and `extra_instructions` (a summary dict, or None when no extra
    instruction was submitted); `per_episode` maps each scored instruction id to its metrics.
    """
    if instructions_per_path is not None and (
        not isinstance(instructions_per_path, int) or isinstance(instructions_per_path, bool) or instructions_per_path < 1
    ):
        raise ValueError(f"instructions_per_path must be a positive int or None; got {instructions_per_path!r}")
    rows = episodes.to_list() if hasattr(episodes, "to_list") else list(episodes)
    if any(len(row["path"]) < 2 for row in rows):
        raise ValueError("these episodes have no goals (paths of one viewpoint, as in the test split): nothing to score")
    expected, extra = {}, {}
    for row in rows:
        official = instructions_per_path is None or _instruction_index(row) < instructions_per_path
        (expected if official else extra)[row["instr_id"]] = row
    if not expected:
        raise ValueError("no instruction to score")
    trajectories = {}
    for n, entry in enumerate(submission):
        name, viewpoints = _viewpoints(entry, n)
        if name in expected or name in extra:
            if name in trajectories:
                raise ValueError(f"{name}: appears more than once in the submission")
            trajectories[name] = viewpoints
    missing = [k for k in expected if k not in trajectories]
    if missing:
        raise ValueError(f"missing instruction id(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
                         f"{len(missing)} of {len(expected)} absent from the submission")
    per_episode = _score_rows(expected, trajectories, graphs, error_margin)
    summary = summarize(list(per_episode.values()))
    summary["num_extra_instructions"] = len(extra)
    submitted_extra = {k: row for k, row in extra.items() if k in trajectories}
    summary["extra_instructions"] = (
        summarize(list(_score_rows(submitted_extra, trajectories, graphs, error_margin).values())) if submitted_extra else None
    )
    return summary, per_episode


def _score_rows(rows: dict, trajectories: dict, graphs: NavGraphs, error_margin: float) -> dict:
    per_episode = {}
    for name, row in rows.items():
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
    return per_episode


def evaluate_file(
    predictions: str | os.PathLike,
    split: str,
    data: str | os.PathLike,
    instructions_per_path: int | None = OFFICIAL_INSTRUCTIONS_PER_PATH,
) -> dict:
    if not R2RDataset.has_goals(split):
        raise ValueError(
            f"the {split} split has no goals (its paths hold only the start viewpoint); its scores come only from the "
            "R2R leaderboard server, so it cannot be scored locally"
        )
    split_file = Path(data) / f"R2R_{split}.json"
    if split_file.is_file():  # a malformed split file is named with its JSON error (before the dataset loader)
        episodes_json = read_json_file(split_file, "--data", "the R2R split: a JSON list of episodes")
        if not isinstance(episodes_json, list):
            raise ValueError(f"--data: {split_file} holds a JSON {type(episodes_json).__name__}; expected the R2R split: "
                             "a JSON list of episodes")
    episodes = R2RDataset.load(data, split)
    graphs = NavGraphs.from_dir(Path(data) / "connectivity", scans=sorted(set(episodes["scan"])))
    summary, _ = score_submission(load_submission(predictions), episodes, graphs, instructions_per_path=instructions_per_path)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True, help="submission JSON: [{instr_id, trajectory}, ...]")
    parser.add_argument("--split", default="val_seen", help="R2R split to score against (default: val_seen; not test)")
    parser.add_argument("--data", required=True, help="folder with R2R_<split>.json and connectivity/")
    parser.add_argument("--output", default=None, help="write the metrics JSON here (default: print only)")
    parser.add_argument(
        "--all_instructions",
        action="store_true",
        help="score every instruction of every path, as R2R-EnvDrop's / PREVALENT_R2R's evaluator does (1021 on "
        "val_seen), instead of the official Matterport3DSimulator evaluator's first three per path (1020; the "
        "default; the extra ones are then reported apart as num_extra_instructions / extra_instructions)",
    )


def run(args: argparse.Namespace) -> dict:
    return evaluate_file(
        args.predictions, args.split, args.data, instructions_per_path=None if args.all_instructions else OFFICIAL_INSTRUCTIONS_PER_PATH
    )
