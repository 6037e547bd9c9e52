"""Federated learning, small and explicit: partitions, the client step, aggregation, compression, privacy,
and a fast simulator that trains all sampled clients of a round together.

Written in the style of Flower's tutorial helpers: small pure functions (``get_parameters``,
``set_parameters``, client ``train`` / ``test``) and no globals. The Flower app in ``apps/flower_bank``
wraps the same ``train`` and ``test``.

What travels between a client and the server is always a list of parameter tensors shaped like the
model's own (plus a number of examples); never a row of data.

Explained in 04, section "The idea".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from .training import progress

# ----------------------------------------------------------------------------------------------------------
# Checks: one clear ValueError for each kind of bad input.


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}.")


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or inf values.")


def check_partitions(parts: Sequence[np.ndarray], n_examples: int) -> None:
    """Raise ValueError if a client has no data, or an index is out of range or used twice.

    Explained in 04, section "Partitions: how clients differ".
    """
    if len(parts) == 0:
        raise ValueError("there are no clients: the partition list is empty.")
    for k, part in enumerate(parts):
        if len(part) == 0:
            raise ValueError(f"client {k} has no data: every client needs at least one example.")
    flat = np.concatenate([np.asarray(p) for p in parts])
    if flat.min() < 0 or flat.max() >= n_examples:
        raise ValueError(f"partition indices must lie in 0..{n_examples - 1}.")
    if len(np.unique(flat)) != len(flat):
        raise ValueError("an example is given to more than one client (duplicated index).")


# ----------------------------------------------------------------------------------------------------------
# Partitions


def partition_iid(n_examples: int, n_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle and deal ``n_examples`` out to ``n_clients`` in (almost) equal parts.

    Explained in 04, section "Partitions: how clients differ".
    """
    if n_clients < 1 or n_examples < n_clients:
        raise ValueError(f"need at least one example per client: {n_examples} examples for {n_clients} clients.")
    order = np.random.default_rng(seed).permutation(n_examples)
    return [np.sort(p) for p in np.array_split(order, n_clients)]


def partition_shards(labels, n_clients: int, shards_per_client: int = 2, seed: int = 0) -> list[np.ndarray]:
    """McMahan et al.'s pathological split: sort by label, cut into ``n_clients * shards_per_client``
    shards, give each client ``shards_per_client`` random shards (so most clients see about 2 classes).

    Explained in 04, section "Partitions: how clients differ".
    """
    labels = np.asarray(labels)
    n_shards = n_clients * shards_per_client
    if n_clients < 1 or shards_per_client < 1 or len(labels) < n_shards:
        raise ValueError(f"cannot cut {len(labels)} examples into {n_shards} non-empty shards.")
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, n_shards)
    pick = rng.permutation(n_shards).reshape(n_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in pick]


def partition_dirichlet(labels, n_clients: int, alpha: float, seed: int = 0, min_size: int = 1,
                        max_tries: int = 100) -> list[np.ndarray]:
    """Label skew: for each class, its examples are split across clients in proportions drawn from
    Dirichlet(alpha). Large alpha (100) is close to IID; alpha 0.1 gives most clients one or two classes.
    Draws again (up to ``max_tries``) until every client has at least ``min_size`` examples.

    Explained in 04, section "Partitions: how clients differ".
    """
    labels = np.asarray(labels)
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive number, got {alpha!r}.")
    if n_clients < 1 or len(labels) < n_clients * max(min_size, 1):
        raise ValueError(f"{len(labels)} examples cannot give {n_clients} clients {min_size} each.")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(n_clients, float(alpha)))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for k, piece in enumerate(np.split(members, cuts)):
                parts[k].append(piece)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in result) >= min_size:
            return result
    raise ValueError(f"no Dirichlet({alpha}) draw gave every one of {n_clients} clients {min_size} examples "
                     f"in {max_tries} tries: use fewer clients, a larger alpha or a smaller min_size.")


def label_histogram(labels, parts: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """Examples of each class held by each client: an array [clients, classes].

    Explained in 04, section "Partitions: how clients differ".
    """
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[p], minlength=n_classes) for p in parts])


