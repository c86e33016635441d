"""Walking given paths through the environment to get per-step trajectory features (speaker inputs, pretraining
triplets).

API (stable):

```python
walker = PathWalker(graphs, features=None, angle_feat_size=128, relative_elevation=False)
walks = walker.walk([{"scan": ..., "path": [vp0, vp1, ...], "heading": h}, ...])
batch = pad_walks(walks)   # numpy: action_features (B, T, D), view_features (B, T, 36, D), trajectory_mask (B, T)
```

Each walk has one step per viewpoint of the path: `view_features` (36, D) = the panorama at that step (visual
feature, if any, then the angle feature relative to the agent's current view), `action_features` (D,) = the
candidate feature of the next viewpoint (its view's visual feature and the candidate angle feature), zeros for the
final STOP; `actions` = the candidate index taken (-1 = STOP), `viewpoints`, `view_indices`. D = feature size +
angle size (angle size alone when geometry-only). A path whose consecutive viewpoints are not adjacent raises
`ValueError` naming the episode.
"""

from __future__ import annotations

import numpy as np

from hf_dgm.vln.env import STOP, R2REnv


class PathWalker:
    def __init__(self, graphs, features=None, angle_feat_size: int = 128, relative_elevation: bool = False):
        self.env = R2REnv(None, graphs, features=features, batch_size=1, angle_feat_size=angle_feat_size,
                          relative_elevation=relative_elevation)

    @property
    def feature_size(self) -> int:
        return 0 if self.env.features is None else int(self.env.features.feature_size)

    @property
    def input_size(self) -> int:
        return self.feature_size + self.env.angle_feat_size

    def walk(self, items: list[dict]) -> list[dict]:
        items = [dict(item, path=list(item["path"])) for item in items]
        obs = self.env.reset(items=items)
        walks = [{"view_features": [], "action_features": [], "actions": [], "viewpoints": [], "view_indices": []} for _ in items]
        for t in range(max(len(item["path"]) for item in items)):
            actions = []
            for i, (ob, item) in enumerate(zip(obs, items)):
                path = item["path"]
                if t >= len(path):
                    actions.append(STOP)
                    continue
                w = walks[i]
                views = self.env._view_angles[ob["view_index"]]
                if ob["view_features"] is not None:
                    views = np.concatenate([ob["view_features"], views], axis=1)
                w["view_features"].append(views)
                w["viewpoints"].append(ob["viewpoint"])
                w["view_indices"].append(ob["view_index"])
                if t + 1 < len(path):
                    try:
                        k = ob["candidate_viewpoints"].index(path[t + 1])
                    except ValueError:
                        name = item.get("instr_id", item.get("path_id"))
                        raise ValueError(
                            f"episode {name}: {path[t]!r} -> {path[t + 1]!r} is not an edge of scan {item['scan']}"
                        ) from None
                    w["action_features"].append(ob["candidate_features"][k])
                    w["actions"].append(k)
                    actions.append(k)
                else:
                    w["action_features"].append(np.zeros(self.input_size, dtype=np.float32))
                    w["actions"].append(STOP)
                    actions.append(STOP)
            obs = self.env.step(actions)
        return [
            {
                "view_features": np.stack(w["view_features"]).astype(np.float32),
                "action_features": np.stack(w["action_features"]).astype(np.float32),
                "actions": w["actions"],
                "viewpoints": w["viewpoints"],
                "view_indices": w["view_indices"],
            }
            for w in walks
        ]


def pad_walks(walks: list[dict]) -> dict[str, np.ndarray]:
    steps = max(len(w["actions"]) for w in walks)
    size = walks[0]["action_features"].shape[-1]
    views = walks[0]["view_features"].shape[1]
    action = np.zeros((len(walks), steps, size), dtype=np.float32)
    view = np.zeros((len(walks), steps, views, size), dtype=np.float32)
    mask = np.zeros((len(walks), steps), dtype=bool)
    for i, w in enumerate(walks):
        n = len(w["actions"])
        action[i, :n] = w["action_features"]
        view[i, :n] = w["view_features"]
        mask[i, :n] = True
    return {"action_features": action, "view_features": view, "trajectory_mask": mask}
