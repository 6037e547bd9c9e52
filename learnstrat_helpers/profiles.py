"""Run profiles, how big each experiment is, in one table: ``quick`` (seconds, for tests; numbers not
meaningful), ``default`` (a 2-core CPU or Binder: <= 300 s per notebook, 03 <= 480 s, <= 1.6 GB), ``full`` (a
GPU, Colab: published-size models, full data). Chosen by ``LEARNSTRAT_PROFILE`` (default ``default``);
``LEARNSTRAT_SEED`` (default 0) shifts every seed of a run, so a learner can check a verdict does not hang on one.
Explained in 01, section "Set-up: run profiles"."""

import os
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class _TransferSettings:
    """Notebook 01's sizes (per class: labelled examples per class; None: the whole split or MiniLM)."""

    seeds: tuple[int, ...]
    text_per_class: tuple[int, ...]          # SST-2 learning-curve points
    text_val_size: int | None
    text_model_hub_id: str | None
    vision_per_class: tuple[int, ...]        # Fashion-MNIST learning-curve points, drawn from ...
    vision_pool_per_class: int               # ... a pool of this many training images per class
    vision_val_per_class: int                # training images per class held out to choose depth and resolution
    vision_test_per_class: int
    vision_resolution: int                   # pixels fed to EfficientNet-Lite0 (and the low-resolution remedy's)
    vision_low_resolution: int
    scratch_epochs: int                      # the scratch CNN's passes over the data, capped at ...
    scratch_max_steps: int                   # ... this many optimiser steps
    finetune_steps: int                      # optimiser steps of the fine-tuned top block


@dataclass(frozen=True)
class _FineTuningSettings:
    """Notebook 02's sizes."""

    seeds: tuple[int, ...]                   # seeds of the learning curve's small sizes (the largest sizes use the first)
    train_sizes: tuple[int, ...]             # labelled SST-2 sentences (balanced) per learning-curve point
    multi_seed_sizes: int                    # sizes up to this many sentences are run with every seed
    small_epochs: int                        # epochs at the smallest size (the overfitting demo)
    small_batch_size: int                    # batch size at the multi-seed sizes (enough optimiser steps to learn)
    small_lr: float                          # peak learning rate at the multi-seed sizes
    lrs: tuple[float, ...]                   # peak lr of frozen (k=0), top-2, full, LoRA; chosen on dev (scripts/)
    headline_lr: float                       # peak lr of the headline run (full FT, largest size); chosen on dev
    domain_train_size: int                   # labelled sentences of a new domain the SST-2 model is further tuned on
    val_size: int | None                     # None: the whole 872-sentence validation split
    curve_val_size: int                      # validation sentences evaluated after each epoch of the overfitting demo
    dev_size: int                            # SST-2 train sentences held out as the development split (choices)
    text_model_hub_id: str | None            # None: all-MiniLM-L6-v2 (ships offline in a package)
    max_length: int                          # tokens kept per sentence
    batch_size: int
    throughput_steps: int                    # optimiser steps per throughput measurement (helper vs Trainer, padding)


@dataclass(frozen=True)
class _MultitaskSettings:
    """Notebook 03's sizes: a full-depth headline joint model; the comparisons with fewer encoder layers and epochs."""

    seed: int
    text_model_hub_id: str | None            # None: all-MiniLM-L6-v2 (ships offline in a package)
    max_length: int                          # word pieces kept per sentence
    batch_size: int                          # sentences per batch (every run)
    train_sentences: int | None              # None: the whole training split
    eval_sentences: int | None               # None: the whole test split (288 sentences)
    train_on_validation: bool                # True: train+dev, as SpERT reports; False: train only
    headline_layers: int | None              # encoder layers of the headline joint model (None: all)
    headline_epochs: int
    compare_layers: int | None               # encoder layers of the reduced-scale comparisons (None: all)
    fractions: tuple[float, ...]             # shares of the training sentences (the last is 1.0)
    fraction_epochs: tuple[int, ...]         # epochs at each share (smaller shares get more)
    seeds: tuple[int, ...]                   # seeds run at every share below 1.0 (the first is `seed`)
    soft_strengths: tuple[float, ...]        # L2 penalty strengths of soft sharing (the first is 0; dev picks one)
    soft_fraction: float                     # training share the soft-sharing sweep runs at
    cosine_every: int                        # measure the tasks' gradient cosine every this many steps
    lr: float                                # encoder learning rate of the headline run (heads: head_lr)
    compare_lr: float                        # encoder learning rate of the shorter comparison runs
    head_lr: float                           # heads' learning rate of the headline run
    compare_head_lr: float                   # heads' learning rate of the comparison runs


