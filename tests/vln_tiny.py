"""A hand-made scan for the VLN tests.

Positions (x, y, z), metres; heading is clockwise from +y:

    D (0,-2,1.5) — A (0,0,1.5) — B (0,3,1.5) — C (4,3,5.5)      X (excluded)   F (included, no edge)

Edges A–B (3 m), A–D (2 m), B–C (sqrt 32 m: 90° heading, 45° up), B–X (X excluded, so no edge).
"""

import json
import math
from pathlib import Path

SCAN = "tinyScan001"
POSITIONS = {
    "A": (0.0, 0.0, 1.5),
    "B": (0.0, 3.0, 1.5),
    "C": (4.0, 3.0, 5.5),
    "D": (0.0, -2.0, 1.5),
    "X": (1.0, 1.0, 1.5),
    "F": (9.0, 9.0, 1.5),
}
EDGES = {("A", "B"), ("A", "D"), ("B", "C"), ("B", "X")}
EXCLUDED = {"X"}
AB, AD, BC = 3.0, 2.0, math.sqrt(32.0)


def connectivity() -> list[dict]:
    names = list(POSITIONS)
    items = []
    for name in names:
        x, y, z = POSITIONS[name]
        pose = [1.0, 0.0, 0.0, x, 0.0, 1.0, 0.0, y, 0.0, 0.0, 1.0, z, 0.0, 0.0, 0.0, 1.0]
        unobstructed = [(name, other) in EDGES or (other, name) in EDGES for other in names]
        items.append(
            {
                "image_id": name,
                "pose": pose,
                "included": name not in EXCLUDED,
                "visible": unobstructed,
                "unobstructed": unobstructed,
                "height": 1.5,
            }
        )
    return items


def write_data(root: Path, episodes: dict[str, list[dict]] | None = None) -> Path:
    """A data folder: connectivity/ with the tiny scan, and R2R_<split>.json files."""
    (root / "connectivity").mkdir(parents=True, exist_ok=True)
    with open(root / "connectivity" / f"{SCAN}_connectivity.json", "w") as f:
        json.dump(connectivity(), f)
    if episodes is None:
        episodes = {
            "val_seen": [
                {"scan": SCAN, "path_id": 7, "path": ["A", "B", "C"], "heading": 0.0, "distance": AB + BC,
                 "instructions": ["go north then up the stairs on the right", "walk to the stairs", "climb"]},
                {"scan": SCAN, "path_id": 8, "path": ["D", "A"], "heading": 0.0, "distance": AD,
                 "instructions": ["walk forward", "go ahead", "move on", "a fourth one"]},
            ],
            "test": [{"scan": SCAN, "path_id": 9, "path": ["A"], "heading": 0.0, "instructions": ["x", "y", "z"]}],
        }
    for split, items in episodes.items():
        with open(root / f"R2R_{split}.json", "w") as f:
            json.dump(items, f)
    return root
