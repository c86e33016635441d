"""Vision-and-language navigation (R2R) without the Matterport3D simulator: data, graphs, features, environment,
metrics, baseline agents. Not a model family and outside the modeling import tree (`import hf_dgm` does not import
it).

```python
from hf_dgm.vln import R2RDataset, NavGraphs, R2REnv, STOP
graphs = NavGraphs.from_dir("../shared/data/r2r/connectivity")
env = R2REnv(R2RDataset.load("../shared/data/r2r", split="val_seen"), graphs, features=None, batch_size=8)
obs = env.reset(); obs = env.step([ob["teacher"] for ob in obs])
```
See each module's docstring for its API: `data`, `graphs`, `geometry`, `features`, `env`.
"""

import importlib.util as _importlib_util

_MISSING = [name for name in ("datasets", "scipy", "networkx") if _importlib_util.find_spec(name) is None]
if _MISSING:
    raise ImportError(
        f"hf_dgm.vln (R2R data, graphs, environment, the vln-navigation / vln-instruction pipelines) needs the `vln` "
        f"extra; missing: {', '.join(_MISSING)}. Install it with `pip install -e \".[vln]\"` in the hf-dgm checkout."
    )

from hf_dgm.vln.data import R2RDataset  # noqa: E402
from hf_dgm.vln.env import STOP, R2REnv  # noqa: E402
from hf_dgm.vln.features import HDF5FeatureStore, TSVFeatureStore, load_feature_store  # noqa: E402
from hf_dgm.vln.geometry import angle_feature, view_angle_features  # noqa: E402
from hf_dgm.vln.graphs import NavGraphs  # noqa: E402


__all__ = [
    "R2RDataset",
    "NavGraphs",
    "R2REnv",
    "STOP",
    "TSVFeatureStore",
    "HDF5FeatureStore",
    "load_feature_store",
    "angle_feature",
    "view_angle_features",
]
