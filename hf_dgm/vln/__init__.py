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

from hf_dgm.vln.data import R2RDataset
from hf_dgm.vln.env import STOP, R2REnv
from hf_dgm.vln.features import HDF5FeatureStore, TSVFeatureStore, load_feature_store
from hf_dgm.vln.geometry import angle_feature, view_angle_features
from hf_dgm.vln.graphs import NavGraphs


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
