"""Parity of hf-dgm's R2R evaluator with the official one: Matterport3DSimulator's `tasks/R2R/eval.py`.

Verified against peteanderson80/Matterport3DSimulator at commit 589d091b111333f9e9f9d6cfd021b2eb68435925
(2021-09-08). The checkout is never committed or vendored: pass its path with `--original`.

For every split and agent (Stop, Random with a seed, Shortest; `hf_dgm.vln.agents`), the agent's submission is
written once to a JSON file and scored by both evaluators on that same file:

* the official `Evaluation([split]).score(file)`, run as is from the checkout (its `env`/`agent` imports need the
  compiled simulator, which scoring never uses: they are replaced by empty stand-in modules before the import; it
  reads `tasks/R2R/data/R2R_<split>.json` and `connectivity/` relative to the working directory, so the script
  runs it inside a temporary folder that links them to `--data`);
* ours, `hf_dgm.vln.evaluation.score_submission` with its default (the official protocol), and with
  `instructions_per_path=None` (every instruction, as R2R-EnvDrop's / PREVALENT_R2R's evaluator counts).

It prints, per split and agent, every metric the official evaluator reports (TL, NE, OSR, SR, SPL and the number
of scored instructions) on both sides with the absolute difference, and exits 1 when any official-protocol
difference exceeds `--tolerance` (1e-9: the same float64 sums over the same Dijkstra distances). Needs networkx
and numpy. `R2R_val_unseen.json` is scored too when `--data` has it (../shared/data/r2r holds train and val_seen).

    python benchmarks/parity/r2r_eval.py --original /tmp/orig-m3d [--data ../shared/data/r2r]
        [--splits val_seen train] [--seed 1]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import types
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

VERIFIED = ("peteanderson80/Matterport3DSimulator", "589d091b111333f9e9f9d6cfd021b2eb68435925")
# official summary key -> ours
METRICS = (
    ("length", "trajectory_length"),
    ("nav_error", "nav_error"),
    ("oracle success_rate", "oracle_success_rate"),
    ("success_rate", "success_rate"),
    ("spl", "spl"),
)


def load_official_evaluation(original: Path):
    """The checkout's `tasks/R2R/eval.py` module, with stand-ins for the simulator-bound `env` and `agent` modules."""
    task_dir = original / "tasks" / "R2R"
    if not (task_dir / "eval.py").is_file():
        raise SystemExit(f"{original} is not a Matterport3DSimulator checkout: {task_dir / 'eval.py'} is missing")
    env_stub = types.ModuleType("env")
    env_stub.R2RBatch = None  # only eval_simple_agents() uses it
    agent_stub = types.ModuleType("agent")
    for name in ("BaseAgent", "StopAgent", "RandomAgent", "ShortestAgent"):
        setattr(agent_stub, name, None)
    saved = {name: sys.modules.get(name) for name in ("env", "agent", "utils", "eval")}
    sys.modules["env"], sys.modules["agent"] = env_stub, agent_stub
    sys.modules.pop("utils", None)
    sys.modules.pop("eval", None)
    sys.path.insert(0, str(task_dir))
    try:
        module = importlib.import_module("eval")
    finally:
        sys.path.remove(str(task_dir))
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


def official_score(evaluation_module, workdir: Path, split: str, submission_file: Path) -> tuple[dict, int]:
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        evaluation = evaluation_module.Evaluation([split])
        summary, scores = evaluation.score(str(submission_file))
    finally:
        os.chdir(cwd)
    return {k: float(v) for k, v in summary.items()}, len(scores["nav_errors"])