# ----------------------------------------------------------------------------------------------------------
# Models and the Flower-style client functions


def mlp(n_inputs: int, n_classes: int, hidden: int = 0) -> nn.Module:
    """Logistic regression (``hidden=0``) or a one-hidden-layer MLP on flat inputs.

    Explained in 04, section "Part 1: banks".
    """
    if hidden:
        return nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    return nn.Sequential(nn.Linear(n_inputs, n_classes))


def get_parameters(model: nn.Module) -> list[np.ndarray]:
    """The model's parameters as a list of NumPy arrays, in ``state_dict`` order (what a client sends).

    Explained in 04, section "Part 1: banks".
    """
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_parameters(model: nn.Module, parameters: Sequence) -> nn.Module:
    """Load a list of arrays (``get_parameters``' format) into ``model``; shapes must match exactly.

    Explained in 04, section "Part 1: banks".
    """
    keys = list(model.state_dict().keys())
    if len(parameters) != len(keys):
        raise ValueError(f"expected {len(keys)} parameter arrays, got {len(parameters)}.")
    state = {}
    for key, value, current in zip(keys, parameters, model.state_dict().values()):
        tensor = torch.as_tensor(np.asarray(value), dtype=current.dtype)
        if tuple(tensor.shape) != tuple(current.shape):
            raise ValueError(f"parameter {key!r}: expected shape {tuple(current.shape)}, got {tuple(tensor.shape)}.")
        _check_finite(f"parameter {key!r}", tensor)
        state[key] = tensor
    model.load_state_dict(state)
    return model


def fedprox_term(params: Sequence[torch.Tensor], global_params: Sequence[torch.Tensor], mu: float) -> torch.Tensor:
    """FedProx's proximal term ``mu / 2 * ||w - w_global||^2``: it pulls a client's weights back towards
    the global model so that clients with skewed data drift less.

    Explained in 04, section "Client drift and FedProx".
    """
    if not math.isfinite(mu) or mu < 0:
        raise ValueError(f"mu must be a non-negative number, got {mu!r}.")
    total = sum(((p - g.detach()) ** 2).sum() for p, g in zip(params, global_params))
    return 0.5 * mu * total


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 1, batch_size: int = 32,
          lr: float = 0.1, mu: float = 0.0, seed: int = 0, pos_weight: float | None = None) -> dict:
    """The client step: ``epochs`` passes of plain SGD over the client's own data (cross-entropy, plus the
    FedProx term when ``mu > 0``). Changes ``model`` in place; returns ``{"num-examples", "loss"}``.
    ``pos_weight`` weighs class 1 (e.g. loan defaults) in the loss.

    Explained in 04, section "Part 1: banks".
    """
    if len(x) == 0:
        raise ValueError("this client has no data: it cannot train.")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels.")
    _check_finite("the client's data", x)
    if epochs < 1 or batch_size < 1 or not (lr > 0):
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}.")
    global_params = [p.detach().clone() for p in model.parameters()]
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    weight = None if pos_weight is None else torch.tensor([1.0, float(pos_weight)])
    model.train()
    total, count = 0.0, 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start: start + batch_size]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch], weight=weight)
            if mu > 0:
                loss = loss + fedprox_term(list(model.parameters()), global_params, mu)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
    if not math.isfinite(total):
        raise FloatingPointError("the client's loss became NaN or inf: lower the learning rate.")
    return {"num-examples": len(x), "loss": total / count}


