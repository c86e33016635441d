"""What the Matterport3D simulator computes from the connectivity poses, without the simulator.

Conventions (those of `Matterport3DSimulator`, discretized mode, 640×480 at 60° vertical field of view):

- heading is clockwise from +y: `atan2(dx, dy)`; elevation is `atan2(dz, hypot(dx, dy))`;
- 36 discretized views: view `ix` looks at heading `(ix % 12) · 30°` and elevation `(ix // 12 − 1) · 30°`
  (views 0–11 look down, 12–23 level, 24–35 up);
- a neighbour is *visible* from a camera when the horizontal angle between the camera's heading and the direction
  to the neighbour is within half the horizontal field of view, `vfov · width / height / 2 = 40°` (elevation does
  not matter); its relative heading/elevation are taken from the camera; the simulator lists the visible ones
  sorted by `sqrt(rel_heading² + rel_elevation²)`, the current viewpoint first;
- panoramic candidates (R2R-EnvDrop's `make_candidate`): every neighbour, seen from the view among the 36 where
  its angular distance is smallest (the first such view on ties), with that view's index (`point_id`), its heading
  *relative to the agent's current view heading* and its absolute elevation.
- angle feature: `[sin h, cos h, sin e, cos e]` tiled to `size` dims (128 in EnvDrop/PREVALENT); with
  `relative_elevation` the elevation is taken relative to the agent's current view elevation (HAMT/DUET).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


NUM_VIEWS = 36
HEADING_COUNT = 12
HEADING_INCREMENT = 2.0 * math.pi / HEADING_COUNT
ELEVATION_INCREMENT = math.radians(30.0)
CAMERA_VFOV = math.radians(60.0)
CAMERA_WIDTH = 640
CAMERA_HEIGHT = 480
COS_HALF_HFOV = math.cos(CAMERA_VFOV * CAMERA_WIDTH / CAMERA_HEIGHT / 2.0)

VIEW_HEADINGS = np.array([(ix % HEADING_COUNT) * HEADING_INCREMENT for ix in range(NUM_VIEWS)])
VIEW_ELEVATIONS = np.array([(ix // HEADING_COUNT - 1) * ELEVATION_INCREMENT for ix in range(NUM_VIEWS)])


def angle_feature(heading, elevation, size: int = 128) -> np.ndarray:
    """`[sin h, cos h, sin e, cos e]` tiled to `size` (a multiple of 4) along a new last axis; float32."""
    if size % 4 != 0 or size <= 0:
        raise ValueError(f"angle feature size must be a positive multiple of 4; got {size}")
    heading = np.asarray(heading, dtype=np.float64)
    elevation = np.asarray(elevation, dtype=np.float64)
    base = np.stack([np.sin(heading), np.cos(heading), np.sin(elevation), np.cos(elevation)], axis=-1)
    return np.tile(base, size // 4).astype(np.float32)


def view_angle_features(base_view: int, size: int = 128, relative_elevation: bool = False) -> np.ndarray:
    """(36, size) angle features of the 36 views seen from an agent looking at view `base_view`."""
    headings = VIEW_HEADINGS - VIEW_HEADINGS[base_view]
    elevations = VIEW_ELEVATIONS - (VIEW_ELEVATIONS[base_view] if relative_elevation else 0.0)
    return angle_feature(headings, elevations, size)


def discretize(heading: float, elevation: float) -> tuple[float, float, int]:
    """The simulator's `setHeadingElevation` in discretized mode: snapped heading, elevation and view index."""
    heading = math.fmod(heading, 2.0 * math.pi)
    while heading < 0.0:
        heading += 2.0 * math.pi
    step = int(math.floor(heading / HEADING_INCREMENT + 0.5))  # std::lround of a non-negative value
    if step == HEADING_COUNT:
        step = 0
    heading = step * HEADING_INCREMENT
    if elevation < -ELEVATION_INCREMENT / 2.0:
        return heading, -ELEVATION_INCREMENT, step
    if elevation > ELEVATION_INCREMENT / 2.0:
        return heading, ELEVATION_INCREMENT, step + 2 * HEADING_COUNT
    return heading, 0.0, step + HEADING_COUNT


