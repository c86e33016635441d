#!/usr/bin/env python
"""Synthesize R2R-format training data with the speaker: shortest paths sampled over the training scans with R2R's
path statistics, one (or more) speaker instruction(s) each.

    python training/synthesize_instructions.py --speaker runs/speaker --out runs/aug.json --num_paths 20000

Paths: `hf_dgm.vln.sampling.PathSampler` over the scans of `--split` (R2R train by default): a uniformly random scan,
start viewpoint and heading, then a goal among the viewpoints whose shortest path has `--min_edges`..`--max_edges`
edges and `--min_distance`..`--max_distance` metres (defaults 4–6 edges, 5–20 m: R2R train has 4–6 edges on 99.8%
of its paths and 5–20 m on 99.6%; the script prints the measured statistics). The path list is a pure function of
the seed, so a run is deterministic for a seed.

Resumable: finished batches are appended to `<out>.partial.jsonl` (one episode per line, flushed per batch); a rerun
with the same arguments skips the path ids already there (a torn last line is ignored), so a killed run continues
without duplicates, and each batch's sampling generator is seeded from (seed, batch index) so the text does not
depend on where the run was cut. At the end the R2R-format JSON list goes to `--out` (`scan`, `path_id`, `path`,
`heading`, `distance`, `instructions`). Path ids are `--path_id_offset + k`.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm


def read_partial(path: Path) -> dict[int, dict]:
    done = {}
    if not path.is_file():
        return done
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                episode = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            done[int(episode["path_id"])] = episode
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speaker", required=True, help="trained speaker folder (model + tokenizer)")
    parser.add_argument("--out", required=True, help="augmented R2R-format JSON to write")
    parser.add_argument("--num_paths", type=int, default=20000)
    parser.add_argument("--data", default="../shared/data/r2r", help="folder with R2R_<split>.json and connectivity/")
    parser.add_argument("--split", default="train", help="scans (and path statistics) of this split")
    parser.add_argument("--features", default=None, help="feature file when the speaker uses visual features")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--min_edges", type=int, default=4)
    parser.add_argument("--max_edges", type=int, default=6)
    parser.add_argument("--min_distance", type=float, default=5.0)
    parser.add_argument("--max_distance", type=float, default=20.0)
    parser.add_argument("--instructions_per_path", type=int, default=1)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--do_sample", action="store_true", help="sample instructions (needed for several per path)")
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--path_id_offset", type=int, default=10_000_000)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.instructions_per_path > 1 and not args.do_sample:
        raise ValueError("several instructions per path need --do_sample (greedy and beam give one)")

    import torch
    from transformers import pipeline

    import hf_dgm  # noqa: F401  (registers the speaker and vln-instruction)
    from hf_dgm.vln.data import R2RDataset
    from hf_dgm.vln.graphs import NavGraphs
    from hf_dgm.vln.sampling import PathSampler, fraction_within, path_statistics

    episodes = R2RDataset.read_episodes(args.data, args.split)
    stats = path_statistics(episodes)
    inside = fraction_within(episodes, args.min_edges, args.max_edges, args.min_distance, args.max_distance)
    print(f"R2R {args.split} paths: {json.dumps(stats)}; {100 * inside:.1f}% within {args.min_edges}-{args.max_edges} "
          f"edges and {args.min_distance}-{args.max_distance} m", flush=True)
    connectivity = str(Path(args.data) / "connectivity")
    graphs = NavGraphs.from_dir(connectivity)
    sampler = PathSampler(graphs, sorted({e["scan"] for e in episodes}), args.min_edges, args.max_edges,
                          args.min_distance, args.max_distance)
    paths = sampler.sample(args.num_paths, seed=args.seed)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.jsonl")
    done = read_partial(partial)
    if partial.is_file():
        # drop a line torn by a kill before appending to the file
        partial.write_text("".join(json.dumps(e) + "\n" for e in done.values()))
    wanted = {args.path_id_offset + k for k in range(args.num_paths)}
    done = {k: v for k, v in done.items() if k in wanted}
    device = args.device if args.device is not None else (0 if torch.cuda.is_available() else -1)
    speak = pipeline("vln-instruction", model=args.speaker, connectivity_dir=connectivity, features=args.features, device=device)
    generate = {"num_beams": args.num_beams}
    if args.do_sample:
        generate.update(do_sample=True, top_p=args.top_p, temperature=args.temperature)
    bar = tqdm(total=args.num_paths, initial=len(done), desc="synthesizing", unit="path")
    with open(partial, "a", encoding="utf-8") as f:
        for batch_index, start in enumerate(range(0, args.num_paths, args.batch_size)):
            ids = [args.path_id_offset + k for k in range(start, min(start + args.batch_size, args.num_paths))]
            if all(i in done for i in ids):
                continue
            items = [paths[i - args.path_id_offset] for i in ids]
            texts = [[] for _ in items]
            for r in range(args.instructions_per_path):
                seed = (args.seed * 1_000_003 + batch_index) * 31 + r if args.do_sample else None
                outputs = speak(items, batch_size=args.batch_size, seed=seed, **generate)
                for t, o in zip(texts, outputs):
                    t.append(o["instruction"])
            for i, item, t in zip(ids, items, texts):
                if i in done:
                    continue
                episode = {"scan": item["scan"], "path_id": i, "path": item["path"], "heading": item["heading"],
                           "distance": item["distance"], "instructions": t}
                f.write(json.dumps(episode) + "\n")
                done[i] = episode
                bar.update(1)
            f.flush()
            os.fsync(f.fileno())
    bar.close()
    result = [done[args.path_id_offset + k] for k in range(args.num_paths)]
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out)
    print(f"{len(result)} synthesized episodes written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