@dataclass(frozen=True)
class _FederatedSettings:
    """Notebook 04's sizes."""

    bank_rounds: int                         # FedAvg rounds across the four banks
    bank_local_epochs: int                   # epochs each bank trains per round
    train_per_class: int | None              # Fashion-MNIST training images per class (None: all 6,000)
    test_per_class: int | None               # test images per class (None: all 1,000)
    resolution: int                          # pixels per side fed to the MLP (28 = the original)
    hidden: int                              # hidden units of the MLP
    n_clients: int                           # simulated phones
    fraction: float                          # share of the clients sampled each round
    rounds: int                              # rounds of the main runs (IID, Dirichlet 0.1)
    short_rounds: int                        # rounds of the sweeps (FedProx, compression, sync, privacy)
    batch_size: int
    central_epochs: int                      # epochs of the centralised model on the pooled data
    target_accuracy: float                   # for rounds-to-target and megabytes-to-target
    prox_mus: tuple[float, ...]              # FedProx sweep
    noise_multipliers: tuple[float, ...]     # DP noise sweep (with clipping)
    bank_folds: int                          # cross-validation folds over the loans (the banks' intervals)
    seeds: tuple[int, ...]                   # simulator seeds: the intervals of Part 2's claims
    keyboard_min_words: int                  # Part 4's users: the roles that speak at least this many words
    keyboard_rounds: int                     # FedAvg rounds of the keyboard (its comparisons: half as many)
    keyboard_epochs: int                     # passes over the text, pooled and for each user alone


@dataclass(frozen=True)
class Profile:
    name: str
    transfer: _TransferSettings
    fine_tuning: _FineTuningSettings
    multitask: _MultitaskSettings
    federated: _FederatedSettings
    seed: int = 0                            # LEARNSTRAT_SEED: added to every seed below
    chosen_by: str = "the default"           # where the name came from: the notebook's PROFILE cell, the environment