def relative_angles(offsets: np.ndarray, heading, elevation):
    """Relative heading, relative elevation and visibility of target offsets (K, 3) from camera(s) at
    `heading`/`elevation` (scalars or arrays broadcasting against K), as the simulator computes them."""
    offsets = np.asarray(offsets, dtype=np.float64)
    heading = np.asarray(heading, dtype=np.float64)[..., None]
    elevation = np.asarray(elevation, dtype=np.float64)[..., None]
    tx, ty, tz = offsets[:, 0], offsets[:, 1], offsets[:, 2]
    horizontal = np.hypot(tx, ty)
    cx, cy = np.sin(heading), np.cos(heading)
    rel_elevation = np.arctan2(tz, horizontal) - elevation
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_angle = (tx * cx + ty * cy) / horizontal
    visible = cos_angle >= COS_HALF_HFOV
    rel_heading = np.arctan2(tx * cy - ty * cx, tx * cx + ty * cy)
    return rel_heading, rel_elevation, visible


@dataclass
class CandidateTable:
    """Panoramic candidates of one viewpoint (view-independent part), in the simulator's order.

    `nodes[k]`: row of the neighbour in the scan table; `point_ids[k]`: the view it is seen from; `view_headings[k]`:
    that view's heading plus the neighbour's heading relative to it (subtract the agent's view heading to get the
    candidate heading); `elevations[k]`: absolute elevation; `angular_distances[k]`: from that view.
    """

    nodes: np.ndarray
    point_ids: np.ndarray
    view_headings: np.ndarray
    elevations: np.ndarray
    angular_distances: np.ndarray


def candidate_table(positions: np.ndarray, node: int, neighbors: np.ndarray) -> CandidateTable:
    """Candidates of viewpoint `node` given the scan's (N, 3) positions and its neighbour rows (file order)."""
    if len(neighbors) == 0:
        empty = np.zeros(0)
        return CandidateTable(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), empty, empty, empty)
    offsets = positions[neighbors] - positions[node]
    rel_h, rel_e, visible = relative_angles(offsets, VIEW_HEADINGS, VIEW_ELEVATIONS)  # (36, K)
    dist = np.sqrt(rel_h**2 + rel_e**2)
    masked = np.where(visible, dist, np.inf)
    best_view = np.argmin(masked, axis=0)  # first view on ties, as the strict '<' of make_candidate
    seen = np.isfinite(masked[best_view, np.arange(len(neighbors))])
    # order of first appearance: views 0..35, within a view by angular distance (the simulator's sort)
    first_view = np.where(visible.any(axis=0), np.argmax(visible, axis=0), NUM_VIEWS)
    rank_in_view = np.empty(len(neighbors), dtype=np.int64)
    for view in np.unique(first_view):
        if view == NUM_VIEWS:
            continue
        members = np.nonzero(visible[view])[0]
        order = members[np.argsort(dist[view, members], kind="stable")]
        position = {int(m): r for r, m in enumerate(order)}
        for k in np.nonzero(first_view == view)[0]:
            rank_in_view[k] = position[int(k)]
    keep = np.nonzero(seen)[0]
    keep = keep[np.lexsort((rank_in_view[keep], first_view[keep]))]
    cols = keep
    views = best_view[cols]
    return CandidateTable(
        nodes=neighbors[cols],
        point_ids=views.astype(np.int64),
        view_headings=VIEW_HEADINGS[views] + rel_h[views, cols],
        elevations=VIEW_ELEVATIONS[views] + rel_e[views, cols],
        angular_distances=dist[views, cols],
    )


def navigable_locations(positions: np.ndarray, node: int, neighbors: np.ndarray, heading: float, elevation: float):
    """The simulator's `navigableLocations` at a state: `[(row, rel_heading, rel_elevation, rel_distance)]`, the
    current viewpoint first, then the neighbours visible in the camera's horizontal field, by angular distance."""
    result = [(int(node), 0.0, 0.0, 0.0)]
    if len(neighbors):
        offsets = positions[neighbors] - positions[node]
        rel_h, rel_e, visible = relative_angles(offsets, heading, elevation)
        lengths = np.linalg.norm(offsets, axis=1)
        idx = np.nonzero(visible)[0]
        order = idx[np.argsort(np.sqrt(rel_h[idx] ** 2 + rel_e[idx] ** 2), kind="stable")]
        result += [(int(neighbors[k]), float(rel_h[k]), float(rel_e[k]), float(lengths[k])) for k in order]
    return result