def prepare_workdir(data: Path, splits: list[str]) -> Path:
    """A folder laid out as the official code expects: tasks/R2R/data/R2R_<split>.json and connectivity/."""
    work = Path(tempfile.mkdtemp(prefix="r2r-eval-parity-"))
    (work / "tasks" / "R2R" / "data").mkdir(parents=True)
    for split in splits:
        os.symlink((data / f"R2R_{split}.json").resolve(), work / "tasks" / "R2R" / "data" / f"R2R_{split}.json")
    os.symlink((data / "connectivity").resolve(), work / "connectivity")
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + f" Verified against {VERIFIED[0]} @ {VERIFIED[1]}.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--original", required=True, type=Path, help=f"a checkout of {VERIFIED[0]} (verified: {VERIFIED[1]})")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "r2r",
                        help="folder with R2R_<split>.json and connectivity/ (default: ../shared/data/r2r)")
    parser.add_argument("--splits", nargs="+", default=["val_seen", "val_unseen", "train"],
                        help="splits to score; those absent from --data are skipped with a note")
    parser.add_argument("--seed", type=int, default=1, help="Random agent seed")
    parser.add_argument("--tolerance", type=float, default=1e-9, help="largest accepted |official - ours|")
    parser.add_argument("--keep", type=Path, default=None, help="also write the submissions to this folder")
    args = parser.parse_args(argv)

    from hf_dgm.vln import NavGraphs, R2RDataset, R2REnv
    from hf_dgm.vln.agents import RandomAgent, ShortestAgent, StopAgent, run_agent, write_submission
    from hf_dgm.vln.evaluation import score_submission

    splits = []
    for split in args.splits:
        if (args.data / f"R2R_{split}.json").is_file():
            splits.append(split)
        else:
            print(f"note: {args.data / f'R2R_{split}.json'} does not exist: {split} skipped")
    if not splits:
        raise SystemExit("no split to score")
    official = load_official_evaluation(args.original)
    workdir = prepare_workdir(args.data, splits)
    graphs = NavGraphs.from_dir(args.data / "connectivity")
    print(f"official: {args.original} (verified against {VERIFIED[0]} @ {VERIFIED[1]})")
    header = "| split | agent | metric | official | ours (default) | abs diff | ours, every instruction |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    worst = 0.0
    for split in splits:
        episodes = R2RDataset.load(args.data, split)
        env = R2REnv(episodes, graphs, batch_size=64)
        for agent in (StopAgent(), RandomAgent(args.seed), ShortestAgent()):
            name = agent.name + (f" (seed {args.seed})" if agent.name == "random" else "")
            results = run_agent(agent, env)
            file = (args.keep or workdir) / f"{split}_{agent.name}.json"
            write_submission(file, results)
            with open(file, encoding="utf-8") as f:
                submission = json.load(f)  # both sides read the same bytes
            tic = time.perf_counter()
            theirs, count = official_score(official, workdir, split, file)
            t_official = time.perf_counter() - tic
            tic = time.perf_counter()
            ours, _ = score_submission(submission, episodes, graphs)
            t_ours = time.perf_counter() - tic
            every, _ = score_submission(submission, episodes, graphs, instructions_per_path=None)
            for key_theirs, key_ours in METRICS:
                diff = abs(theirs[key_theirs] - ours[key_ours])
                worst = max(worst, diff)
                lines.append(f"| {split} | {name} | {key_theirs} | {theirs[key_theirs]:.6f} | {ours[key_ours]:.6f} | "
                             f"{diff:.1e} | {every[key_ours]:.6f} |")  # fmt: skip
            count_diff = abs(count - ours["num_episodes"])
            worst = max(worst, float(count_diff))
            lines.append(f"| {split} | {name} | instructions scored | {count} | {ours['num_episodes']} "
                         f"(+{ours['num_extra_instructions']} extra apart) | {count_diff} | {every['num_episodes']} |")  # fmt: skip
            print(f"{split} {name}: official {t_official:.1f} s, ours {t_ours:.1f} s", flush=True)
    print()
    print("\n".join(lines))
    print()
    verdict = "PASS" if worst <= args.tolerance else "FAIL"
    print(f"{verdict}: largest |official - ours (default)| = {worst:.1e} (tolerance {args.tolerance:.0e})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
