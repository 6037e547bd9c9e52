"""Federated learning: partitions, the Flower-style client step (``apps/flower_bank`` wraps it), FedAvg, a simulator.
What travels is parameters and a count, never data (:mod:`.transport`). Explained in 04, section "The idea"."""

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from . import transport
from .training import _check_examples, fit, model_device, progress, to_device


def partition(labels, n_clients: int, scheme: str = "iid", *, alpha: float | None = None, shards_per_client: int = 2,
              seed: int = 0, min_size: int = 1, max_tries: int = 100) -> list[np.ndarray]:
    """One index array per client: ``"iid"`` equal random parts; ``"shards"`` label-sorted shards dealt at random;
    ``"dirichlet"`` each class split by Dirichlet(``alpha``) shares, redrawn until each client has ``min_size``.
    Explained in 04, section "Partitions: how clients differ"."""
    labels, rng = np.asarray(labels), np.random.default_rng(seed)
    if scheme == "iid":
        if n_clients < 1 or len(labels) < n_clients:
            raise ValueError(f"need at least one example per client: {len(labels)} examples for {n_clients} clients.")
        return [np.sort(p) for p in np.array_split(rng.permutation(len(labels)), n_clients)]
    if scheme == "shards":
        n_shards = n_clients * shards_per_client
        if n_clients < 1 or shards_per_client < 1 or len(labels) < n_shards:
            raise ValueError(f"cannot cut {len(labels)} examples into {n_shards} non-empty shards.")
        shards = np.array_split(np.argsort(labels, kind="stable"), n_shards)
        return [np.sort(np.concatenate([shards[s] for s in row]))
                for row in rng.permutation(n_shards).reshape(n_clients, shards_per_client)]
    if scheme != "dirichlet":
        raise ValueError(f"unknown partition scheme {scheme!r}: choose 'iid', 'shards' or 'dirichlet'.")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}.")
    if n_clients < 1 or len(labels) < n_clients * max(min_size, 1):
        raise ValueError(f"{len(labels)} examples cannot give {n_clients} clients {min_size} each.")
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, float(alpha))))[:-1] * len(members)).astype(int)
            for k, piece in enumerate(np.split(members, cuts)):
                parts[k].append(piece)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in result) >= min_size:
            return result
    raise ValueError(f"no Dirichlet({alpha}) draw gave every one of {n_clients} clients {min_size} examples "
                     f"in {max_tries} tries: use fewer clients, a larger alpha or a smaller min_size.")


def mlp(n_inputs: int, n_classes: int, hidden: int = 0) -> nn.Module:
    """Logistic regression (``hidden=0``) or a one-hidden-layer MLP.
    Explained in 04, section "Part 1: banks that may not share their customers' data"."""
    hidden_layer = [nn.Linear(n_inputs, hidden), nn.ReLU()] if hidden else []
    return nn.Sequential(*hidden_layer, nn.Linear(hidden or n_inputs, n_classes))


def get_parameters(model: nn.Module) -> list[np.ndarray]:
    """The model's parameters as NumPy arrays in ``state_dict`` order: what a client sends.
    Explained in 04, section "Part 1: banks that may not share their customers' data"."""
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_parameters(model: nn.Module, parameters: Sequence) -> nn.Module:
    """Load arrays in :func:`get_parameters`' format into ``model``: shapes must match, values be finite.
    Explained in 04, section "Part 1: banks that may not share their customers' data"."""
    current = model.state_dict()
    if len(parameters) != len(current):
        raise ValueError(f"expected {len(current)} parameter arrays, got {len(parameters)}.")
    state = {key: torch.as_tensor(np.asarray(v), dtype=now.dtype) for (key, now), v in zip(current.items(), parameters)}
    for (key, now), tensor in zip(current.items(), state.values()):
        if tensor.shape != now.shape:
            raise ValueError(f"parameter {key!r}: expected shape {tuple(now.shape)}, got {tuple(tensor.shape)}.")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"parameter {key!r} contains NaN or inf values.")
    model.load_state_dict(state)
    return model