@torch.inference_mode()
def test(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Loss, accuracy and, for two classes, the scores of class 1 (for ROC-AUC) on ``x, y``.

    Explained in 04, section "Part 1: banks".
    """
    if len(x) == 0:
        raise ValueError("test got no examples.")
    model.eval()
    logits = model(x)
    out = {"num-examples": len(x), "loss": nn.functional.cross_entropy(logits, y).item(),
           "accuracy": (logits.argmax(1) == y).float().mean().item()}
    if logits.shape[1] == 2:
        out["scores"] = torch.softmax(logits, 1)[:, 1].numpy()
    return out


def weighted_average(client_parameters: Sequence[Sequence], num_examples: Sequence[float]) -> list[np.ndarray]:
    """FedAvg's aggregation rule: the average of the clients' parameter lists, client k weighted by its
    number of examples ``n_k / sum(n)``.

    Explained in 04, section "Part 1: banks".
    """
    if len(client_parameters) == 0 or len(client_parameters) != len(num_examples):
        raise ValueError(f"need one example count per client: {len(client_parameters)} clients, {len(num_examples)} counts.")
    weights = np.asarray(num_examples, dtype=np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"example counts must be non-negative, finite and not all zero, got {list(num_examples)}.")
    weights = weights / weights.sum()
    shapes = [np.shape(p) for p in client_parameters[0]]
    for k, params in enumerate(client_parameters):
        if [np.shape(p) for p in params] != shapes:
            raise ValueError(f"client {k} sent parameters of other shapes than client 0.")
        if not all(np.isfinite(np.asarray(p)).all() for p in params):
            raise ValueError(f"client {k} sent NaN or inf parameters.")
    return [sum(w * np.asarray(params[i], dtype=np.float64) for w, params in zip(weights, client_parameters)).astype(np.float32)
            for i in range(len(shapes))]


# ----------------------------------------------------------------------------------------------------------
# Communication: 8-bit quantisation and top-k sparsification of updates, with their byte counts


def quantize_8bit(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Affine 8-bit quantisation of each row of ``t`` (row = one client's flattened update):
    returns (codes uint8, minimum, step). Round-trip error is at most ``step / 2`` per entry.

    Explained in 04, section "Communication".
    """
    _check_finite("the update", t)
    flat = t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(1, -1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    step = ((high - low) / 255.0).clamp_min(1e-12)
    codes = torch.round((flat - low) / step).clamp(0, 255).to(torch.uint8)
    return codes.reshape(t.shape), low, step


def dequantize_8bit(codes: torch.Tensor, low: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Undo :func:`quantize_8bit` (up to its rounding). Explained in 04, section "Communication"."""
    flat = codes.reshape(low.shape[0], -1).float()
    return (flat * step + low).reshape(codes.shape)


def topk_sparsify(t: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep the ``fraction`` largest-magnitude entries of each row of ``t`` (one row per client), zero the rest.

    Explained in 04, section "Communication".
    """
    _check_fraction("fraction", fraction)
    flat = t.reshape(t.shape[0], -1)
    k = max(1, int(round(fraction * flat.shape[1])))
    index = flat.abs().topk(k, dim=1).indices
    kept = torch.zeros_like(flat).scatter(1, index, flat.gather(1, index))
    return kept.reshape(t.shape)


def payload_bytes(shapes: Sequence[Sequence[int]], method: str = "float32", topk_fraction: float = 0.1) -> int:
    """Bytes one client sends for one update of tensors with these ``shapes``: float32 (4 bytes each),
    "8bit" (1 byte each + 8 bytes of min/step per tensor), or "topk" (4-byte value + 4-byte index per kept entry).

    Explained in 04, section "Communication".
    """
    sizes = [int(np.prod(s)) for s in shapes]
    if method == "float32":
        return 4 * sum(sizes)
    if method == "8bit":
        return sum(sizes) + 8 * len(sizes)
    if method == "topk":
        _check_fraction("topk_fraction", topk_fraction)
        return sum(8 * max(1, int(round(topk_fraction * s))) for s in sizes)
    raise ValueError(f"unknown compression {method!r}: choose 'float32', '8bit' or 'topk'.")


# ----------------------------------------------------------------------------------------------------------
# Privacy: clipping + Gaussian noise, and secure aggregation with pairwise masks


def clip_updates(updates: dict[str, torch.Tensor], clip_norm: float) -> dict[str, torch.Tensor]:
    """Scale each client's whole update (all tensors, one row per client) to an L2 norm of at most ``clip_norm``.

    Explained in 04, section "Privacy beyond keeping the data home".
    """
    if not (math.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"clip_norm must be positive, got {clip_norm!r}.")
    norms = torch.sqrt(sum(u.reshape(u.shape[0], -1).pow(2).sum(1) for u in updates.values()))
    scale = (clip_norm / norms.clamp_min(1e-12)).clamp(max=1.0)
    return {k: u * scale.view(-1, *[1] * (u.ndim - 1)) for k, u in updates.items()}


def gaussian_noise_like(mean_update: dict[str, torch.Tensor], noise_multiplier: float, clip_norm: float,
                        n_clients: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Noise the server adds to the average of ``n_clients`` clipped updates (DP-FedAvg): standard deviation
    ``noise_multiplier * clip_norm / n_clients`` per entry.

    Explained in 04, section "Privacy beyond keeping the data home".
    """
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier!r}.")
    std = noise_multiplier * clip_norm / max(n_clients, 1)
    return {k: torch.randn(v.shape, generator=generator) * std for k, v in mean_update.items()}


FIXED_POINT_BITS = 16      # fractional bits of the fixed-point encoding
MODULUS = 2 ** 40          # arithmetic of the masked values is modulo this; sums of up to ~2^23 clients fit


def encode_fixed_point(values: np.ndarray) -> np.ndarray:
    """Floats -> integers modulo ``MODULUS`` (fixed point with ``FIXED_POINT_BITS`` fractional bits).

    Explained in 04, section "Privacy beyond keeping the data home".
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("cannot encode NaN or inf values.")
    return np.mod(np.round(values * 2 ** FIXED_POINT_BITS).astype(np.int64), MODULUS)


def decode_fixed_point(codes: np.ndarray) -> np.ndarray:
    """Integers modulo ``MODULUS`` -> floats (the upper half of the range is negative)."""
    codes = np.mod(np.asarray(codes, dtype=np.int64), MODULUS)
    signed = np.where(codes >= MODULUS // 2, codes - MODULUS, codes)
    return signed.astype(np.float64) / 2 ** FIXED_POINT_BITS


def pairwise_masks(n_clients: int, size: int, seed: int = 0) -> np.ndarray:
    """One mask per client, [n_clients, size], integers modulo ``MODULUS``: for every pair i < j a random
    vector r_ij (from a seed the two agree on) that i adds and j subtracts. The masks sum to 0 modulo ``MODULUS``.

    Explained in 04, section "Privacy beyond keeping the data home".
    """
    if n_clients < 2:
        raise ValueError(f"secure aggregation needs at least 2 clients, got {n_clients}.")
    masks = np.zeros((n_clients, size), dtype=np.int64)
    for i in range(n_clients):
        for j in range(i + 1, n_clients):
            shared = np.random.default_rng([seed, i, j]).integers(0, MODULUS, size=size, dtype=np.int64)
            masks[i] = np.mod(masks[i] + shared, MODULUS)
            masks[j] = np.mod(masks[j] - shared, MODULUS)
    return masks


def masked_update(update: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What a client sends under secure aggregation: its encoded update plus its mask, modulo ``MODULUS``."""
    return np.mod(encode_fixed_point(update) + mask, MODULUS)


def secure_sum(masked: np.ndarray) -> np.ndarray:
    """The server's only computation: add the masked updates; the masks cancel and the sum is decoded."""
    return decode_fixed_point(np.mod(np.asarray(masked, dtype=np.int64).sum(0), MODULUS))


# ----------------------------------------------------------------------------------------------------------
# The batched simulator


@dataclass
class SimHistory:
    """What happened in a simulated federation: one entry per evaluated round."""

    rounds: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    megabytes: list[float] = field(default_factory=list)   # cumulative, up- and downlink, after that round
    bytes_per_round: list[int] = field(default_factory=list)
    clients_per_round: list[int] = field(default_factory=list)
    seconds: float = 0.0
    parameters: dict[str, torch.Tensor] = field(default_factory=dict)  # the final global model


def rounds_to_target(history: SimHistory, target: float) -> int | None:
    """First evaluated round whose test accuracy reaches ``target`` (None if never).

    Explained in 04, section "Part 2: 100 clients".
    """
    return next((r for r, a in zip(history.rounds, history.accuracy) if a >= target), None)


def recent_accuracy(history: SimHistory, upto: int, window: int = 5) -> float:
    """Mean test accuracy over the ``window`` evaluated rounds ending at round ``upto``: one round's number is
    a poor summary when the curve swings from round to round, as it does with skewed clients.

    Explained in 04, section "Client drift and FedProx".
    """
    if upto not in history.rounds:
        raise ValueError(f"round {upto} was not evaluated; evaluated rounds: {history.rounds[:3]}...{history.rounds[-3:]}.")
    end = history.rounds.index(upto) + 1
    return float(np.mean(history.accuracy[max(0, end - window): end]))


def megabytes_to_target(history: SimHistory, target: float) -> float | None:
    """Cumulative megabytes sent when test accuracy first reaches ``target`` (None if never)."""
    return next((m for m, a in zip(history.megabytes, history.accuracy) if a >= target), None)


def _client_batches(part: np.ndarray, epochs: int, batch_size: int | None, rng: np.random.Generator):
    """Index batches [steps, B] and validity mask for one client: ``epochs`` shuffled passes (last batch
    of each pass padded), or one batch of all its data when ``batch_size`` is None (FedSGD)."""
    size = len(part) if batch_size is None else batch_size
    rows, masks = [], []
    for _ in range(1 if batch_size is None else epochs):
        order = part[rng.permutation(len(part))]
        for start in range(0, len(order), size):
            chunk = order[start: start + size]
            rows.append(np.pad(chunk, (0, size - len(chunk))))
            masks.append(np.arange(size) < len(chunk))
    return np.stack(rows), np.stack(masks)


def _stacked_batches(parts, chosen, epochs, batch_size, work, rng, max_steps=None):
    per_client = [_client_batches(parts[k], epochs, batch_size, rng) for k in chosen]
    steps = np.array([max(1, int(math.ceil(w * min(len(b[0]), max_steps or len(b[0]))))) for w, b in zip(work, per_client)])
    width = max(b[0].shape[1] for b in per_client)
    longest = int(steps.max())
    index = np.zeros((len(chosen), longest, width), dtype=np.int64)
    valid = np.zeros((len(chosen), longest, width), dtype=bool)
    for i, (rows, masks) in enumerate(per_client):
        n = min(steps[i], len(rows))
        index[i, :n, :rows.shape[1]], valid[i, :n, :rows.shape[1]] = rows[:n], masks[:n]
    return torch.from_numpy(index), torch.from_numpy(valid), torch.from_numpy(steps)


def stacked_forward(model: nn.Module, use_bmm: bool | None = None) -> Callable:
    """A function ``(params, x) -> logits`` for K clients at once: ``params`` maps each parameter name to a
    tensor with a leading client dimension [K, ...] and ``x`` is [K, batch, features]. For an MLP of
    ``nn.Linear`` and ``nn.ReLU`` layers it is a chain of batched matrix products (``torch.baddbmm``), the
    fastest on a CPU; for any other model it is ``torch.func.vmap`` over ``functional_call``.

    Explained in 04, section "Part 2: 100 clients".
    """
    plain = isinstance(model, nn.Sequential) and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in model)
    if use_bmm is None:
        use_bmm = plain
    if use_bmm and not plain:
        raise ValueError("the bmm path needs an nn.Sequential of nn.Linear and nn.ReLU layers.")
    if not use_bmm:
        return vmap(lambda params, xb: functional_call(model, params, (xb,)))

    def forward(params, xb):
        h = xb
        for i, layer in enumerate(model):
            if isinstance(layer, nn.ReLU):
                h = torch.relu(h)
            elif layer.bias is not None:
                h = torch.baddbmm(params[f"{i}.bias"].unsqueeze(1), h, params[f"{i}.weight"].transpose(1, 2))
            else:
                h = torch.bmm(h, params[f"{i}.weight"].transpose(1, 2))
        return h

    return forward


def simulate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, parts: Sequence[np.ndarray], *,
             rounds: int, fraction: float = 0.1, epochs: int = 1, batch_size: int | None = 32, lr: float = 0.1,
             mu: float = 0.0, max_local_steps: int | None = None, compression: str = "float32", topk_fraction: float = 0.1,
             drop_prob: float = 0.0, straggler_prob: float = 0.0, straggler_work: float = 0.5,
             clip_norm: float | None = None, noise_multiplier: float = 0.0,
             test_data: tuple[torch.Tensor, torch.Tensor] | None = None, eval_every: int = 1, seed: int = 0,
             on_receive: Callable[[dict[str, torch.Tensor], torch.Tensor], None] | None = None,
             show_progress: bool = True) -> SimHistory:
    """FedAvg (or FedProx with ``mu > 0``, FedSGD with ``batch_size=None``) over ``parts``, simulated fast:
    each round samples ``fraction`` of the clients and trains them *together*: their weights are stacked
    along a new first dimension and one batched gradient step (:func:`stacked_forward`: batched matrix
    products for an MLP, ``vmap`` otherwise) updates all of them at once (a client that
    has finished its local work stops changing). Options model what real federations suffer: compression of
    updates ("8bit", "topk"), clients that drop out (send nothing) or straggle (do only ``straggler_work`` of
    their local steps), a cap on local steps (``max_local_steps``: a phone's time budget, so that a
    client with much data does not hold up the round), and DP-style clipping plus Gaussian noise. ``on_receive(updates, weights)`` is
    called with exactly what the server receives each round. ``model`` is left unchanged; the final global
    parameters are in the returned history.

    Explained in 04, section "Part 2: 100 clients".
    """
    check_partitions(parts, len(x))
    _check_fraction("fraction", fraction)
    _check_finite("the training data", x)
    for name, value in (("drop_prob", drop_prob), ("straggler_prob", straggler_prob)):
        if not (math.isfinite(value) and 0.0 <= value < 1.0):
            raise ValueError(f"{name} must lie in [0, 1), got {value!r}.")
    if straggler_prob:
        _check_fraction("straggler_work", straggler_work)
    if rounds < 1 or epochs < 1 or not (lr > 0) or (batch_size is not None and batch_size < 1):
        raise ValueError(f"rounds, epochs, batch_size must be >= 1 and lr > 0; got {rounds}, {epochs}, {batch_size}, {lr}.")
    if mu < 0 or not math.isfinite(mu):
        raise ValueError(f"mu must be a non-negative number, got {mu!r}.")
    if compression not in ("float32", "8bit", "topk"):
        raise ValueError(f"unknown compression {compression!r}: choose 'float32', '8bit' or 'topk'.")

    rng = np.random.default_rng(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)
    glob = {k: v.detach().clone() for k, v in model.named_parameters()}
    shapes = [tuple(v.shape) for v in glob.values()]
    up_bytes = payload_bytes(shapes, compression, topk_fraction)
    down_bytes = payload_bytes(shapes, "float32")
    per_round = max(1, int(round(fraction * len(parts))))
    sizes = np.array([len(p) for p in parts], dtype=np.float64)

    batched_forward = stacked_forward(model)   # one call runs every sampled client's own weights on its own batch

    def client_grads(local, xb, yb, valid):
        # Clients are independent, so the gradient of the *sum* of their losses with respect to client k's
        # weights is the gradient of client k's own loss: one backward pass serves every client.
        params = {k: v.requires_grad_(True) for k, v in local.items()}
        logits = batched_forward(params, xb)
        losses = nn.functional.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape)
        loss = ((losses * valid).sum(1) / valid.sum(1).clamp_min(1)).sum()
        if mu > 0:
            loss = loss + 0.5 * mu * sum(((params[k] - glob[k]) ** 2).sum() for k in params)
        return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))

    history, start, total_bytes = SimHistory(), time.perf_counter(), 0
    for rnd in progress(range(1, rounds + 1), desc="rounds") if show_progress else range(1, rounds + 1):
        chosen = np.sort(rng.choice(len(parts), size=per_round, replace=False))
        work = np.where(rng.random(per_round) < straggler_prob, straggler_work, 1.0)
        index, valid, steps = _stacked_batches(parts, chosen, epochs, batch_size, work, rng, max_local_steps)
        local = {k: v.unsqueeze(0).repeat(per_round, *[1] * v.ndim) for k, v in glob.items()}
        for s in range(index.shape[1]):
            active = (s < steps).float()
            grads = client_grads(local, x[index[:, s]], y[index[:, s]], valid[:, s].float())
            with torch.no_grad():
                local = {k: local[k] - lr * grads[k] * active.view(-1, *[1] * (grads[k].ndim - 1)) for k in local}
        updates = {k: local[k].detach() - glob[k] for k in glob}
        arrived = rng.random(per_round) >= drop_prob
        weights = torch.from_numpy(sizes[chosen] * arrived).float()
        if clip_norm is not None:
            updates = clip_updates(updates, clip_norm)
        if compression == "8bit":
            updates = {k: dequantize_8bit(*quantize_8bit(u)) for k, u in updates.items()}
        elif compression == "topk":
            updates = {k: topk_sparsify(u, topk_fraction) for k, u in updates.items()}
        total_bytes += per_round * down_bytes + int(arrived.sum()) * up_bytes
        if on_receive is not None:
            on_receive({k: u[torch.from_numpy(arrived)].clone() for k, u in updates.items()},
                       weights[torch.from_numpy(arrived)].clone())
        if weights.sum() > 0:   # every sampled client dropped: the global model stays as it was
            w = weights / weights.sum()
            mean = {k: (u * w.view(-1, *[1] * (u.ndim - 1))).sum(0) for k, u in updates.items()}
            if clip_norm is not None and noise_multiplier > 0:
                noise = gaussian_noise_like(mean, noise_multiplier, clip_norm, int(arrived.sum()), noise_gen)
                mean = {k: mean[k] + noise[k] for k in mean}
            glob = {k: glob[k] + mean[k] for k in glob}
        if not all(torch.isfinite(v).all() for v in glob.values()):
            raise FloatingPointError(f"the global model became NaN or inf in round {rnd}: lower the learning rate.")
        if test_data is not None and (rnd % eval_every == 0 or rnd == rounds):
            with torch.inference_mode():
                logits = functional_call(model, glob, (test_data[0],))
            history.rounds.append(rnd)
            history.accuracy.append((logits.argmax(1) == test_data[1]).float().mean().item())
            history.loss.append(nn.functional.cross_entropy(logits, test_data[1]).item())
            history.megabytes.append(total_bytes / 1e6)
            history.bytes_per_round.append(per_round * down_bytes + int(arrived.sum()) * up_bytes)
            history.clients_per_round.append(int(arrived.sum()))
    history.seconds = time.perf_counter() - start
    history.parameters = glob
    return history


def fedavg_loop(make_model: Callable[[], nn.Module], client_data: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                rounds: int, epochs: int = 1, batch_size: int = 32, lr: float = 0.1, mu: float = 0.0,
                pos_weight: float | None = None, seed: int = 0) -> list[np.ndarray]:
    """The readable reference: FedAvg over every client each round, one client after another, with the
    same :func:`train` and :func:`weighted_average` that the Flower app uses. Returns the global parameters.
    Client k in round r trains with seed ``seed + 1000 * r + k`` (as the Flower app does).

    Explained in 04, section "Part 1: banks".
    """
    torch.manual_seed(seed)
    global_model = make_model()
    parameters = get_parameters(global_model)
    for rnd in range(1, rounds + 1):
        sent, counts = [], []
        for k, (xk, yk) in enumerate(client_data):
            local = set_parameters(make_model(), parameters)
            report = train(local, xk, yk, epochs=epochs, batch_size=batch_size, lr=lr, mu=mu,
                           pos_weight=pos_weight, seed=seed + 1000 * rnd + k)
            sent.append(get_parameters(local))
            counts.append(report["num-examples"])
        parameters = weighted_average(sent, counts)
    return parameters
