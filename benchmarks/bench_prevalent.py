#!/usr/bin/env python
"""Does Prevalent pretraining help the R2R agent? Geometry-only, on the shared R2R data, small CPU budgets.

1. Pretrain Prevalent (masked LM + action prediction) on triplets walked from R2R train (+ synthesized R2R-format
   JSON with `--augmented FILE --augmented_ratio R`), text layers initialised from the pip-shipped all-MiniLM-L6-v2.
2. Fine-tune two agents with the same budget (iterations, batch, learning rates, seed): one from that pretraining,
   one from scratch (the same architecture; text layers from MiniLM, cross-modal layers random).
3. Score both on val_seen with the `hf_dgm.vln` evaluator, next to the Random (the R2R paper's) and Shortest agents.
4. Report the pretraining and fine-tuning throughput.

    OMP_NUM_THREADS=1 python benchmarks/bench_prevalent.py --out runs/bench_prevalent \
        [--pretrain_steps 150] [--stage1_iters 300] [--stage2_iters 100] [--augmented runs/aug.json --augmented_ratio 0.5]

Writes `OUT/results.json` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def baseline_rows(data_dir: str, split: str) -> dict[str, dict]:
    from hf_dgm.vln import NavGraphs, R2RDataset, R2REnv
    from hf_dgm.vln.agents import RandomAgent, ShortestAgent, run_agent
    from hf_dgm.vln.evaluation import score_submission

    dataset = R2RDataset.load(data_dir, split)
    graphs = NavGraphs.from_dir(Path(data_dir) / "connectivity")
    rows = {}
    for name, agent in (("Random (R2R paper's)", RandomAgent(seed=1)), ("Shortest (oracle)", ShortestAgent())):
        env = R2REnv(dataset, graphs, features=None, batch_size=64)
        rows[name], _ = score_submission(run_agent(agent, env), dataset, graphs)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_prevalent")
    parser.add_argument("--data_dir", default="../shared/data/r2r")
    parser.add_argument("--la_layers", type=int, default=4)
    parser.add_argument("--vl_layers", type=int, default=2)
    parser.add_argument("--pretrain_steps", type=int, default=150)
    parser.add_argument("--pretrain_batch_size", type=int, default=32)
    parser.add_argument("--pretrain_items", type=int, default=None, help="R2R train instructions walked for triplets (all by default)")
    parser.add_argument("--augmented", default=None)
    parser.add_argument("--augmented_ratio", type=float, default=0.0)
    parser.add_argument("--stage1_iters", type=int, default=300)
    parser.add_argument("--stage2_iters", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--nav_hidden_size", type=int, default=512)
    parser.add_argument("--max_eval_items", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from hf_dgm.training.prevalent import finetune as prevalent_finetune, pretrain as prevalent_pretrain

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"args": vars(args), "threads": torch.get_num_threads()}

    pre_dir = out / "prevalent"
    if not (pre_dir / "pretrain_metrics.json").is_file():
        pre_argv = [
            "--data_dir", args.data_dir, "--init_bert", "minilm", "--la_layers", str(args.la_layers),
            "--vl_layers", str(args.vl_layers), "--max_eval_items", "200", "--augmented_ratio", str(args.augmented_ratio),
            "--learning_rate", "1e-4", "--warmup_steps", str(max(1, args.pretrain_steps // 10)), "--max_steps", str(args.pretrain_steps),
            "--per_device_train_batch_size", str(args.pretrain_batch_size), "--logging_steps", "25",
            "--save_steps", str(max(1, args.pretrain_steps // 2)), "--save_total_limit", "1", "--report_to", "none",
            "--use_cpu", "true", "--dataloader_num_workers", "0", "--seed", str(args.seed), "--output_dir", str(pre_dir),
        ]  # fmt: skip
        if args.pretrain_items:
            pre_argv += ["--max_train_items", str(args.pretrain_items)]
        if args.augmented:
            pre_argv += ["--augmented", args.augmented]
        prevalent_pretrain.main(pre_argv)
    results["pretraining"] = json.loads((pre_dir / "pretrain_metrics.json").read_text())

    common = [
        "--data_dir", args.data_dir, "--la_layers", str(args.la_layers), "--vl_layers", str(args.vl_layers),
        "--stage1_iters", str(args.stage1_iters), "--stage2_iters", str(args.stage2_iters), "--batch_size", str(args.batch_size),
        "--nav_hidden_size", str(args.nav_hidden_size), "--seed", str(args.seed), "--use_cpu", "true", "--save_every", "100",
    ]  # fmt: skip
    if args.max_eval_items:
        common += ["--max_eval_items", str(args.max_eval_items)]
    for name, extra in (("from_scratch", ["--init_bert", "minilm"]), ("from_prevalent", ["--pretrained", str(pre_dir)])):
        run_dir = out / name
        if not (run_dir / "finetune_metrics.json").is_file():
            prevalent_finetune.main(common + extra + ["--output_dir", str(run_dir)])
        results[name] = json.loads((run_dir / "finetune_metrics.json").read_text())

    tic = time.perf_counter()
    results["baselines"] = baseline_rows(args.data_dir, "val_seen")
    results["baseline_seconds"] = time.perf_counter() - tic
    (out / "results.json").write_text(json.dumps(results, indent=2))

    def row(name, m, prefix=""):
        g = lambda k: m[prefix + k]  # noqa: E731
        return (f"| {name} | {100 * g('success_rate'):.1f} | {100 * g('spl'):.1f} | {g('nav_error'):.2f} | "
                f"{100 * g('ndtw'):.1f} | {g('trajectory_length'):.2f} | {g('num_episodes')} |")  # fmt: skip

    print("| agent (val_seen, geometry-only) | SR % | SPL % | NE m | nDTW % | TL m | episodes |")
    print("|---|---|---|---|---|---|---|")
    for name, m in results["baselines"].items():
        print(row(name, m))
    print(row("EnvDrop agent, fine-tuned from scratch (MiniLM text layers)", results["from_scratch"], "val_seen_"))
    print(row("EnvDrop agent, fine-tuned from Prevalent pretraining", results["from_prevalent"], "val_seen_"))
    p = results["pretraining"]
    print(f"\npretraining: {p['train_samples_per_second']:.1f} triplets/s over {args.pretrain_steps} steps "
          f"(batch {args.pretrain_batch_size}); held-out action accuracy {p['eval_action_accuracy']:.3f}, "
          f"MLM loss {p['eval_masked_lm_loss']:.3f}")  # fmt: skip
    for name in ("from_scratch", "from_prevalent"):
        m = results[name]
        print(f"fine-tuning {name}: {m['train_episodes_per_second']:.2f} episodes/s ({m['train_iterations']} iterations, "
              f"{m['train_seconds']:.0f} s); val_seen evaluation {m['eval_seconds']:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
