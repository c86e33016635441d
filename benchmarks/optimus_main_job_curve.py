"""The main job's four figures against its budget (issue 17): what `--max_steps` buys, in minutes of this machine.

For each budget S in `--budgets`, runs the main job as a user would (a fresh process:
`python -m hf_dgm.training.optimus.main_job --max_steps S --output_dir OUT/steps_S --seed SEED [--extra ...]`), times
it, and reads the run's `metrics.json`: greedy reconstruction BLEU, interpolation endpoint BLEU and distinct sentences
of 5, active units, and the importance-weighted per-token PPL against the plain decoder fine-tuned on the same budget
in the same run. Writes `OUT/curve.md` (a table) and `OUT/curve.png` (each figure against minutes, with the issue's
target as a dashed line).

    python benchmarks/optimus_main_job_curve.py --budgets 50,100,200 --output_dir runs/bench/optimus_curve \
        [--seed 42] [--threads 2] [--extra "--decoder_freeze_steps 50"]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

TARGETS = {  # figure: (label, target, higher is better)
    "bleu": ("reconstruction BLEU (greedy)", 25.0, True),
    "endpoint_bleu": ("interpolation endpoint BLEU", 25.0, True),
    "distinct": ("distinct sentences of 5 per interpolation", 3.0, True),
    "active_units": ("active units of 32", 8.0, True),
    "ppl_ratio": ("IW per-token PPL / plain decoder's", 1.10, False),
}


def run_budget(steps: int, args) -> dict:
    out = Path(args.output_dir) / f"steps_{steps}"
    cmd = [sys.executable, "-m", "hf_dgm.training.optimus.main_job", "--max_steps", str(steps),
           "--output_dir", str(out), "--seed", str(args.seed), *shlex.split(args.extra)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(f"[curve] {' '.join(cmd)}", flush=True)
    started = time.time()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(Path(args.output_dir) / f"steps_{steps}.log", "w") as log:
        subprocess.run(cmd, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    minutes = (time.time() - started) / 60
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_minutes = (cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime) / 60
    m = json.loads((out / "metrics.json").read_text())
    row = {
        "steps": steps, "minutes": round(minutes, 2), "cpu_minutes": round(cpu_minutes, 2),
        "bleu": m["eval_reconstruction_bleu"], "endpoint_bleu": m["eval_interpolation_endpoint_bleu"],
        "distinct": m["eval_interpolation_distinct"], "active_units": m["eval_active_units"],
        "ppl": m["eval_ppl_per_token"], "plain_ppl": m.get("eval_plain_decoder_ppl_per_token"),
        "kl": m["eval_kl"], "mi": m["eval_mutual_information"], "k": m["eval_num_importance_samples"],
    }
    row["ppl_ratio"] = row["ppl"] / row["plain_ppl"] if row["plain_ppl"] else None
    print(f"[curve] {json.dumps(row)}", flush=True)
    return row


def write_report(rows: list[dict], args) -> None:
    out = Path(args.output_dir)
    lines = [
        f"Main job at several budgets (seed {args.seed}, {args.threads} thread(s), extra flags: `{args.extra or 'none'}`); "
        f"minutes = wall time of the whole job (load, both fine-tunings, evaluation, writing the folder); CPU minutes = "
        f"the job's user + system time, which other jobs on the machine disturb less.", "",
        "| steps | minutes | CPU minutes | recon BLEU | endpoint BLEU | distinct of 5 | AU | IW PPL (K) | plain PPL | ratio | KL | MI |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['ppl_ratio']:.2f}" if r["ppl_ratio"] else "–"
        plain = f"{r['plain_ppl']:.2f}" if r["plain_ppl"] else "–"
        lines.append(
            f"| {r['steps']} | {r['minutes']:.1f} | {r['cpu_minutes']:.1f} | {r['bleu']:.1f} | {r['endpoint_bleu']:.1f} | {r['distinct']:.2f} | "
            f"{r['active_units']} | {r['ppl']:.2f} ({r['k']}) | {plain} | {ratio} | {r['kl']:.1f} | {r['mi']:.2f} |"
        )
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    (out / "curve.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TARGETS), figsize=(4 * len(TARGETS), 3.2))
    minutes = [r["minutes"] for r in rows]
    for ax, (key, (label, target, _)) in zip(axes, TARGETS.items()):
        ax.plot(minutes, [r[key] if r[key] is not None else float("nan") for r in rows], "o-")
        for r in rows:
            ax.annotate(str(r["steps"]), (r["minutes"], r[key] or 0), fontsize=7, textcoords="offset points", xytext=(3, 3))
        ax.axhline(target, ls="--", color="grey", lw=1)
        ax.set_xlabel("minutes (whole main job)")
        ax.set_title(label, fontsize=9)
    fig.suptitle(f"Optimus main job vs budget (labels: steps; dashed: issue 17 target; seed {args.seed})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="50,100,200", help="comma-separated --max_steps values")
    parser.add_argument("--output_dir", default="runs/bench/optimus_curve")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extra", default="", help="further main-job flags, one quoted string")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    if not budgets or min(budgets) < 1:
        raise ValueError(f"--budgets must be positive step counts; got {args.budgets!r}")
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for steps in budgets:
        rows.append(run_budget(steps, args))
        write_report(rows, args)  # after every budget: a long sweep shows its partial curve
    return 0


if __name__ == "__main__":
    sys.exit(main())