def _fedprox_term(params, global_params, mu: float) -> torch.Tensor:
    return 0.5 * mu * sum(((p - g.detach()) ** 2).sum() for p, g in zip(params, global_params))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 1, batch_size: int = 32,
          lr: float = 0.1, mu: float = 0.0, seed: int = 0) -> dict:
    """The client step: ``epochs`` of SGD (``training.fit``), cross-entropy + FedProx's ``mu / 2 * ||w - w_global||^2``;
    returns ``{"num-examples", "loss"}`` (mean over every example seen).
    Explained in 04, section "Part 1: banks that may not share their customers' data"."""
    _check_examples(x, y, "this client's data")
    if epochs < 1 or batch_size < 1 or not (lr > 0) or not (math.isfinite(mu) and mu >= 0):
        raise ValueError(f"need epochs, batch_size >= 1, lr > 0 and mu >= 0; got {epochs}, {batch_size}, {lr}, {mu}.")
    x, y = to_device((x, y), model_device(model))   # once: the batches are indices
    global_params = [p.detach().clone() for p in model.parameters()]
    generator = torch.Generator().manual_seed(seed)   # on the CPU: the same batches on every device

    def step(model, index, optimizer, scheduler):
        loss = nn.functional.cross_entropy(model(x[index]), y[index])
        if mu > 0:
            loss = loss + _fedprox_term(model.parameters(), global_params, mu)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "examples": len(index)}
    logs = fit(model, lambda epoch: torch.randperm(len(x), generator=generator).split(batch_size), step,
               optimizer=torch.optim.SGD(model.parameters(), lr=lr), epochs=epochs, show_progress=False).logs
    seen = sum(g["examples"] for g in logs)
    return {"num-examples": len(x), "loss": sum(g["loss"] * g["examples"] for g in logs) / seen}


