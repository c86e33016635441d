import math
from pathlib import Path

import numpy as np
import pytest

import vln_tiny
from hf_dgm.vln import STOP, NavGraphs, R2RDataset, R2REnv, TSVFeatureStore, angle_feature, load_feature_store
from hf_dgm.vln import geometry
from hf_dgm.vln.features import write_tsv_features


from shared_data import SHARED_DATA  # noqa: E402

R2R_DIR = SHARED_DATA / "r2r"
HALF_PI = math.pi / 2


@pytest.fixture()
def tiny(tmp_path):
    root = vln_tiny.write_data(tmp_path)
    return root, NavGraphs.from_dir(root / "connectivity")


def test_graph_as_the_reference_builds_it(tiny):
    _, graphs = tiny
    g = graphs.graph(vln_tiny.SCAN)
    assert sorted(g.nodes) == ["A", "B", "C", "D"]  # X excluded, F has no edge
    assert sorted(map(sorted, g.edges)) == [["A", "B"], ["A", "D"], ["B", "C"]]
    assert g["A"]["B"]["weight"] == pytest.approx(vln_tiny.AB)
    assert graphs.distance(vln_tiny.SCAN, "D", "C") == pytest.approx(vln_tiny.AD + vln_tiny.AB + vln_tiny.BC)
    assert graphs.shortest_path(vln_tiny.SCAN, "D", "C") == ["D", "A", "B", "C"]
    table = graphs.scan_table(vln_tiny.SCAN)
    i, j = table.index["D"], table.index["C"]
    assert table.viewpoints[table.next_hop[i, j]] == "A"
    assert table.distances[i, j] == pytest.approx(graphs.distance(vln_tiny.SCAN, "D", "C"))
    with pytest.raises(ValueError, match="unknown scan"):
        graphs.graph("nope")


def test_dataset_one_item_per_instruction(tiny):
    root, _ = tiny
    ds = R2RDataset.load(root, split="val_seen")
    assert len(ds) == 7
    assert ds["instr_id"] == ["7_0", "7_1", "7_2", "8_0", "8_1", "8_2", "8_3"]
    assert ds[3]["path"] == ["D", "A"] and ds[3]["instruction"] == "walk forward"
    test = R2RDataset.load(root, split="test")
    assert math.isnan(test[0]["distance"]) and not R2RDataset.has_goals("test")
    with pytest.raises(ValueError, match="not found"):
        R2RDataset.load(root, split="val_unseen")