_PROFILES = {
    "quick": Profile(
        name="quick",
        transfer=_TransferSettings(
            seeds=(0, 1), text_per_class=(4, 16), text_val_size=64, text_model_hub_id=None, vision_per_class=(3, 10),
            vision_pool_per_class=12, vision_val_per_class=5, vision_test_per_class=10, vision_resolution=32,
            vision_low_resolution=24, scratch_epochs=2, scratch_max_steps=20, finetune_steps=10,
        ),
        fine_tuning=_FineTuningSettings(
            seeds=(0, 1), train_sizes=(16, 32, 48, 64), multi_seed_sizes=32, small_epochs=3, small_batch_size=8,
            small_lr=2e-4, lrs=(3e-3, 3e-4, 1e-4, 3e-3), headline_lr=1e-4, domain_train_size=24, val_size=48, curve_val_size=24,
            dev_size=32, text_model_hub_id=None, max_length=32, batch_size=8, throughput_steps=2,
        ),
        multitask=_MultitaskSettings(
            seed=0, text_model_hub_id=None, max_length=48, batch_size=8, train_sentences=48, eval_sentences=32,
            train_on_validation=False, headline_layers=1, headline_epochs=1, compare_layers=1,
            fractions=(0.5, 1.0), fraction_epochs=(1, 1), seeds=(0,), soft_strengths=(0.0, 1.0), soft_fraction=0.5,
            cosine_every=2, lr=1e-4, compare_lr=3e-4, head_lr=1e-3, compare_head_lr=1e-3,
        ),
        federated=_FederatedSettings(
            bank_rounds=2, bank_local_epochs=1, train_per_class=100, test_per_class=50, resolution=14, hidden=16,
            n_clients=20, fraction=0.25, rounds=4, short_rounds=3, batch_size=25, central_epochs=1,
            target_accuracy=0.5, prox_mus=(0.1,), noise_multipliers=(1.0,), bank_folds=2, seeds=(0, 1),
            keyboard_min_words=4000, keyboard_rounds=3, keyboard_epochs=1,
        ),
    ),
    "default": Profile(
        name="default",
        transfer=_TransferSettings(
            seeds=(0, 1, 2), text_per_class=(8, 32, 128, 512), text_val_size=None, text_model_hub_id=None,
            vision_per_class=(5, 30, 100, 300), vision_pool_per_class=400, vision_val_per_class=100,
            vision_test_per_class=300, vision_resolution=64, vision_low_resolution=32, scratch_epochs=15,
            scratch_max_steps=300, finetune_steps=200,
        ),
        fine_tuning=_FineTuningSettings(
            seeds=(0, 1, 2), train_sizes=(100, 1600, 6000), multi_seed_sizes=100, small_epochs=6,
            small_batch_size=16, small_lr=2e-4, lrs=(3e-3, 3e-4, 1e-4, 3e-3), headline_lr=2e-4, domain_train_size=300,
            val_size=None, curve_val_size=128, dev_size=500, text_model_hub_id=None, max_length=64, batch_size=32,
            throughput_steps=3,
        ),
        federated=_FederatedSettings(
            bank_rounds=3, bank_local_epochs=5, train_per_class=None, test_per_class=None, resolution=14, hidden=64,
            n_clients=100, fraction=0.1, rounds=50, short_rounds=25, batch_size=50, central_epochs=5,
            target_accuracy=0.80, prox_mus=(0.01, 1.0), noise_multipliers=(0.5, 2.0), bank_folds=5,
            seeds=(0, 1, 2, 3, 4), keyboard_min_words=1000, keyboard_rounds=30, keyboard_epochs=2,
        ),
        multitask=_MultitaskSettings(
            seed=0, text_model_hub_id=None, max_length=128, batch_size=8, train_sentences=None, eval_sentences=None,
            train_on_validation=False, headline_layers=None, headline_epochs=3, compare_layers=2,
            fractions=(0.1, 0.25, 1.0), fraction_epochs=(10, 4, 2), seeds=(0, 1), soft_strengths=(0.0, 10.0),
            soft_fraction=0.1, cosine_every=4, lr=2e-4, compare_lr=3e-4, head_lr=3e-3, compare_head_lr=2e-3,
        ),
    ),
    "full": Profile(
        name="full",
        transfer=_TransferSettings(
            seeds=(0, 1, 2, 3, 4), text_per_class=(8, 32, 128, 512, 2048), text_val_size=None,
            text_model_hub_id=None, vision_per_class=(5, 30, 100, 300, 1000), vision_pool_per_class=1500,
            vision_val_per_class=500, vision_test_per_class=1000, vision_resolution=128, vision_low_resolution=64,
            scratch_epochs=30, scratch_max_steps=3000, finetune_steps=1500,
        ),
        fine_tuning=_FineTuningSettings(
            seeds=(0, 1, 2, 3, 4), train_sizes=(100, 400, 1600, 8000, 67349), multi_seed_sizes=1600,
            small_epochs=10, small_batch_size=16, small_lr=1e-4, lrs=(3e-3, 1e-4, 5e-5, 1e-3), headline_lr=5e-5,
            domain_train_size=300,
            val_size=None, curve_val_size=872, dev_size=872,
            text_model_hub_id="bert-base-uncased", max_length=128, batch_size=64, throughput_steps=50,
        ),
        multitask=_MultitaskSettings(
            seed=0, text_model_hub_id="bert-base-cased", max_length=160, batch_size=16, train_sentences=None,
            eval_sentences=None, train_on_validation=True, headline_layers=None, headline_epochs=20,
            compare_layers=None, fractions=(0.1, 0.25, 0.5, 1.0), fraction_epochs=(50, 30, 20, 10),
            seeds=(0, 1, 2, 3, 4), soft_strengths=(0.0, 0.01, 0.1, 1.0, 10.0), soft_fraction=0.1, cosine_every=2,
            lr=5e-5, compare_lr=5e-5, head_lr=1e-3, compare_head_lr=1e-3,
        ),
        federated=_FederatedSettings(
            bank_rounds=5, bank_local_epochs=5, train_per_class=None, test_per_class=None, resolution=28, hidden=128,
            n_clients=100, fraction=0.1, rounds=200, short_rounds=100, batch_size=50, central_epochs=10,
            target_accuracy=0.85, prox_mus=(0.001, 0.01, 0.1, 1.0), noise_multipliers=(0.25, 0.5, 1.0, 2.0),
            bank_folds=10, seeds=tuple(range(10)), keyboard_min_words=500, keyboard_rounds=100, keyboard_epochs=5,
        ),
    ),
}


def _shift_seeds(settings, shift: int):
    old = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name in ("seed", "seeds")}
    return replace(settings, **{k: v + shift if k == "seed" else tuple(s + shift for s in v) for k, v in old.items()})


def get_profile(name: str | None = None, seed: int | None = None) -> Profile:
    """The profile named ``name``, else ``$LEARNSTRAT_PROFILE``, else ``default``; every seed in it shifted by ``seed``,
    else ``$LEARNSTRAT_SEED``, else 0. Explained in 01, section "Set-up: run profiles"."""
    from_env = (os.environ.get("LEARNSTRAT_PROFILE") or "").strip()
    chosen = (name or from_env or "default").strip().lower()
    chosen_by = "PROFILE in this notebook" if name else "LEARNSTRAT_PROFILE" if from_env else "the default"
    if chosen not in _PROFILES:
        raise ValueError(f"Unknown profile {chosen!r}: choose one of {', '.join(_PROFILES)} (LEARNSTRAT_PROFILE).")
    if seed is None:
        raw = os.environ.get("LEARNSTRAT_SEED", "0").strip() or "0"
        if not raw.lstrip("-").isdigit():
            raise ValueError(f"LEARNSTRAT_SEED must be a whole number like 0, 1 or 2, got {raw!r}.")
        seed = int(raw)
    base = _PROFILES[chosen]
    shifted = {k: _shift_seeds(getattr(base, k), seed) for k in ("transfer", "fine_tuning", "multitask", "federated")}
    return replace(base, seed=seed, chosen_by=chosen_by, **shifted)
