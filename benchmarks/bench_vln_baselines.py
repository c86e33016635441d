"""R2R baseline agents (Stop, Random as in the R2R paper, Shortest) scored by `hf_dgm.vln` on the shared R2R data,
and the simulator-free environment's stepping throughput.

For each split: every instruction runs once through `R2REnv` (geometry-only, no features), the agent's submission is
scored by `hf_dgm.vln.evaluation.score_submission` (the same code as `python -m hf_dgm.evaluate vln`).

Throughput: episodes·steps per second of `R2REnv.step` with the Shortest agent's teacher actions and with uniformly
random candidate/STOP actions (at most `--max_steps` moves), batch `--batch_size`, after a warm-up epoch that builds
the per-scan tables (its time is reported separately as the cold start).

    python benchmarks/bench_vln_baselines.py --data ../shared/data/r2r --output runs/bench/vln_baselines.md

Prints one markdown table and writes it (`--output`) plus the same figures as JSON (same path, `.json`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hf_dgm.vln import STOP, NavGraphs, R2RDataset, R2REnv  # noqa: E402
from hf_dgm.vln.agents import RandomAgent, ShortestAgent, StopAgent, run_agent, write_submission  # noqa: E402
from hf_dgm.vln.evaluation import score_submission  # noqa: E402


def throughput(env: R2REnv, policy: str, rng: np.random.RandomState, max_steps: int) -> tuple[float, int]:
    steps = 0
    start = time.perf_counter()
    for _ in range(env.num_batches):
        obs = env.reset()
        for _ in range(max_steps):
            running = [not ob["ended"] for ob in obs]
            if not any(running):
                break
            steps += sum(running)
            if policy == "teacher":
                actions = [ob["teacher"] for ob in obs]
            else:
                actions = [rng.randint(-1, len(ob["candidates"])) for ob in obs]
            obs = env.step(actions)
    return steps / (time.perf_counter() - start), steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO / ".." / "shared" / "data" / "r2r"))
    parser.add_argument("--splits", nargs="+", default=["val_seen", "train"])
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_steps", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--random_seeds", type=int, nargs="*", default=[2, 3, 4, 5],
                        help="extra seeds of the Random agent, reported as mean ± std with --seed")
    parser.add_argument("--output", default="runs/bench/vln_baselines.md")
    args = parser.parse_args(argv)

    graphs = NavGraphs.from_dir(Path(args.data) / "connectivity")
    rows, speed, seeds = [], [], {}
    for split in args.splits:
        episodes = R2RDataset.load(args.data, split)
        env = R2REnv(episodes, graphs, batch_size=args.batch_size)
        t0 = time.perf_counter()
        for agent in (StopAgent(), RandomAgent(args.seed), ShortestAgent()):
            start = time.perf_counter()
            results = run_agent(agent, env)
            elapsed = time.perf_counter() - start
            write_submission(Path(args.output).with_name(f"vln_{split}_{agent.name}.json"), results)
            summary, _ = score_submission(results, episodes, graphs)
            rows.append({"split": split, "agent": agent.name, "seconds": elapsed, **summary})
            print(rows[-1], flush=True)
        cold = time.perf_counter() - t0
        random_sr = [next(r for r in rows if r["split"] == split and r["agent"] == "random")["success_rate"]]
        for seed in args.random_seeds:
            summary, _ = score_submission(run_agent(RandomAgent(seed), env), episodes, graphs)
            random_sr.append(summary["success_rate"])
        seeds[split] = random_sr
        rng = np.random.RandomState(args.seed)
        teacher_sps, teacher_steps = throughput(env, "teacher", rng, args.max_steps)
        random_sps, random_steps = throughput(env, "random", rng, args.max_steps)
        speed.append({"split": split, "episodes": len(episodes), "baselines_seconds_incl_cold_start": cold,
                      "teacher_steps_per_s": teacher_sps, "teacher_steps": teacher_steps,
                      "random_steps_per_s": random_sps, "random_steps": random_steps})
        print(speed[-1], flush=True)

    lines = ["| split | agent | episodes | TL (m) | NE (m) | SR | OSR | SPL | nDTW | SDTW |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['split']} | {r['agent']} | {r['num_episodes']} | {r['trajectory_length']:.2f} | {r['nav_error']:.2f} | "
            f"{100 * r['success_rate']:.1f}% | {100 * r['oracle_success_rate']:.1f}% | {100 * r['spl']:.1f}% | "
            f"{100 * r['ndtw']:.1f}% | {100 * r['sdtw']:.1f}% |"
        )
    lines += ["", "| split | env steps/s (teacher) | env steps/s (random actions) | baselines incl. cold start (s) |", "|---|---|---|---|"]
    for s in speed:
        lines.append(f"| {s['split']} | {s['teacher_steps_per_s']:.0f} | {s['random_steps_per_s']:.0f} | {s['baselines_seconds_incl_cold_start']:.1f} |")
    lines.append("")
    for split, values in seeds.items():
        lines.append(f"Random agent SR on {split} over seeds {[args.seed] + list(args.random_seeds)}: "
                     f"{100 * np.mean(values):.1f}% ± {100 * np.std(values):.1f}% (mean ± std).")
    lines.append(f"Batch {args.batch_size}, geometry-only, random seed {args.seed}; {platform.machine()} CPU, "
                 f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")
    table = "\n".join(lines)
    print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "throughput": speed, "random_success_rates": seeds, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
