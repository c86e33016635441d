"""R2R episodes: `R2R_<split>.json` files (`scan`, `path_id`, `path`, `heading`, `instructions`, and `distance`
except in `test`), one dataset item per instruction.

API (stable):

- `R2RDataset.read_episodes(data_dir_or_file, split)` -> list of raw episode dicts;
- `R2RDataset.load(data_dir_or_file, split="val_seen")` -> `datasets.Dataset`, one row per instruction, columns
  `instr_id` (`"<path_id>_<k>"`, the submission key), `path_id`, `instruction_index`, `scan`, `path` (viewpoint ids,
  start first, goal last; only the start in `test`), `heading` (radians), `instruction`, `distance` (metres, NaN in
  `test`);
- `R2RDataset.from_episodes(episodes)` -> the same from a list of R2R-format dicts (e.g. augmented data);
- `R2RDataset.has_goals(split)`: False for `test` (its goals are hidden).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import datasets


SPLITS_WITHOUT_GOALS = ("test",)
REQUIRED_KEYS = ("scan", "path_id", "path", "heading", "instructions")


def episode_file(data: str | os.PathLike, split: str) -> Path:
    path = Path(data)
    if path.is_file():
        return path
    candidate = path / f"R2R_{split}.json"
    if not candidate.is_file():
        raise ValueError(f"R2R split {split!r} not found: {candidate} does not exist")
    return candidate


class R2RDataset:
    """Loaders for R2R-format data (a namespace; the data itself is a `datasets.Dataset`)."""

    @staticmethod
    def has_goals(split: str) -> bool:
        return split not in SPLITS_WITHOUT_GOALS

    @staticmethod
    def read_episodes(data: str | os.PathLike, split: str = "val_seen") -> list[dict]:
        file = episode_file(data, split)
        with open(file, encoding="utf-8") as f:
            episodes = json.load(f)
        if not isinstance(episodes, list):
            raise ValueError(f"{file}: expected a JSON list of episodes")
        for n, episode in enumerate(episodes):
            missing = [k for k in REQUIRED_KEYS if k not in episode]
            if missing:
                raise ValueError(f"{file}: episode {n} (path_id {episode.get('path_id')}) lacks {missing}")
            if not episode["path"]:
                raise ValueError(f"{file}: episode path_id {episode['path_id']} has an empty path")
        return episodes

    @staticmethod
    def from_episodes(episodes: list[dict]) -> datasets.Dataset:
        rows = {k: [] for k in ("instr_id", "path_id", "instruction_index", "scan", "path", "heading", "instruction", "distance")}
        for episode in episodes:
            for k, instruction in enumerate(episode["instructions"]):
                rows["instr_id"].append(f"{episode['path_id']}_{k}")
                rows["path_id"].append(int(episode["path_id"]))
                rows["instruction_index"].append(k)
                rows["scan"].append(episode["scan"])
                rows["path"].append(list(episode["path"]))
                rows["heading"].append(float(episode["heading"]))
                rows["instruction"].append(instruction)
                rows["distance"].append(float(episode.get("distance", math.nan)))
        features = datasets.Features(
            {
                "instr_id": datasets.Value("string"),
                "path_id": datasets.Value("int64"),
                "instruction_index": datasets.Value("int32"),
                "scan": datasets.Value("string"),
                "path": datasets.Sequence(datasets.Value("string")),
                "heading": datasets.Value("float64"),
                "instruction": datasets.Value("string"),
                "distance": datasets.Value("float64"),
            }
        )
        return datasets.Dataset.from_dict(rows, features=features)

    @classmethod
    def load(cls, data: str | os.PathLike, split: str = "val_seen") -> datasets.Dataset:
        dataset = cls.from_episodes(cls.read_episodes(data, split))
        dataset.info.description = f"R2R {split}"
        return dataset