def test_discretize_and_angle_feature():
    assert geometry.discretize(0.0, 0.0) == (0.0, 0.0, 12)
    h, e, v = geometry.discretize(-math.radians(31), math.radians(20))
    assert v == 24 + 11 and h == pytest.approx(math.radians(330)) and e == pytest.approx(math.radians(30))
    feat = angle_feature(HALF_PI, 0.0, 8)
    np.testing.assert_allclose(feat, [1, 0, 0, 1, 1, 0, 0, 1], atol=1e-7)
    views = geometry.view_angle_features(15, 4)
    np.testing.assert_allclose(views[12], [math.sin(-HALF_PI), math.cos(-HALF_PI), 0, 1], atol=1e-7)
    rel = geometry.view_angle_features(27, 4, relative_elevation=True)
    np.testing.assert_allclose(rel[27], [0, 1, 0, 1], atol=1e-7)
    np.testing.assert_allclose(rel[3, 2], math.sin(-math.radians(60)), atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 4"):
        angle_feature(0.0, 0.0, 6)


def test_candidates_as_the_simulator_offers_them(tiny):
    root, graphs = tiny
    env = R2REnv(R2RDataset.load(root, "val_seen"), graphs, batch_size=2, angle_feat_size=4)
    obs = env.reset(indices=[0, 3])
    a = obs[0]
    assert a["viewpoint"] == "A" and a["view_index"] == 12 and a["heading"] == 0.0
    # B (straight ahead, level) first appears in view 0 (visible within 40°), D (behind) in view 5
    assert a["candidate_viewpoints"] == ["B", "D"]
    assert list(a["candidate_view_index"]) == [12, 18]
    assert a["candidates"][1]["heading"] == pytest.approx(math.pi)
    assert a["candidates"][0]["distance"] == pytest.approx(vln_tiny.AB)
    np.testing.assert_allclose(a["candidate_angle_features"][1], [0, -1, 0, 1], atol=1e-6)
    assert a["teacher"] == 0 and a["distance"] == pytest.approx(vln_tiny.AB + vln_tiny.BC)
    assert obs[1]["viewpoint"] == "D" and obs[1]["teacher"] == obs[1]["candidate_viewpoints"].index("A")
    obs = env.step([0, obs[1]["teacher"]])
    b = obs[0]
    assert b["viewpoint"] == "B" and b["view_index"] == 12
    # C is at heading 90°, elevation 45°: nearest view is 27 (90°, +30°)
    k = b["candidate_viewpoints"].index("C")
    assert b["candidate_view_index"][k] == 27
    assert b["candidates"][k]["heading"] == pytest.approx(HALF_PI)
    assert b["candidates"][k]["elevation"] == pytest.approx(math.pi / 4)
    assert b["teacher"] == k
    assert obs[1]["viewpoint"] == "A" and obs[1]["teacher"] == STOP and obs[1]["distance"] == 0.0
    obs = env.step([k, STOP])
    assert obs[0]["viewpoint"] == "C" and obs[0]["view_index"] == 27 and obs[0]["elevation"] == pytest.approx(math.pi / 6)
    assert obs[0]["teacher"] == STOP and obs[1]["ended"]
    obs = env.step([STOP, 0])  # actions of ended episodes are ignored
    assert obs[1]["viewpoint"] == "A"
    results = {r["instr_id"]: r["trajectory"] for r in env.results()}
    assert [e[0] for e in results["7_0"]] == ["A", "B", "C"]
    assert [e[0] for e in results["8_0"]] == ["D", "A"]
    with pytest.raises(ValueError, match="not a candidate index"):
        env.reset([0, 1])
        env.step([5, 0])


def test_relative_elevation_and_turned_start(tiny):
    root, graphs = tiny
    items = [{"instr_id": "x_0", "scan": vln_tiny.SCAN, "path": ["B", "C"], "heading": HALF_PI, "elevation": 0.5}]
    env = R2REnv(items, graphs, batch_size=1, angle_feat_size=4, relative_elevation=True)
    ob = env.reset()[0]
    assert ob["view_index"] == 27
    k = ob["candidate_viewpoints"].index("C")
    assert ob["candidates"][k]["heading"] == pytest.approx(0.0, abs=1e-9)
    assert ob["candidates"][k]["elevation"] == pytest.approx(math.pi / 4 - math.pi / 6)
    k_a = ob["candidate_viewpoints"].index("A")
    assert ob["candidates"][k_a]["heading"] == pytest.approx(math.pi - HALF_PI)


def test_navigable_locations_and_low_level_actions(tiny):
    _, graphs = tiny
    items = [{"instr_id": "y_0", "scan": vln_tiny.SCAN, "path": ["A"], "heading": 0.0}]
    env = R2REnv(items, graphs, batch_size=1)
    ob = env.reset()[0]
    assert ob["teacher"] is None and ob["distance"] is None
    assert env.navigable_locations(0) == ["A", "B"]
    for _ in range(6):
        env.step_low_level([(0, 1, 0)])
    assert env.slots[0].heading == pytest.approx(math.pi)
    assert env.navigable_locations(0) == ["A", "D"]
    ob = env.step_low_level([(1, 0, 0)])[0]
    assert ob["viewpoint"] == "D"


def test_feature_stores(tiny, tmp_path):
    root, graphs = tiny
    rng = np.random.default_rng(0)
    feats = {(vln_tiny.SCAN, vp): rng.standard_normal((36, 2048)).astype(np.float32) for vp in "ABCD"}
    tsv = tmp_path / "feats.tsv"
    write_tsv_features(tsv, feats)
    store = load_feature_store(tsv)
    assert isinstance(store, TSVFeatureStore) and len(store) == 4
    np.testing.assert_array_equal(store.get(vln_tiny.SCAN, "B"), feats[(vln_tiny.SCAN, "B")])
    with pytest.raises(ValueError, match="no features"):
        store.get(vln_tiny.SCAN, "X")
    env = R2REnv(R2RDataset.load(root, "val_seen"), graphs, features=store, batch_size=1, angle_feat_size=128)
    ob = env.reset()[0]
    assert ob["candidate_features"].shape == (2, 2048 + 128)
    np.testing.assert_array_equal(ob["candidate_features"][0, :2048], feats[(vln_tiny.SCAN, "A")][12])
    np.testing.assert_array_equal(ob["view_features"], feats[(vln_tiny.SCAN, "A")])

    import h5py  # the `vln` extra, part of the test set-up: an HDF5 feature store is always tested, never skipped
    h5 = tmp_path / "feats.h5"
    with h5py.File(h5, "w") as f:
        for (scan, vp), array in feats.items():
            f[f"{scan}_{vp}"] = array[:, :16]
    store = load_feature_store(h5)
    assert store.feature_size == 16
    np.testing.assert_array_equal(store.get(vln_tiny.SCAN, "C"), feats[(vln_tiny.SCAN, "C")][:, :16])
    env = R2REnv(R2RDataset.load(root, "val_seen"), graphs, features=store, batch_size=1, angle_feat_size=4)
    assert env.reset()[0]["candidate_features"].shape == (2, 20)


def test_unknown_viewpoint_is_named(tiny):
    _, graphs = tiny
    env = R2REnv([{"instr_id": "z_1", "scan": vln_tiny.SCAN, "path": ["A", "Q"], "heading": 0.0}], graphs)
    with pytest.raises(ValueError, match="z_1.*'Q'"):
        env.reset()


@pytest.mark.skipif(not (R2R_DIR / "connectivity").is_dir(), reason="needs ../shared/data/r2r")
def test_shortest_teacher_reaches_every_goal_on_real_data():
    graphs = NavGraphs.from_dir(R2R_DIR / "connectivity")
    assert len(graphs.scans) == 90
    ds = R2RDataset.load(R2R_DIR, "val_seen").select(range(48))
    env = R2REnv(ds, graphs, batch_size=16)
    for _ in range(env.num_batches):
        obs = env.reset()
        for _ in range(20):
            obs = env.step([STOP if ob["teacher"] is None else ob["teacher"] for ob in obs])
        for ob in obs:
            assert ob["ended"] and ob["viewpoint"] == ob["gt_path"][-1]
    assert len(env.results()) == 48