@torch.inference_mode()
def test(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Loss, accuracy and, for two classes, the scores of class 1 (a CPU array, for ROC-AUC) on ``x, y``.
    Explained in 04, section "Part 1: banks that may not share their customers' data"."""
    if len(x) == 0:
        raise ValueError("test got no examples.")
    x, y = to_device((x, y), model_device(model.eval()))
    logits = model(x)
    out = {"num-examples": len(x), "loss": nn.functional.cross_entropy(logits, y).item(),
           "accuracy": (logits.argmax(1) == y).float().mean().item()}
    if logits.shape[1] == 2:
        out["scores"] = torch.softmax(logits, 1)[:, 1].cpu().numpy()
    return out


def fedavg_loop(make_model: Callable[[], nn.Module], client_data: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                rounds: int, epochs: int = 1, batch_size: int = 32, lr: float = 0.1, seed: int = 0) -> list[np.ndarray]:
    """The readable reference: FedAvg's parameters after ``rounds`` of :func:`train` on every client in turn (seed
    ``seed + 1000 * round + k``, as in the Flower app).
    Explained in 04, section "Part 1: banks that may not share their customers' data"."""
    torch.manual_seed(seed)
    parameters = get_parameters(make_model())
    for rnd in range(1, rounds + 1):
        sent, counts = [], []
        for k, (xk, yk) in enumerate(client_data):
            local = set_parameters(make_model(), parameters)
            report = train(local, xk, yk, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed + 1000 * rnd + k)
            sent.append(get_parameters(local))
            counts.append(report["num-examples"])
        weights = np.array(counts) / sum(counts)   # FedAvg: client k weighted by n_k / sum(n)
        parameters = [sum(w * p[i] for w, p in zip(weights, sent)).astype(np.float32) for i in range(len(sent[0]))]
    return parameters


@dataclass(frozen=True)
class SimSettings:
    """A simulated federation's knobs; ``dataclasses.replace(settings, mu=0.1)`` makes a variant.
    Explained in 04, section "FedAvg against FedSGD and the centralised model"."""

    rounds: int
    fraction: float = 0.1                 # share of the clients sampled each round
    epochs: int = 1                       # local passes over a client's data ...
    batch_size: int | None = 32           # ... in batches of this size (None: one gradient of all of it, FedSGD)
    lr: float = 0.1
    mu: float = 0.0                       # FedProx's proximal term
    max_local_steps: int | None = None    # a phone's time budget: a client with much data stops here
    compression: str = "float32"          # of the upload: "float32", "8bit" or "topk" (transport.compress)
    topk_fraction: float = 0.1
    drop_prob: float = 0.0                # a sampled client sends nothing
    straggler_prob: float = 0.0           # a sampled client does only straggler_work of its local steps
    straggler_work: float = 0.5
    clip_norm: float | None = None        # DP: each client's update clipped to this norm ...
    noise_multiplier: float = 0.0         # ... and Gaussian noise of this times the weighted mean's sensitivity
    seed: int = 0

    def __post_init__(self):
        rules = [("fraction", 0 < self.fraction <= 1, "a fraction in (0, 1]"), ("lr", self.lr > 0, "> 0"),
                 ("straggler_work", not self.straggler_prob or 0 < self.straggler_work <= 1, "a fraction in (0, 1]"),
                 ("drop_prob", 0 <= self.drop_prob < 1, "in [0, 1)"), ("rounds", self.rounds >= 1, ">= 1"),
                 ("straggler_prob", 0 <= self.straggler_prob < 1, "in [0, 1)"), ("epochs", self.epochs >= 1, ">= 1"),
                 ("batch_size", self.batch_size is None or self.batch_size >= 1, ">= 1 (or None: FedSGD)"),
                 ("mu", 0 <= self.mu < math.inf, "a non-negative number"),
                 ("noise_multiplier", 0 <= self.noise_multiplier < math.inf, ">= 0"),
                 ("clip_norm", self.clip_norm is None or 0 < self.clip_norm < math.inf, "positive (or None)")]
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}.")
        transport.compress({}, self.compression, self.topk_fraction)   # checks the method and the fraction
        if self.noise_multiplier > 0 and self.clip_norm is None:
            raise ValueError("noise_multiplier > 0 needs clip_norm: without clipping one update is unbounded.")


@dataclass
class SimHistory:
    """Per round: test accuracy, cumulative megabytes, the round's bytes and clients answering; seconds, final weights.
    Explained in 04, section "FedAvg against FedSGD and the centralised model"."""

    rounds: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    megabytes: list[float] = field(default_factory=list)
    bytes_per_round: list[int] = field(default_factory=list)
    clients_per_round: list[int] = field(default_factory=list)
    seconds: float = 0.0
    parameters: dict[str, torch.Tensor] = field(default_factory=dict)

    def rounds_to_target(self, target: float) -> int | None:
        """The first round whose test accuracy reaches ``target`` (None: never)."""
        return next((r for r, a in zip(self.rounds, self.accuracy) if a >= target), None)

    def megabytes_to_target(self, target: float) -> float | None:
        """Megabytes sent until test accuracy first reached ``target`` (None: never)."""
        return next((m for m, a in zip(self.megabytes, self.accuracy) if a >= target), None)

    def recent_accuracy(self, upto: int, window: int = 5) -> float:
        """Mean test accuracy of the ``window`` rounds ending at ``upto`` (one round says little when it swings).
        Explained in 04, section "Client drift under non-IID data, and FedProx"."""
        if upto not in self.rounds:
            raise ValueError(f"round {upto} was not evaluated; evaluated: {self.rounds[:3]}...{self.rounds[-3:]}.")
        end = self.rounds.index(upto) + 1
        return float(np.mean(self.accuracy[max(0, end - window): end]))


def _stacked_batches(parts, chosen, s: SimSettings, work, rng):
    """Index batches [clients, steps, B], mask, steps per client: ``epochs`` shuffled passes; FedSGD: all at once."""
    per_client = []
    for k in chosen:
        size, rows = len(parts[k]) if s.batch_size is None else s.batch_size, []
        for _ in range(1 if s.batch_size is None else s.epochs):
            order = parts[k][rng.permutation(len(parts[k]))]
            rows += [order[i: i + size] for i in range(0, len(order), size)]
        per_client.append(rows)
    cap = s.max_local_steps
    steps = np.array([max(1, int(math.ceil(w * min(len(r), cap or len(r))))) for w, r in zip(work, per_client)])
    width = max(len(parts[k]) if s.batch_size is None else s.batch_size for k in chosen)
    index = np.zeros((len(chosen), int(steps.max()), width), dtype=np.int64)
    valid = np.zeros(index.shape, dtype=bool)
    for i, rows in enumerate(per_client):
        for j, row in enumerate(rows[: steps[i]]):
            index[i, j, :len(row)], valid[i, j, :len(row)] = row, True
    return torch.from_numpy(index), torch.from_numpy(valid), torch.from_numpy(steps)


def _stacked_forward(model: nn.Module) -> Callable:
    """``(params [K, ...], x [K, B, ...]) -> logits`` of K clients: bmm for an MLP (fastest on a CPU), else ``vmap``."""
    if not (isinstance(model, nn.Sequential) and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in model)):
        return vmap(lambda params, xb: functional_call(model, params, (xb,)))

    def forward(params, h):
        for i, layer in enumerate(model):
            if isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            elif layer.bias is not None:
                h = torch.baddbmm(params[f"{i}.bias"].unsqueeze(1), h, params[f"{i}.weight"].transpose(1, 2))
            else:
                h = torch.bmm(h, params[f"{i}.weight"].transpose(1, 2))
        return h
    return forward


def _per_client(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *[1] * (like.ndim - 1))   # one number per client, broadcast over its tensor


def simulate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, parts: Sequence[np.ndarray], settings: SimSettings,
             *, test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
             on_receive: Callable[[dict[str, torch.Tensor], torch.Tensor], None] | None = None,
             show_progress: bool = True) -> SimHistory:
    """FedAvg (FedProx, FedSGD) over the clients ``parts``, fast: a round's sampled clients train *together*,
    their weights stacked along a new first dimension, one batched gradient step updating all (a client done
    with its local work stops changing); their updates are then clipped, compressed, averaged by data size and
    noised as ``settings`` say. ``on_receive(updates, weights)`` sees what the server receives. ``model`` is unchanged.
    Not ``training.fit``: many models, each with its own batches and steps, advance in lockstep as one tensor.
    Explained in 04, section "FedAvg against FedSGD and the centralised model"."""
    s, device = settings, model_device(model)
    empty = next((f"client {k}" for k, p in enumerate(parts) if len(p) == 0), None if len(parts) else "the federation")
    if empty is not None:
        raise ValueError(f"{empty} has no data: every client needs at least one example.")
    flat = np.concatenate([np.asarray(p) for p in parts])
    if flat.min() < 0 or flat.max() >= len(x) or len(np.unique(flat)) != len(flat):
        raise ValueError(f"partition indices must lie in 0..{len(x) - 1}, each example given to one client only.")
    _check_examples(x, y, "the training data")
    x, y = to_device((x, y), device)
    rng, noise_gen = np.random.default_rng(s.seed), torch.Generator().manual_seed(s.seed + 1)
    glob = {k: v.detach().clone() for k, v in model.named_parameters()}
    down_bytes = 4 * sum(v.numel() for v in glob.values())   # the global model, in float32
    per_round, sizes = max(1, int(round(s.fraction * len(parts)))), np.array([len(p) for p in parts], dtype=np.float64)
    batched_forward = _stacked_forward(model)

    def client_grads(local, xb, yb, valid):
        # Clients are independent, so the gradient of the *sum* of their losses with respect to client k's
        # weights is the gradient of client k's own loss: one backward pass serves every client.
        params = {k: v.requires_grad_(True) for k, v in local.items()}
        losses = nn.functional.cross_entropy(batched_forward(params, xb).flatten(0, 1), yb.flatten(), reduction="none")
        loss = ((losses.view(yb.shape) * valid).sum(1) / valid.sum(1).clamp_min(1)).sum()
        if s.mu > 0:
            loss = loss + _fedprox_term(params.values(), glob.values(), s.mu)
        return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    history, start, total_bytes = SimHistory(), time.perf_counter(), 0
    for rnd in progress(range(1, s.rounds + 1), desc="rounds") if show_progress else range(1, s.rounds + 1):
        chosen = np.sort(rng.choice(len(parts), size=per_round, replace=False))
        work = np.where(rng.random(per_round) < s.straggler_prob, s.straggler_work, 1.0)
        index, valid, steps = to_device(_stacked_batches(parts, chosen, s, work, rng), device)
        local = {k: v.unsqueeze(0).repeat(per_round, *[1] * v.ndim) for k, v in glob.items()}
        for step in range(index.shape[1]):
            grads = client_grads(local, x[index[:, step]], y[index[:, step]], valid[:, step].float())
            active = (step < steps).float()
            with torch.no_grad():
                local = {k: local[k] - s.lr * grads[k] * _per_client(active, grads[k]) for k in local}
        arrived = rng.random(per_round) >= s.drop_prob
        weights = torch.from_numpy(sizes[chosen] * arrived).float().to(device)
        updates = {k: local[k].detach() - glob[k] for k in glob}
        if s.clip_norm is not None:
            updates = transport.clip_updates(updates, s.clip_norm)
        updates, up_bytes = transport.compress(updates, s.compression, s.topk_fraction)
        round_bytes = per_round * down_bytes + int(arrived.sum()) * up_bytes
        total_bytes += round_bytes
        if on_receive is not None:
            kept = torch.from_numpy(arrived).to(device)
            on_receive({k: u[kept].clone() for k, u in updates.items()}, weights[kept].clone())
        if weights.sum() > 0:   # every sampled client dropped: the global model stays as it was
            mean = {k: (u * _per_client(weights / weights.sum(), u)).sum(0) for k, u in updates.items()}
            if s.noise_multiplier > 0:
                used = weights[weights > 0].cpu()   # the weights the average really used: they set its sensitivity
                noise = transport.gaussian_noise(mean, s.noise_multiplier, s.clip_norm, used, noise_gen)
                mean = {k: mean[k] + noise[k] for k in mean}
            glob = {k: glob[k] + mean[k] for k in glob}
        if not all(torch.isfinite(v).all() for v in glob.values()):
            raise FloatingPointError(f"the global model became NaN or inf in round {rnd}: lower the learning rate.")
        if test_data is not None:
            x_test, y_test = to_device(test_data, device)
            with torch.inference_mode():
                accuracy = (functional_call(model, glob, (x_test,)).argmax(1) == y_test).float().mean().item()
            for name, value in (("rounds", rnd), ("accuracy", accuracy), ("megabytes", total_bytes / 1e6),
                                ("bytes_per_round", round_bytes), ("clients_per_round", int(arrived.sum()))):
                getattr(history, name).append(value)
    history.seconds, history.parameters = time.perf_counter() - start, glob
    return history
