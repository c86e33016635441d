"""FID / KID / IS: the math against hand-computed values, the FID Inception architecture, and the `evaluate`
modules loaded offline from their folders."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

import hf_dgm.metrics

from hf_dgm.metrics.image_features import (
    FIDInceptionV3,
    compute_fid,
    compute_inception_score,
    compute_kid,
    convert_fid_inception_to_safetensors,
    extract_features,
    feature_extractor_description,
    feature_statistics,
    file_sha256,
    frechet_distance,
    frechet_distance_from_features,
    images_to_tensor,
    inception_score,
    kernel_inception_distance,
    load_fid_inception,
    mmd2_unbiased,
    polynomial_kernel,
    precision_recall,
    resize_bilinear_tf1,
    tensors_sha256,
)

METRICS = Path(__file__).resolve().parents[1] / "hf_dgm" / "metrics"


def _random_spd(d, rng):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d) * 0.1


# ------------------------------------------------------------------------------------------------ Fréchet distance


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)  # 5 + (1 + 1 + 4)
    assert expected == pytest.approx(11.0)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_general_covariances_closed_form():
    rng = np.random.default_rng(0)
    d = 6
    s1, s2 = _random_spd(d, rng), _random_spd(d, rng)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Independent closed form: Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) via symmetric eigendecompositions.
    w, v = np.linalg.eigh(s1)
    s1_half = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(s1_half @ s2 @ s1_half)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(inner))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_from_features_uses_unbiased_covariance():
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(50, 4)), rng.normal(loc=0.5, size=(60, 4))
    mu, sigma = feature_statistics(f1)
    np.testing.assert_allclose(sigma, np.cov(f1.T, ddof=1))
    mu2, sigma2 = f2.mean(0), np.cov(f2.T, ddof=1)
    covmean = linalg.sqrtm(sigma @ sigma2).real
    expected = np.sum((mu - mu2) ** 2) + np.trace(sigma + sigma2 - 2 * covmean)
    assert frechet_distance_from_features(f1, torch.from_numpy(f2)) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_singular_covariances_use_eps_offset(monkeypatch):
    import hf_dgm.metrics.feature_statistics as feature_statistics_module

    real_trace = feature_statistics_module._trace_sqrt_product
    calls = []

    def flaky_trace(a, b):  # the first (un-offset) product "fails" as scipy's sqrtm does on a defective product
        calls.append((a.copy(), b.copy()))
        if len(calls) == 1:
            return float("nan")
        return real_trace(a, b)

    monkeypatch.setattr(feature_statistics_module, "_trace_sqrt_product", flaky_trace)
    s1, s2 = np.diag([1.0, 0.0]), np.diag([0.0, 4.0])
    with pytest.warns(UserWarning, match="singular"):
        value = frechet_distance(np.zeros(2), s1, np.ones(2), s2, eps=1e-6)
    np.testing.assert_allclose(calls[1][0] @ calls[1][1], (s1 + 1e-6 * np.eye(2)) @ (s2 + 1e-6 * np.eye(2)))
    # pytorch-fid: the traces use the original covariances, only the square root uses the offset ones.
    expected = 2.0 + 5.0 - 2 * (np.sqrt((1 + 1e-6) * 1e-6) + np.sqrt(1e-6 * (4 + 1e-6)))
    assert value == pytest.approx(expected, rel=1e-9)


def test_trace_sqrt_product_matches_scipy_sqrtm():
    from hf_dgm.metrics.feature_statistics import _trace_sqrt_product

    rng = np.random.RandomState(3)
    a, b = np.cov(rng.randn(40, 6), rowvar=False), np.cov(rng.randn(40, 6) * 2 + 1, rowvar=False)
    assert _trace_sqrt_product(a, b) == pytest.approx(np.trace(linalg.sqrtm(a @ b)).real, rel=1e-10)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="Covariances"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(np.zeros((1, 4)))


# ------------------------------------------------------------------------------------------------------------ KID


def _mmd2_loop(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_unbiased_estimator_equals_direct_loop():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 5)), rng.normal(loc=0.3, size=(12, 5))
    expected = _mmd2_loop(x, y)
    kxx, kxy, kyy = polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y)
    assert mmd2_unbiased(kxx, kxy, kyy) == pytest.approx(expected, rel=1e-10)
    # One subset holding every sample is the full-set estimate (the statistic is permutation invariant).
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=12)
    assert mean == pytest.approx(expected, rel=1e-10) and std == 0.0


def test_kid_subsets_follow_seeded_sampling():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(30, 4))
    mean, std = kernel_inception_distance(x, y, num_subsets=5, subset_size=10, seed=7)
    draw = np.random.RandomState(7)
    values = []
    for _ in range(5):
        xs = x[draw.choice(40, 10, replace=False)]
        ys = y[draw.choice(30, 10, replace=False)]
        values.append(_mmd2_loop(xs, ys))
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)
    # Same distribution -> KID near 0; shifted -> clearly positive.
    near = kernel_inception_distance(x, rng.normal(size=(40, 4)), num_subsets=20, subset_size=30)[0]
    far = kernel_inception_distance(x, rng.normal(loc=2.0, size=(40, 4)), num_subsets=20, subset_size=30)[0]
    assert far > 10 * abs(near)


def test_kid_rejects_too_large_subsets():
    with pytest.raises(ValueError, match="subset_size=1000"):
        kernel_inception_distance(np.zeros((50, 3)), np.zeros((50, 3)))


# ------------------------------------------------------------------------------------------------------------- IS


def test_inception_score_known_sets():
    one_hot = np.eye(10)[np.arange(200) % 10]
    assert inception_score(probabilities=one_hot, splits=1)[0] == pytest.approx(10.0)
    # Unshuffled, each of 2 splits holds 10 of every class -> exactly 10 in both splits.
    mean, std = inception_score(probabilities=one_hot, splits=2, shuffle=False)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-12)
    identical = np.tile(np.array([[0.7, 0.2, 0.1]]), (30, 1))
    assert inception_score(probabilities=identical, splits=3)[0] == pytest.approx(1.0)
    # Half the samples certain of class 0, half uniform over 2 classes: p(y) = [3/4, 1/4];
    # KL terms: log(1/(3/4)) for the first half, 1/2 log((1/2)/(3/4)) + 1/2 log((1/2)/(1/4)) for the second.
    probs = np.array([[1.0, 0.0]] * 4 + [[0.5, 0.5]] * 4)
    expected = np.exp(0.5 * np.log(4 / 3) + 0.5 * (0.5 * np.log(2 / 3) + 0.5 * np.log(2)))
    assert inception_score(probabilities=probs, splits=1)[0] == pytest.approx(expected)


def test_inception_score_from_logits_matches_direct_computation():
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=3.0, size=(100, 7))
    mean, std = inception_score(logits=logits, splits=4, seed=11)
    perm = np.random.RandomState(11).permutation(100)
    p = np.exp(logits[perm]) / np.exp(logits[perm]).sum(1, keepdims=True)
    scores = []
    for chunk in np.array_split(p, 4):
        q = chunk.mean(0)
        scores.append(np.exp(np.mean([np.sum(r * np.log(r / q)) for r in chunk])))
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


# ------------------------------------------------------------------------------------------ FID Inception network


def test_fid_inception_architecture_and_weight_loading(tmp_path):
    torch.manual_seed(0)
    model = FIDInceptionV3()
    # torchvision's Inception3 without the auxiliary head has 23,834,568 parameters with 1000 classes; the FID
    # graph has 1008 classes (+ 8 x 2049).
    assert sum(p.numel() for p in model.parameters()) == 23_834_568 + 8 * 2049
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, pth)
    # Random weights under the standard name: the hash check refuses them, naming the expected file and hash ...
    with pytest.raises(ValueError, match=r"pt_inception-2015-12-05-6726825d\.pth \(SHA-256 starting with 6726825d"):
        load_fid_inception(pth)
    with pytest.raises(ValueError, match="allow_nonstandard_weights=True"):
        convert_fid_inception_to_safetensors(pth, tmp_path / "refused.safetensors")
    # ... and the explicit opt-out loads them with a warning, recording it on the model.
    with pytest.warns(UserWarning, match="non-standard FID Inception weights"):
        loaded = load_fid_inception(pth, allow_nonstandard_weights=True)
    assert loaded.standard_weights is False and loaded.weights_sha256 == file_sha256(pth)
    assert "NON-STANDARD" in feature_extractor_description(loaded)
    st = tmp_path / "fid.safetensors"
    convert_fid_inception_to_safetensors(pth, st, allow_nonstandard_weights=True)
    with pytest.raises(ValueError, match="converted from a file with SHA-256"):
        load_fid_inception(st)
    with pytest.warns(UserWarning):
        loaded_st = load_fid_inception(st, preprocessing="torch-fidelity", allow_nonstandard_weights=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out = loaded(x)
        out_ref = model(x)
    assert out["pool3"].shape == (1, 2048) and out["logits_unbiased"].shape == (1, 1008)
    torch.testing.assert_close(out["pool3"], out_ref["pool3"])
    torch.testing.assert_close(out["logits_unbiased"], out_ref["pool3"] @ model.fc.weight.T)
    assert torch.equal(loaded_st.fc.weight, model.fc.weight)
    bad = dict(state)
    bad.pop("Mixed_7c.branch_pool.conv.weight")
    with pytest.raises(ValueError, match="Mixed_7c.branch_pool.conv.weight"):
        FIDInceptionV3().load_weights(bad)


def test_tf1_resize_and_input_conversion():
    x = torch.tensor([[[[0.0, 2.0]]]])  # (1, 1, 1, 2)
    out = resize_bilinear_tf1(x, (1, 4))  # samples input coords 0, 0.5, 1, 1.5 (clamped)
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 1.0, 2.0, 2.0]]]]))
    u8 = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    u8[0, 0, 0] = 0
    t = images_to_tensor(u8)
    assert t.shape == (2, 3, 4, 4) and t.max() == 1.0 and t[0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]


def _tf1_resize_reference(x, size):
    """torch-fidelity 0.4.0's `interpolate_bilinear_2d_like_tensorflow1x(align_corners=False, method="slow")`
    (TF1's `resize_bilinear` kernel arithmetic), restated here so the test needs no torch-fidelity."""
    scale_y, scale_x = x.shape[2] / size[0], x.shape[3] / size[1]
    gx = torch.arange(0, size[1], 1, dtype=x.dtype) * torch.tensor(scale_x, dtype=torch.float32)
    gx_lo = gx.long()
    gx_hi = (gx_lo + 1).clamp_max(x.shape[3] - 1)
    dx = gx - gx_lo.float()
    gy = torch.arange(0, size[0], 1, dtype=x.dtype) * torch.tensor(scale_y, dtype=torch.float32)
    gy_lo = gy.long()
    gy_hi = (gy_lo + 1).clamp_max(x.shape[2] - 1)
    dy = gy - gy_lo.float()
    in_00 = x[:, :, gy_lo, :][:, :, :, gx_lo]
    in_01 = x[:, :, gy_lo, :][:, :, :, gx_hi]
    in_10 = x[:, :, gy_hi, :][:, :, :, gx_lo]
    in_11 = x[:, :, gy_hi, :][:, :, :, gx_hi]
    in_0 = in_00 + (in_01 - in_00) * dx.view(1, 1, 1, size[1])
    in_1 = in_10 + (in_11 - in_10) * dx.view(1, 1, 1, size[1])
    return in_0 + (in_1 - in_0) * dy.view(1, 1, size[0], 1)


@pytest.mark.parametrize("shape, size", [((2, 3, 8, 8), (299, 299)), ((1, 3, 32, 32), (299, 299)),
                                         ((1, 3, 7, 13), (11, 5)), ((1, 3, 300, 301), (299, 299))])  # fmt: skip
def test_tf1_resize_is_bit_identical_to_tf1_arithmetic(shape, size):
    """Issue 32: the resize must reproduce TF1's (and torch-fidelity's) float32 arithmetic bit for bit — a 1-ulp
    difference in the 299x299 input grows to ~1e-4 relative in pool3 through the Inception and moved FID by 4e-6.
    The earlier weighted-sum form ((1 - w) a + w b, float64 weights) was 1 ulp off on 62-99 % of these values."""
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    x = u8.float()
    out = resize_bilinear_tf1(x, size)
    assert out.shape == (*shape[:2], *size) and out.dtype == torch.float32
    assert torch.equal(out, _tf1_resize_reference(x, size))
    # and the whole "torch-fidelity" preprocessing path, from [-1, 1] images: (resize(x) - 128) / 128
    model = FIDInceptionV3(preprocessing="torch-fidelity")
    if size == (299, 299):
        net_in = model.preprocess(images_to_tensor(u8.numpy()))
        assert torch.equal(net_in, (_tf1_resize_reference(x, size) - 128) / 128)


# ------------------------------------------------------------------------------------------- evaluate modules


class _TinyExtractor(torch.nn.Module):
    """A small fixed random conv net standing in for Inception (numbers not comparable to published FID)."""

    def __init__(self, dim=16):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, dim, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


def test_evaluate_modules_load_offline_and_match_functional_api(monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    g = torch.Generator().manual_seed(0)
    real = torch.rand(24, 3, 8, 8, generator=g) * 2 - 1
    fake = (torch.rand(24, 3, 8, 8, generator=g) * 2 - 1) * 0.5
    extractor = _TinyExtractor()

    fid = hf_dgm.metrics.load("fid")
    out = fid.compute(predictions=fake.numpy(), references=real.numpy(), feature_extractor=extractor, batch_size=10)
    expected = compute_fid(real, fake, feature_extractor=extractor)
    assert out["fid"] == pytest.approx(expected, rel=1e-4) and out["fid"] > 0

    kid = hf_dgm.metrics.load("kid")
    out = kid.compute(
        predictions=fake.numpy(), references=real.numpy(), feature_extractor=extractor, subset_size=20, num_subsets=5
    )
    exp_mean, exp_std = compute_kid(real, fake, feature_extractor=extractor, subset_size=20, num_subsets=5)
    assert out["kid_mean"] == pytest.approx(exp_mean, rel=1e-4) and out["kid_std"] == pytest.approx(exp_std, rel=1e-3)

    # Precomputed features go through the same modules.
    feats_real = extract_features(real, extractor)
    feats_fake = extract_features(fake, extractor)
    out = fid.compute(predictions=feats_fake, references=feats_real)
    assert out["fid"] == pytest.approx(expected, rel=1e-4)

    isc = hf_dgm.metrics.load("inception_score")
    out = isc.compute(predictions=np.eye(5)[np.arange(50) % 5], inputs_are="probabilities", splits=1)
    assert out["inception_score_mean"] == pytest.approx(5.0, rel=1e-5)
    out = isc.compute(predictions=fake.numpy(), feature_extractor=extractor, splits=2)
    exp_mean, _ = compute_inception_score(fake, feature_extractor=extractor, splits=2)
    assert out["inception_score_mean"] == pytest.approx(exp_mean, rel=1e-4) and out["inception_score_mean"] >= 1.0

    with pytest.raises(ValueError, match="no `feature_extractor`"):
        fid.compute(predictions=fake.numpy(), references=real.numpy())


def test_metric_files_have_one_import_per_line():
    for path in METRICS.glob("*/*.py"):
        for line in path.read_text().splitlines():
            if line.startswith("import "):
                assert "," not in line, f"{path}: evaluate misreads multi-imports: {line}"


# Reference FIDs computed with pytorch-fid's algorithm (`scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)`, the code
# this package used before moving to an eigenvalue trace), on fixed random features.
def _ref_features(seed, n, d, shift=0.0, scale=1.0):
    return np.random.RandomState(seed).randn(n, d) * scale + shift


FID_REFERENCES = {
    "regular": ((0, 200, 16), (1, 200, 16, 0.3, 1.5), 7.875988600248178),
    "wide": ((2, 100, 64), (3, 120, 64, -0.2, 0.7), 22.696823447586368),
    # 10 and 12 samples in 32 dimensions: singular covariances, where sqrtm's Schur method itself loses ~1e-9
    # relative accuracy (the eigenvalue trace differs from it by 2e-9 relative)
    "rank_deficient": ((4, 10, 32), (5, 12, 32, 0.1), 40.36862743354259),
    "identical": ((6, 50, 8), (6, 50, 8), 1.2434497875801753e-14),
}


@pytest.mark.parametrize("case", list(FID_REFERENCES))
def test_fid_matches_stored_pytorch_fid_values(case):
    import warnings

    from hf_dgm.metrics.image_features import frechet_distance_from_features

    a, b, expected = FID_REFERENCES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated scipy call on the way
        value = frechet_distance_from_features(_ref_features(*a), _ref_features(*b))
    assert value == pytest.approx(expected, rel=1e-8 if case == "rank_deficient" else 1e-10, abs=1e-12)


def _torch_fidelity_is(logits, splits=10, seed=2020):
    """torch-fidelity's `isc` cut: split i = rows [i*N//splits, (i+1)*N//splits) after the seeded shuffle."""
    p = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()
    p = p[np.random.RandomState(seed).permutation(p.shape[0])]
    n, scores = p.shape[0], []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        q = part.mean(axis=0, keepdims=True)
        scores.append(np.exp((part * (np.log(part) - np.log(q))).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


@pytest.mark.parametrize("n", [100, 103, 109, 27])
def test_inception_score_splits_cut_like_torch_fidelity(n):
    from hf_dgm.metrics.image_features import inception_score

    logits = np.random.RandomState(7).randn(n, 10) * 2
    assert inception_score(logits=logits) == pytest.approx(_torch_fidelity_is(logits), rel=1e-12)
    if n == 100:  # value recorded before the change (np.array_split and this cut agree when 10 divides N)
        assert inception_score(logits=logits) == pytest.approx((2.212731745280928, 0.24041370595661285), rel=1e-12)


def test_kid_subset_loop_shows_progress(capsys):
    from hf_dgm.metrics.image_features import kernel_inception_distance

    a, b = _ref_features(0, 20, 4), _ref_features(1, 20, 4)
    quiet = kernel_inception_distance(a, b, num_subsets=3, subset_size=5)
    shown = kernel_inception_distance(a, b, num_subsets=3, subset_size=5, progress=True)
    assert quiet == shown
    assert "KID subsets" in capsys.readouterr().err


def test_precision_recall_by_hand():
    """1-D sets, k = 1: each point's ball reaches its nearest neighbour in its own set."""
    real = np.array([[0.0], [1.0], [2.0], [10.0]])  # radii 1, 1, 1, 8
    # fakes near 0-2 (radii 1, 1, 1): all inside the real balls; real 10 is 7.5 from the nearest fake
    assert precision_recall(real, np.array([[0.5], [1.5], [2.5]]), k=1) == (1.0, 0.75)
    # a fake at 20 is 10 from real 10 (radius 8): outside; its own radius (18.5) takes real 10 in
    assert precision_recall(real, np.array([[0.5], [1.5], [20.0]]), k=1) == pytest.approx((2 / 3, 1.0))
    rng = np.random.default_rng(0)
    same = rng.normal(size=(50, 4))
    assert precision_recall(same, same) == (1.0, 1.0)
    far = precision_recall(same, same + 100.0)
    assert far == (0.0, 0.0)
    with pytest.raises(ValueError, match="dimensions differ"):
        precision_recall(same, same[:, :2])
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(same, same[:3], k=3)


def test_fid_weights_hash_check(tmp_path, monkeypatch):
    """A file whose SHA-256 starts with the name's 6726825d loads as standard; a safetensors conversion of it too;
    a tampered conversion is refused (checked here by pretending the random file is the standard one)."""
    import hf_dgm.metrics.inception_weights as inception_weights

    torch.manual_seed(1)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    pth = tmp_path / "weights.pth"
    torch.save(state, pth)
    monkeypatch.setattr(inception_weights, "FID_WEIGHTS_SHA256_PREFIX", file_sha256(pth)[:8])
    model = load_fid_inception(pth)
    assert model.standard_weights and feature_extractor_description(model).startswith("fid-inception-2015-12-05")
    st = tmp_path / "w.safetensors"
    convert_fid_inception_to_safetensors(pth, st)
    assert load_fid_inception(st).standard_weights
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(st), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(st))
    assert metadata["tensors_sha256"] == tensors_sha256(tensors)
    tensors["fc.bias"] = tensors["fc.bias"] + 1
    save_file(tensors, str(st), metadata=metadata)
    with pytest.raises(ValueError, match="its tensors hash to"):
        load_fid_inception(st)


def test_evaluate_modules_record_the_weights(tmp_path):
    """The `evaluate` modules refuse non-standard weights unless allowed, and then say so in their output."""
    torch.manual_seed(2)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, pth)
    isc = hf_dgm.metrics.load("inception_score")
    images = (torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1).numpy()
    with pytest.raises(ValueError, match="6726825d"):
        isc.compute(predictions=images, feature_extractor=str(pth), splits=2)
    with pytest.warns(UserWarning):
        out = isc.compute(predictions=images, feature_extractor=str(pth), splits=2, allow_nonstandard_weights=True)
    assert "NON-STANDARD" in out["feature_extractor"] and out["inception_score_mean"] >= 1.0


def test_metrics_load_from_any_directory(tmp_path, monkeypatch):
    """`hf_dgm.metrics.load` resolves the packaged folder, so it works outside the repository root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert {"fid", "kid", "inception_score", "iw_nll"} <= set(hf_dgm.metrics.available())
    fid = hf_dgm.metrics.load("fid")
    rng = np.random.default_rng(0)
    out = fid.compute(predictions=rng.normal(size=(50, 4)), references=rng.normal(size=(50, 4)))
    assert out["feature_extractor"] == "precomputed features" and out["fid"] >= 0
    with pytest.raises(ValueError, match="available: .*fid.*kid"):
        hf_dgm.metrics.load("fidd")
