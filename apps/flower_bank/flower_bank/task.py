"""What both sides share: the model, a bank's own loans, and the held-out test set.

Explained in 04, section "Part 3: the same strategy on Flower".
"""

from __future__ import annotations

import torch

from learnstrat_helpers import banks, federated


def make_model(n_features: int) -> torch.nn.Module:
    """Logistic regression for good/bad loans (two logits), as in the notebook."""
    return federated.mlp(n_features, 2)


def load_bank(partition_id: int, num_partitions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loans of bank ``partition_id`` (0..3): a SuperNode only ever loads its own bank."""
    credit_banks = banks.load_credit_banks()["banks"]
    names = list(credit_banks)
    if num_partitions != len(names) or not 0 <= partition_id < len(names):
        raise ValueError(f"this app has {len(names)} banks (partition-id 0..{len(names) - 1}, "
                         f"num-partitions {len(names)}); got partition-id={partition_id}, num-partitions={num_partitions}.")
    return credit_banks[names[partition_id]]


def load_test() -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out test loans, from every region (used by the server to evaluate the global model)."""
    return banks.load_credit_banks()["test"]
