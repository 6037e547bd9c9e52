"""Federated learning helpers: partitions, aggregation, FedProx, compression, privacy, the batched simulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learnstrat_helpers import federated as fl


def toy_labels(n=1000, classes=10, seed=0):
    return np.random.default_rng(seed).integers(0, classes, size=n)


def assert_exact_cover(parts, n):
    flat = np.concatenate(parts)
    assert len(flat) == n, "a sample was lost or duplicated"
    assert np.array_equal(np.sort(flat), np.arange(n))


# ---------------------------------------------------------------------------------------------- partitions
def test_iid_sizes_and_cover():
    parts = fl.partition_iid(1003, 10, seed=1)
    assert sorted(len(p) for p in parts) == [100] * 7 + [101] * 3
    assert_exact_cover(parts, 1003)
    fl.check_partitions(parts, 1003)


def test_shards_give_few_classes_and_cover():
    labels = np.repeat(np.arange(10), 100)
    parts = fl.partition_shards(labels, 20, shards_per_client=2, seed=0)
    assert [len(p) for p in parts] == [50] * 20
    assert_exact_cover(parts, 1000)
    assert max(len(np.unique(labels[p])) for p in parts) <= 2


def test_dirichlet_cover_and_label_skew_for_a_fixed_seed():
    labels = toy_labels(5000)
    for alpha in (100.0, 1.0, 0.1):
        parts = fl.partition_dirichlet(labels, 20, alpha, seed=3)
        assert len(parts) == 20 and min(len(p) for p in parts) >= 1
        assert_exact_cover(parts, 5000)
    # Fixed seed: same partition twice; label distributions concentrated for small alpha, flat for large.
    a = fl.partition_dirichlet(labels, 20, 0.1, seed=3)
    b = fl.partition_dirichlet(labels, 20, 0.1, seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))

    def top_class_share(alpha):
        hist = fl.label_histogram(labels, fl.partition_dirichlet(labels, 20, alpha, seed=3), 10)
        return float(np.mean(hist.max(1) / hist.sum(1)))

    assert top_class_share(0.1) > 0.5 > 0.2 > top_class_share(100.0)
    hist = fl.label_histogram(labels, a, 10)
    assert hist.shape == (20, 10) and hist.sum() == 5000
    assert np.array_equal(hist.sum(0), np.bincount(labels, minlength=10))


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan")])
def test_dirichlet_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        fl.partition_dirichlet(toy_labels(), 5, alpha)


def test_client_with_no_data_is_an_error():
    with pytest.raises(ValueError, match="client 1 has no data"):
        fl.check_partitions([np.arange(5), np.array([], dtype=int)], 5)
    with pytest.raises(ValueError, match="no data"):
        fl.train(fl.mlp(3, 2), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="more than one client"):
        fl.check_partitions([np.arange(5), np.array([4])], 5)


# ---------------------------------------------------------------------------------------------- aggregation
def test_weighted_average_by_hand():
    a = [np.array([1.0, 2.0]), np.array([[0.0]])]
    b = [np.array([4.0, 8.0]), np.array([[3.0]])]
    avg = fl.weighted_average([a, b], [1, 2])   # weights 1/3 and 2/3
    np.testing.assert_allclose(avg[0], [3.0, 6.0])
    np.testing.assert_allclose(avg[1], [[2.0]])
    with pytest.raises(ValueError, match="count"):
        fl.weighted_average([a, b], [1])
    with pytest.raises(ValueError, match="NaN"):
        fl.weighted_average([a, [np.array([np.nan, 1.0]), np.array([[0.0]])]], [1, 1])


def test_get_set_parameters_round_trip_and_shape_check():
    torch.manual_seed(0)
    model, other = fl.mlp(4, 3, hidden=5), fl.mlp(4, 3, hidden=5)
    fl.set_parameters(other, fl.get_parameters(model))
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="shape"):
        fl.set_parameters(other, [np.zeros((1, 1))] * 4)
    bad = fl.get_parameters(model)
    bad[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fl.set_parameters(other, bad)


def test_fedprox_term_by_hand():
    p = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    g = [torch.tensor([0.0, 0.0]), torch.tensor([1.0])]
    # ||p - g||^2 = 1 + 4 + 4 = 9; mu / 2 * 9 with mu = 0.5
    assert fl.fedprox_term(p, g, 0.5).item() == pytest.approx(2.25)
    assert fl.fedprox_term(p, g, 0.0).item() == 0.0
    with pytest.raises(ValueError, match="mu"):
        fl.fedprox_term(p, g, -1.0)


def test_fedprox_keeps_the_client_closer_to_the_global_model():
    torch.manual_seed(0)
    x, y = torch.randn(200, 5), torch.randint(0, 2, (200,))
    start = fl.mlp(5, 2)
    distances = {}
    for mu in (0.0, 1.0):
        model = fl.set_parameters(fl.mlp(5, 2), fl.get_parameters(start))
        fl.train(model, x, y, epochs=5, lr=0.5, mu=mu)
        distances[mu] = sum(((p - q) ** 2).sum().item() for p, q in zip(model.parameters(), start.parameters()))
    assert distances[1.0] < distances[0.0]


# ---------------------------------------------------------------------------------------------- communication
def test_8bit_round_trip_error_bound():
    t = torch.randn(4, 300) * torch.tensor([[0.01], [1.0], [10.0], [100.0]])
    codes, low, step = fl.quantize_8bit(t)
    assert codes.dtype == torch.uint8
    error = (fl.dequantize_8bit(codes, low, step) - t).abs()
    assert (error <= step / 2 + 1e-6 * t.abs().max(1, keepdim=True).values).all()


def test_topk_keeps_the_largest_entries():
    t = torch.tensor([[0.1, -5.0, 0.2, 3.0], [1.0, 0.0, 0.0, -0.5]])
    kept = fl.topk_sparsify(t, 0.5)
    assert torch.equal(kept, torch.tensor([[0.0, -5.0, 0.0, 3.0], [1.0, 0.0, 0.0, -0.5]]))


def test_payload_bytes():
    shapes = [(10, 784), (10,)]
    assert fl.payload_bytes(shapes) == 4 * 7850
    assert fl.payload_bytes(shapes, "8bit") == 7850 + 16
    assert fl.payload_bytes(shapes, "topk", 0.1) == 8 * (784 + 1)
    with pytest.raises(ValueError, match="compression"):
        fl.payload_bytes(shapes, "zip")


# ---------------------------------------------------------------------------------------------- privacy
def test_clipping_bounds_each_clients_norm():
    scale = torch.tensor([0.01, 1.0, 10.0])
    updates = {"w": torch.randn(3, 4, 4) * scale.view(3, 1, 1), "b": torch.randn(3, 4) * scale.view(3, 1)}
    clipped = fl.clip_updates(updates, 1.0)
    norms = torch.sqrt(sum(u.reshape(3, -1).pow(2).sum(1) for u in clipped.values()))
    assert (norms <= 1.0 + 1e-5).all()
    torch.testing.assert_close(clipped["w"][0], updates["w"][0])   # a small update is left alone


def test_pairwise_masks_cancel_and_hide_each_update():
    rng = np.random.default_rng(0)
    updates = rng.normal(size=(5, 50))
    masks = fl.pairwise_masks(5, 50, seed=7)
    assert np.mod(masks.sum(0), fl.MODULUS).tolist() == [0] * 50
    masked = np.stack([fl.masked_update(u, m) for u, m in zip(updates, masks)])
    np.testing.assert_allclose(fl.secure_sum(masked), updates.sum(0), atol=5 * 2.0 ** -fl.FIXED_POINT_BITS)
    # One masked update alone says nothing useful: it is far from the update it hides.
    assert np.abs(fl.decode_fixed_point(masked[0]) - updates[0]).mean() > 1000
    with pytest.raises(ValueError, match="at least 2"):
        fl.pairwise_masks(1, 3)


# ---------------------------------------------------------------------------------------------- simulator
def toy_federation(n=600, d=20, clients=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, 3, generator=g)
    x = torch.randn(n, d, generator=g)
    y = (x @ w).argmax(1)
    return x, y, fl.partition_iid(n, clients, seed)


def test_simulator_learns_and_leaves_the_model_alone():
    x, y, parts = toy_federation()
    torch.manual_seed(0)
    model = fl.mlp(20, 3)
    before = [p.clone() for p in model.parameters()]
    hist = fl.simulate(model, x, y, parts, rounds=15, fraction=0.5, epochs=2, batch_size=16, lr=0.2,
                       test_data=(x, y), show_progress=False)
    assert hist.accuracy[-1] > 0.85 and hist.accuracy[-1] > hist.accuracy[0]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert hist.megabytes == sorted(hist.megabytes)
    assert hist.bytes_per_round[0] == 5 * 2 * fl.payload_bytes([(3, 20), (3,)])


def test_batched_clients_match_one_by_one_training():
    # One local step of full-batch gradient descent (FedSGD), vmapped over clients, equals doing it client by client.
    x, y, parts = toy_federation(n=90, clients=3)
    torch.manual_seed(0)
    model = fl.mlp(20, 3)
    hist = fl.simulate(model, x, y, parts, rounds=1, fraction=1.0, batch_size=None, lr=0.3, show_progress=False)
    sent, counts = [], []
    for part in parts:
        local = fl.set_parameters(fl.mlp(20, 3), fl.get_parameters(model))
        fl.train(local, x[part], y[part], epochs=1, batch_size=len(part), lr=0.3)
        sent.append(fl.get_parameters(local))
        counts.append(len(part))
    expected = fl.weighted_average(sent, counts)
    for got, want in zip(hist.parameters.values(), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_server_receives_only_parameter_tensors_never_data_rows():
    x, y, parts = toy_federation(d=3 * 1, n=300, clients=6)
    x = torch.cat([x, x], 1)   # 6 features: a weight matrix [3, 6] has rows as long as a data row
    torch.manual_seed(0)
    model = fl.mlp(6, 3)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    received = []
    fl.simulate(model, x, y, parts, rounds=3, fraction=0.5, epochs=1, batch_size=8, lr=0.1,
                on_receive=lambda updates, weights: received.append((updates, weights)), show_progress=False)
    assert len(received) == 3
    rows = {tuple(r.tolist()) for r in x}
    for updates, weights in received:
        assert set(updates) == set(shapes)                         # parameter names only
        assert all(tuple(u.shape[1:]) == shapes[k] for k, u in updates.items())
        assert len(weights) == 3 and all(u.shape[0] == 3 for u in updates.values())  # one per client, no rows
        for u in updates.values():
            flat = u.reshape(-1, u.shape[-1])
            assert not any(tuple(r.tolist()) in rows for r in flat)
    # The Flower-style client returns the same: arrays shaped like the model's, and a count.
    local = fl.mlp(6, 3)
    report = fl.train(local, x[parts[0]], y[parts[0]])
    assert set(report) == {"num-examples", "loss"}
    assert [a.shape for a in fl.get_parameters(local)] == list(shapes.values())


def test_dropout_compression_and_noise_run_and_count_bytes():
    x, y, parts = toy_federation()
    model = fl.mlp(20, 3)
    full = fl.simulate(model, x, y, parts, rounds=4, fraction=1.0, test_data=(x, y), show_progress=False)
    q8 = fl.simulate(model, x, y, parts, rounds=4, fraction=1.0, compression="8bit", test_data=(x, y), show_progress=False)
    dropped = fl.simulate(model, x, y, parts, rounds=4, fraction=1.0, drop_prob=0.5, straggler_prob=0.5,
                          clip_norm=1.0, noise_multiplier=0.5, test_data=(x, y), show_progress=False)
    assert q8.megabytes[-1] < full.megabytes[-1]
    assert min(dropped.clients_per_round) < 10
    assert abs(q8.accuracy[-1] - full.accuracy[-1]) < 0.05


@pytest.mark.parametrize("kwargs, message", [
    ({"fraction": 0.0}, "fraction"), ({"fraction": 1.5}, "fraction"), ({"fraction": float("nan")}, "fraction"),
    ({"drop_prob": 1.0}, "drop_prob"), ({"compression": "zip"}, "compression"), ({"mu": -0.1}, "mu"),
])
def test_simulator_bad_input(kwargs, message):
    x, y, parts = toy_federation()
    with pytest.raises(ValueError, match=message):
        fl.simulate(fl.mlp(20, 3), x, y, parts, rounds=1, show_progress=False, **kwargs)


def test_simulator_rejects_nan_data_and_empty_clients():
    x, y, parts = toy_federation()
    x_nan = x.clone()
    x_nan[3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fl.simulate(fl.mlp(20, 3), x_nan, y, parts, rounds=1, show_progress=False)
    with pytest.raises(ValueError, match="no data"):
        fl.simulate(fl.mlp(20, 3), x, y, parts + [np.array([], dtype=int)], rounds=1, show_progress=False)


def test_bmm_and_vmap_paths_agree():
    torch.manual_seed(0)
    model = fl.mlp(7, 3, hidden=5)
    params = {k: torch.randn(4, *v.shape) for k, v in model.named_parameters()}
    x = torch.randn(4, 6, 7)
    fast, generic = fl.stacked_forward(model), fl.stacked_forward(model, use_bmm=False)
    torch.testing.assert_close(fast(params, x), generic(params, x))
    # and each client's slice is that client's own model on its own batch
    one = fl.mlp(7, 3, hidden=5)
    one.load_state_dict({k: v[2] for k, v in params.items()})
    torch.testing.assert_close(fast(params, x)[2], one(x[2]))
    with pytest.raises(ValueError, match="bmm"):
        fl.stacked_forward(torch.nn.Sequential(torch.nn.Linear(7, 3), torch.nn.Tanh()), use_bmm=True)


def test_recent_accuracy_and_targets_read_the_history():
    hist = fl.SimHistory(rounds=[1, 2, 3, 4], accuracy=[0.1, 0.5, 0.3, 0.9], megabytes=[1.0, 2.0, 3.0, 4.0])
    assert fl.recent_accuracy(hist, 3, window=2) == pytest.approx(0.4)
    assert fl.recent_accuracy(hist, 1, window=5) == pytest.approx(0.1)
    assert fl.rounds_to_target(hist, 0.45) == 2 and fl.rounds_to_target(hist, 0.95) is None
    assert fl.megabytes_to_target(hist, 0.8) == 4.0
    with pytest.raises(ValueError, match="not evaluated"):
        fl.recent_accuracy(hist, 7)
