"""Matterport3D navigation graphs, built as the standard R2R evaluators build them.

Per scan, an undirected `networkx.Graph` with an edge i–j iff viewpoint i is `included`, `unobstructed[j]` is true and
viewpoint j is `included`; the weight is the 3-D Euclidean distance between the pose translations
(`pose[3]`, `pose[7]`, `pose[11]`), computed in the same floating-point order as the reference
(`((dx)**2 + (dy)**2 + (dz)**2) ** 0.5`); distances and paths by Dijkstra (`networkx`). Viewpoints with no edge are
not nodes, as in the reference.

API (stable; the Prevalent side builds on it):

- `NavGraphs.from_dir(connectivity_dir, scans=None)` -> `NavGraphs` (scans load lazily on first use);
- `graphs.graph(scan)` -> `networkx.Graph` (node attribute `position`: `np.ndarray` of shape (3,));
- `graphs.distance(scan, a, b)`, `graphs.shortest_path(scan, a, b)` (list of viewpoint ids, both ends included);
- `graphs.distances(scan)` -> `dict[a][b]` of all-pairs Dijkstra lengths; `graphs.paths(scan)` likewise for paths;
- `graphs.scan_table(scan)` -> `ScanTable`: numpy views of one scan (node order, positions, distance matrix,
  next-hop matrix) that the environment steps on;
- `graphs.scans`, `scan in graphs`, `graphs.has_viewpoint(scan, vp)`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse.csgraph import dijkstra


def _pose_distance(pose_a: list[float], pose_b: list[float]) -> float:
    return ((pose_a[3] - pose_b[3]) ** 2 + (pose_a[7] - pose_b[7]) ** 2 + (pose_a[11] - pose_b[11]) ** 2) ** 0.5


def build_nav_graph(connectivity: list[dict]) -> nx.Graph:
    """The reference graph of one scan from its parsed `<scan>_connectivity.json`."""
    graph = nx.Graph()
    positions = {}
    for i, item in enumerate(connectivity):
        if not item["included"]:
            continue
        for j, connected in enumerate(item["unobstructed"]):
            if connected and connectivity[j]["included"]:
                other = connectivity[j]
                if not other["unobstructed"][i]:
                    raise ValueError(
                        f"connectivity is not symmetric: {item['image_id']} -> {other['image_id']} is unobstructed "
                        "but not the reverse"
                    )
                positions[item["image_id"]] = np.array([item["pose"][3], item["pose"][7], item["pose"][11]])
                graph.add_edge(item["image_id"], other["image_id"], weight=_pose_distance(item["pose"], other["pose"]))
    nx.set_node_attributes(graph, values=positions, name="position")
    return graph


@dataclass
class ScanTable:
    """Numpy form of one scan's graph, in a fixed node order.

    Attributes:
        scan: scan id.
        viewpoints: node ids; `index[vp]` is the row of `vp`.
        positions: (N, 3) float64 pose translations, rounded through float32 as the simulator stores them.
        distances: (N, N) shortest-path lengths (Dijkstra; `inf` when unreachable).
        next_hop: (N, N) int: `next_hop[i, j]` is the node after i on a shortest path i -> j (j when i == j; -1 when
            unreachable).
        neighbors: per node, the int array of adjacent nodes in connectivity-file order (the simulator's order).
    """

    scan: str
    viewpoints: list[str]
    index: dict[str, int]
    positions: np.ndarray
    distances: np.ndarray
    next_hop: np.ndarray
    neighbors: list[np.ndarray]


class NavGraphs:
    """Lazily loaded navigation graphs of a `connectivity/` folder (`<scan>_connectivity.json` files)."""

    def __init__(self, connectivity_dir: str | os.PathLike, scans: list[str] | None = None):
        self.connectivity_dir = Path(connectivity_dir)
        if not self.connectivity_dir.is_dir():
            raise ValueError(f"connectivity folder not found: {self.connectivity_dir}")
        available = sorted(p.name[: -len("_connectivity.json")] for p in self.connectivity_dir.glob("*_connectivity.json"))
        if not available:
            raise ValueError(f"no *_connectivity.json files in {self.connectivity_dir}")
        if scans is not None:
            missing = sorted(set(scans) - set(available))
            if missing:
                raise ValueError(f"no connectivity file for scan(s) {missing[:5]} in {self.connectivity_dir}")
            available = sorted(set(scans))
        self.scans = available
        self._raw: dict[str, list[dict]] = {}
        self._graphs: dict[str, nx.Graph] = {}
        self._distances: dict[str, dict] = {}
        self._paths: dict[str, dict] = {}
        self._tables: dict[str, ScanTable] = {}

    @classmethod
    def from_dir(cls, connectivity_dir: str | os.PathLike, scans: list[str] | None = None) -> "NavGraphs":
        return cls(connectivity_dir, scans=scans)

    @classmethod
    def from_connectivity(cls, connectivity: dict[str, list[dict]]) -> "NavGraphs":
        """Graphs from parsed connectivity lists, `{scan: [entry, ...]}` (the content of `<scan>_connectivity.json`
        files), e.g. sent inline with a request."""
        if not isinstance(connectivity, dict) or not connectivity:
            raise ValueError("connectivity must be a non-empty dict {scan: [connectivity entries]}")
        for scan, entries in connectivity.items():
            if not isinstance(entries, list) or not all(isinstance(e, dict) and "image_id" in e for e in entries):
                raise ValueError(f"connectivity of scan {scan!r} must be a list of entries with image_id, pose, ...")
        graphs = cls.__new__(cls)
        graphs.connectivity_dir = Path("<inline connectivity>")
        graphs.scans = sorted(connectivity)
        graphs._raw = {scan: list(entries) for scan, entries in connectivity.items()}
        graphs._graphs, graphs._distances, graphs._paths, graphs._tables = {}, {}, {}, {}
        return graphs

    def __contains__(self, scan: str) -> bool:
        return scan in self.scans

    def _check_scan(self, scan: str) -> None:
        if scan not in self.scans:
            raise ValueError(f"unknown scan {scan!r} (not in {self.connectivity_dir})")

    def connectivity(self, scan: str) -> list[dict]:
        """The parsed connectivity file of `scan`."""
        self._check_scan(scan)
        if scan not in self._raw:
            with open(self.connectivity_dir / f"{scan}_connectivity.json", encoding="utf-8") as f:
                self._raw[scan] = json.load(f)
        return self._raw[scan]

    def graph(self, scan: str) -> nx.Graph:
        if scan not in self._graphs:
            self._graphs[scan] = build_nav_graph(self.connectivity(scan))
        return self._graphs[scan]

    def has_viewpoint(self, scan: str, viewpoint: str) -> bool:
        return scan in self.scans and viewpoint in self.graph(scan)

    def distances(self, scan: str) -> dict[str, dict[str, float]]:
        if scan not in self._distances:
            self._distances[scan] = dict(nx.all_pairs_dijkstra_path_length(self.graph(scan)))
        return self._distances[scan]

    def paths(self, scan: str) -> dict[str, dict[str, list[str]]]:
        if scan not in self._paths:
            self._paths[scan] = dict(nx.all_pairs_dijkstra_path(self.graph(scan)))
        return self._paths[scan]

    def distance(self, scan: str, a: str, b: str) -> float:
        try:
            return self.distances(scan)[a][b]
        except KeyError:
            raise ValueError(f"no path between {a!r} and {b!r} in scan {scan!r} (unknown or disconnected viewpoint)")

    def shortest_path(self, scan: str, a: str, b: str) -> list[str]:
        try:
            return list(self.paths(scan)[a][b])
        except KeyError:
            raise ValueError(f"no path between {a!r} and {b!r} in scan {scan!r} (unknown or disconnected viewpoint)")

    def scan_table(self, scan: str) -> ScanTable:
        if scan in self._tables:
            return self._tables[scan]
        graph = self.graph(scan)
        raw = self.connectivity(scan)
        # node order: connectivity-file order (the simulator's index order)
        viewpoints = [item["image_id"] for item in raw if item["image_id"] in graph]
        index = {vp: i for i, vp in enumerate(viewpoints)}
        by_id = {item["image_id"]: item for item in raw}
        positions = np.array(
            [[by_id[vp]["pose"][3], by_id[vp]["pose"][7], by_id[vp]["pose"][11]] for vp in viewpoints], dtype=np.float32
        ).astype(np.float64)
        # Dijkstra in C over the same weights; distances equal networkx's (checked on all 90 scans), and the next
        # hop i -> j is the predecessor of i on the shortest path j -> i (the graph is undirected)
        n = len(viewpoints)
        weights = nx.to_scipy_sparse_array(graph, nodelist=viewpoints, weight="weight", format="csr")
        distances, predecessors = dijkstra(weights, directed=False, return_predecessors=True)
        next_hop = predecessors.T.astype(np.int64, copy=True)
        np.fill_diagonal(next_hop, np.arange(n))
        file_index = {item["image_id"]: k for k, item in enumerate(raw)}
        neighbors = []
        for vp in viewpoints:
            adjacent = sorted(graph.neighbors(vp), key=file_index.__getitem__)
            neighbors.append(np.array([index[u] for u in adjacent], dtype=np.int64))
        table = ScanTable(scan, viewpoints, index, positions, distances, next_hop, neighbors)
        self._tables[scan] = table
        return table
