"""Baseline R2R agents (the R2R paper's, Anderson et al. 2018) writing submission files.

- `StopAgent`: stays at the start.
- `RandomAgent`: the R2R paper's random agent: per episode draw `s` uniformly from −11..0, turn right 30° `−s` times
  (a random heading in 30° turns), then move forward (the navigable location nearest the view centre) until 5 moves
  are made, turning right whenever nothing is navigable ahead; at most 30 actions. Low-level simulator actions, one
  trajectory entry per action, as the original records it.
- `ShortestAgent`: follows the teacher (next node on the shortest path, STOP at the goal).

```bash
python -m hf_dgm.vln.agents --agent random --split val_seen --data ../shared/data/r2r --out random_val_seen.json
python -m hf_dgm.evaluate vln --predictions random_val_seen.json --split val_seen --data ../shared/data/r2r
```
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

from hf_dgm.vln.env import STOP, R2REnv


class StopAgent:
    name = "stop"

    def rollout(self, env: R2REnv) -> None:
        env.reset()


class RandomAgent:
    name = "random"
    max_actions = 30
    forward_moves = 5

    def __init__(self, seed: int = 1):
        self.rng = random.Random(seed)

    def rollout(self, env: R2REnv) -> None:
        obs = env.reset()
        steps = [self.rng.randint(-11, 0) for _ in obs]
        for _ in range(self.max_actions):
            actions = []
            for i in range(len(obs)):
                if env.slots[i].ended:
                    actions.append((0, 0, 0))
                elif steps[i] >= self.forward_moves:
                    env.end(i)
                    actions.append((0, 0, 0))
                elif steps[i] < 0:
                    actions.append((0, 1, 0))
                    steps[i] += 1
                elif len(env.navigable_locations(i)) > 1:
                    actions.append((1, 0, 0))
                    steps[i] += 1
                else:
                    actions.append((0, 1, 0))
            if all(slot.ended for slot in env.slots):
                break
            obs = env.step_low_level(actions)


class ShortestAgent:
    name = "shortest"
    max_actions = 100

    def rollout(self, env: R2REnv) -> None:
        obs = env.reset()
        for _ in range(self.max_actions):
            if all(ob["ended"] for ob in obs):
                break
            if any(ob["teacher"] is None for ob in obs):
                raise ValueError("the Shortest agent needs goals (not available in the test split)")
            obs = env.step([STOP if ob["ended"] else ob["teacher"] for ob in obs])


AGENTS = {"stop": StopAgent, "random": RandomAgent, "shortest": ShortestAgent}


def run_agent(agent, env: R2REnv) -> list[dict]:
    """Run `agent` on every episode of `env` once; the submission entries in the dataset's order."""
    env.clear_results()
    for _ in range(env.num_batches):
        agent.rollout(env)
    return env.results()


def write_submission(path: str | os.PathLike, results: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f)


def main(argv: list[str] | None = None) -> int:
    from hf_dgm.vln.data import R2RDataset
    from hf_dgm.vln.graphs import NavGraphs

    parser = argparse.ArgumentParser(prog="python -m hf_dgm.vln.agents", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", required=True, choices=sorted(AGENTS))
    parser.add_argument("--split", default="val_seen")
    parser.add_argument("--data", required=True, help="folder with R2R_<split>.json and connectivity/")
    parser.add_argument("--out", required=True, help="submission JSON to write")
    parser.add_argument("--seed", type=int, default=1, help="random agent seed (default 1, as the original)")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(argv)
    episodes = R2RDataset.load(args.data, args.split)
    graphs = NavGraphs.from_dir(Path(args.data) / "connectivity")
    env = R2REnv(episodes, graphs, batch_size=args.batch_size)
    agent = RandomAgent(args.seed) if args.agent == "random" else AGENTS[args.agent]()
    results = run_agent(agent, env)
    write_submission(args.out, results)
    print(f"{len(results)} trajectories written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
