"""A batched R2R environment in pure Python (numpy + networkx), no Matterport3D simulator.

Geometry as the simulator computes it (`hf_dgm.vln.geometry`); features from a store or none (geometry-only).

API (stable; the Prevalent side builds on it):

```python
env = R2REnv(dataset, graphs, features=None, batch_size=8, shuffle=False, seed=0,
             angle_feat_size=128, relative_elevation=False)
obs = env.reset()             # next batch of episodes (the last batch of an epoch may be smaller);
                              # or reset(indices=[...]) (dataset rows), or reset(items=[{...}, ...]) (episode dicts)
obs = env.step(actions)       # one int per episode: a candidate index, or STOP (-1); ignored once an episode ended
env.results()                 # [{"instr_id", "trajectory": [[viewpoint, heading, elevation], ...]}] of every episode run
```

`dataset` is a `datasets.Dataset` from `R2RDataset` (or a list of dicts with `instr_id`, `scan`, `path`, `heading`,
`instruction`), or None when every `reset` passes `items=`. The goal is `path[-1]` when the path has more than one viewpoint; otherwise (the `test` split, or a
bare start) the episode has no goal and `teacher`/`distance` are None.

Each observation is a dict:

- `instr_id`, `scan`, `viewpoint`, `view_index` (0–35), `heading`, `elevation` (radians, discretized), `instruction`,
  `gt_path` (the episode's path), `step` (moves so far), `ended`;
- `candidates`: list of dicts `{"viewpoint", "view_index" (the simulator's pointId), "heading" (relative to the
  agent's view heading), "elevation" (absolute), "distance" (metres)}`, in the simulator's order;
- `candidate_viewpoints` (list), `candidate_view_index` (K,) int, `candidate_angle_features` (K, angle_feat_size),
  `candidate_features` (K, F + angle_feat_size): the view feature of `view_index` then the angle feature
  (angle feature only when geometry-only);
- `view_angle_features` (36, angle_feat_size) relative to the current view; `view_features` (36, F) or None;
- `teacher`: index of the candidate on the shortest path to the goal, STOP (-1) at the goal, None without a goal;
- `distance`: shortest-path metres to the goal (None without a goal).

A move goes to the candidate and looks at its view (`view_index`), as R2R-EnvDrop's equivalent low-level action does;
the trajectory gets one `[viewpoint, heading, elevation]` entry per move. `step_low_level` offers the simulator's own
action interface `(index, heading_change, elevation_change)` over `navigable_locations(i)` (used by the R2R
paper's Random agent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hf_dgm.vln.geometry import (
    ELEVATION_INCREMENT,
    HEADING_COUNT,
    HEADING_INCREMENT,
    NUM_VIEWS,
    VIEW_ELEVATIONS,
    VIEW_HEADINGS,
    CandidateTable,
    discretize,
    navigable_locations,
    view_angle_features,
)
from hf_dgm.vln.geometry import candidate_table as build_candidate_table
from hf_dgm.vln.features import load_feature_store
from hf_dgm.vln.graphs import NavGraphs, ScanTable


STOP = -1


@dataclass
class _Slot:
    item: dict
    table: ScanTable
    node: int
    view_index: int
    heading: float
    elevation: float
    goal: int | None
    trajectory: list = field(default_factory=list)
    ended: bool = False
    step: int = 0
    last_obs: dict | None = None


class R2REnv:
    def __init__(
        self,
        dataset,
        graphs: NavGraphs,
        features=None,
        batch_size: int = 8,
        shuffle: bool = False,
        seed: int = 0,
        angle_feat_size: int = 128,
        relative_elevation: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if dataset is None:
            self.items = []
        else:
            self.items = dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)
        self.graphs = graphs
        self.features = load_feature_store(features)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.rng = np.random.RandomState(seed)
        self.angle_feat_size = int(angle_feat_size)
        self.relative_elevation = relative_elevation
        self._view_angles = [
            view_angle_features(v, self.angle_feat_size, relative_elevation) for v in range(NUM_VIEWS)
        ]
        self._candidates: dict[tuple[str, int], CandidateTable] = {}
        self._node_cache: dict[tuple[str, int], dict] = {}
        self._view_sincos = [(math.sin(h), math.cos(h)) for h in VIEW_HEADINGS[: HEADING_COUNT]]
        self._order = np.arange(len(self.items))
        self._cursor = 0
        self.epoch = 0
        self.slots: list[_Slot] = []
        self._results: dict[str, list] = {}
        if self.shuffle:
            self.rng.shuffle(self._order)

    # ------------------------------------------------------------------------------------------------ episodes
    @property
    def num_batches(self) -> int:
        """Batches per epoch: `reset()` this many times to run every episode once."""
        return math.ceil(len(self.items) / self.batch_size)



    def _next_indices(self) -> np.ndarray:
        if self._cursor >= len(self._order):
            self._cursor = 0
            self.epoch += 1
            if self.shuffle:
                self.rng.shuffle(self._order)
        indices = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += len(indices)
        return indices

    def _start(self, item: dict) -> _Slot:
        name = item.get("instr_id", item.get("path_id"))
        scan = item["scan"]
        if scan not in self.graphs:
            raise ValueError(f"episode {name}: unknown scan {scan!r}")
        path = list(item["path"])
        if not path:
            raise ValueError(f"episode {name}: empty path")
        table = self.graphs.scan_table(scan)
        for vp in path if len(path) > 1 else path[:1]:
            if vp not in table.index:
                raise ValueError(f"episode {name}: viewpoint {vp!r} is not in the navigation graph of scan {scan}")
        heading, elevation, view = discretize(float(item.get("heading", 0.0)), float(item.get("elevation", 0.0)))
        goal = table.index[path[-1]] if len(path) > 1 else None
        slot = _Slot(item, table, table.index[path[0]], view, heading, elevation, goal)
        slot.trajectory.append([path[0], heading, elevation])
        return slot

    def reset(self, indices=None, items: list[dict] | None = None) -> list[dict]:
        """Start the next batch of episodes (or the episodes at `indices` of the dataset, or the given episode dicts
        `items`) and return their observations."""
        if items is not None:
            batch = list(items)
        else:
            if not self.items:
                raise ValueError("the environment has no episodes: pass items= to reset()")
            indices = self._next_indices() if indices is None else np.asarray(indices, dtype=np.int64)
            batch = [self.items[int(i)] for i in indices]
        if not batch:
            raise ValueError("reset() got no episodes")
        self.slots = [self._start(item) for item in batch]
        for slot in self.slots:
            self._record(slot)
        return self.observations()

    def _record(self, slot: _Slot) -> None:
        key = slot.item.get("instr_id", str(slot.item.get("path_id")))
        self._results[key] = slot.trajectory

    def results(self) -> list[dict]:
        """Submission entries of every episode started so far (the latest run of each instruction id)."""
        return [{"instr_id": k, "trajectory": [list(e) for e in v]} for k, v in self._results.items()]

    def clear_results(self) -> None:
        self._results = {}

    # ------------------------------------------------------------------------------------------------ geometry
    def candidate_table(self, table: ScanTable, node: int) -> CandidateTable:
        key = (table.scan, node)
        cached = self._candidates.get(key)
        if cached is None:
            cached = build_candidate_table(table.positions, node, table.neighbors[node])
            self._candidates[key] = cached
        return cached

    def _teacher(self, slot: _Slot, cands: CandidateTable):
        if slot.goal is None:
            return None, None
        distance = float(slot.table.distances[slot.node, slot.goal])
        if slot.node == slot.goal:
            return STOP, distance
        nxt = slot.table.next_hop[slot.node, slot.goal]
        where = np.nonzero(cands.nodes == nxt)[0]
        if len(where) == 0:
            raise ValueError(f"episode {slot.item.get('instr_id')}: next node on the shortest path is not a candidate")
        return int(where[0]), distance

    def _node_info(self, table: ScanTable, node: int) -> dict:
        key = (table.scan, node)
        info = self._node_cache.get(key)
        if info is None:
            cands = self.candidate_table(table, node)
            info = {
                "cands": cands,
                "ids": [table.viewpoints[n] for n in cands.nodes],
                "lengths": np.linalg.norm(table.positions[cands.nodes] - table.positions[node], axis=1),
                "sin_h": np.sin(cands.view_headings),
                "cos_h": np.cos(cands.view_headings),
                "sin_e": np.sin(cands.elevations),
                "cos_e": np.cos(cands.elevations),
            }
            self._node_cache[key] = info
        return info

    def _candidate_angles(self, info: dict, view_index: int) -> np.ndarray:
        # angle feature of (heading - base, elevation [- base elevation]) by the angle-difference identities
        cands = info["cands"]
        k = len(cands.nodes)
        sb, cb = self._view_sincos[view_index % HEADING_COUNT]
        base = np.empty((k, 4))
        base[:, 0] = info["sin_h"] * cb - info["cos_h"] * sb
        base[:, 1] = info["cos_h"] * cb + info["sin_h"] * sb
        if self.relative_elevation:
            elevations = cands.elevations - VIEW_ELEVATIONS[view_index]
            base[:, 2] = np.sin(elevations)
            base[:, 3] = np.cos(elevations)
        else:
            base[:, 2] = info["sin_e"]
            base[:, 3] = info["cos_e"]
        out = np.empty((k, self.angle_feat_size // 4, 4), dtype=np.float32)
        out[:] = base[:, None, :]
        return out.reshape(k, self.angle_feat_size)

    def observation(self, i: int) -> dict:
        slot = self.slots[i]
        if slot.ended and slot.last_obs is not None:
            slot.last_obs["ended"] = True
            return slot.last_obs
        table = slot.table
        info = self._node_info(table, slot.node)
        cands = info["cands"]
        headings = cands.view_headings - VIEW_HEADINGS[slot.view_index]
        elevations = cands.elevations
        if self.relative_elevation:
            elevations = elevations - VIEW_ELEVATIONS[slot.view_index]
        angle = self._candidate_angles(info, slot.view_index)
        viewpoint = table.viewpoints[slot.node]
        view_features = None if self.features is None else self.features.get(table.scan, viewpoint)
        if view_features is None:
            cand_features = angle
        else:
            cand_features = np.concatenate([view_features[cands.point_ids], angle], axis=1)
        cand_ids = info["ids"]
        lengths = info["lengths"]
        teacher, distance = self._teacher(slot, cands)
        obs = {
            "instr_id": slot.item.get("instr_id"),
            "scan": table.scan,
            "viewpoint": viewpoint,
            "view_index": slot.view_index,
            "heading": slot.heading,
            "elevation": slot.elevation,
            "instruction": slot.item.get("instruction"),
            "gt_path": slot.item["path"],
            "step": slot.step,
            "ended": slot.ended,
            "candidates": [
                {
                    "viewpoint": cand_ids[k],
                    "view_index": int(cands.point_ids[k]),
                    "heading": float(headings[k]),
                    "elevation": float(elevations[k]),
                    "distance": float(lengths[k]),
                }
                for k in range(len(cand_ids))
            ],
            "candidate_viewpoints": cand_ids,
            "candidate_view_index": cands.point_ids,
            "candidate_angle_features": angle,
            "candidate_features": cand_features,
            "view_angle_features": self._view_angles[slot.view_index],
            "view_features": view_features,
            "teacher": teacher,
            "distance": distance,
        }
        slot.last_obs = obs
        return obs

    def observations(self) -> list[dict]:
        return [self.observation(i) for i in range(len(self.slots))]

    # ------------------------------------------------------------------------------------------------ actions
    def step(self, actions) -> list[dict]:
        """Move every running episode to its chosen candidate, or end it on STOP (-1)."""
        actions = list(actions)
        if len(actions) != len(self.slots):
            raise ValueError(f"got {len(actions)} actions for a batch of {len(self.slots)} episodes")
        for slot, action in zip(self.slots, actions):
            if slot.ended:
                continue
            action = int(action)
            if action == STOP:
                slot.ended = True
                continue
            cands = self.candidate_table(slot.table, slot.node)
            if not 0 <= action < len(cands.nodes):
                raise ValueError(
                    f"episode {slot.item.get('instr_id')}: action {action} is not a candidate index "
                    f"(0..{len(cands.nodes) - 1}) or STOP (-1)"
                )
            point = int(cands.point_ids[action])
            slot.node = int(cands.nodes[action])
            slot.view_index = point
            slot.heading = float(VIEW_HEADINGS[point])
            slot.elevation = float(VIEW_ELEVATIONS[point])
            slot.step += 1
            slot.trajectory.append([slot.table.viewpoints[slot.node], slot.heading, slot.elevation])
        return self.observations()

    def navigable_locations(self, i: int) -> list[str]:
        """The simulator's `navigableLocations` of episode `i` at its current heading/elevation (itself first)."""
        slot = self.slots[i]
        table = slot.table
        locations = navigable_locations(
            table.positions, slot.node, table.neighbors[slot.node], slot.heading, slot.elevation
        )
        return [table.viewpoints[row] for row, *_ in locations]

    def step_low_level(self, actions) -> list[dict]:
        """The simulator's action interface: per episode `(index, heading_change, elevation_change)`; a nonzero
        index moves to `navigable_locations(i)[index]`, heading/elevation changes turn by ±30° (by their sign);
        `(0, 0, 0)` does nothing (ends nothing: record the stop yourself). Each call that changes the state
        appends a trajectory entry, as the simulator-based agents record it."""
        actions = list(actions)
        if len(actions) != len(self.slots):
            raise ValueError(f"got {len(actions)} actions for a batch of {len(self.slots)} episodes")
        for i, (slot, (index, dh, de)) in enumerate(zip(self.slots, actions)):
            if slot.ended:
                continue
            if index:
                locations = navigable_locations(
                    slot.table.positions, slot.node, slot.table.neighbors[slot.node], slot.heading, slot.elevation
                )
                if not 0 <= index < len(locations):
                    raise ValueError(f"episode {slot.item.get('instr_id')}: invalid navigable index {index}")
                slot.node = locations[index][0]
                slot.step += 1
            dh = HEADING_INCREMENT * np.sign(dh)
            de = ELEVATION_INCREMENT * np.sign(de)
            slot.heading, slot.elevation, slot.view_index = discretize(slot.heading + dh, slot.elevation + de)
            slot.trajectory.append([slot.table.viewpoints[slot.node], slot.heading, slot.elevation])
        return self.observations()

    def end(self, i: int) -> None:
        """Mark episode `i` ended (agents using `step_low_level` stop this way)."""
        self.slots[i].ended = True
