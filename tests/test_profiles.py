"""Run profiles: one table, picked by name or LEARNSTRAT_PROFILE."""

from __future__ import annotations

from dataclasses import fields

import pytest

from learnstrat_helpers import profiles
from learnstrat_helpers.profiles import Profile, get_profile

PROFILE_NAMES = ("quick", "default", "full")


def test_the_three_profiles_exist():
    assert tuple(profiles._PROFILES) == PROFILE_NAMES
    for name in PROFILE_NAMES:
        profile = get_profile(name)
        assert isinstance(profile, Profile) and profile.name == name


def test_env_var_picks_the_profile(monkeypatch):
    monkeypatch.setenv("LEARNSTRAT_PROFILE", "full")
    assert get_profile().name == "full"
    monkeypatch.setenv("LEARNSTRAT_PROFILE", " Quick ")
    assert get_profile().name == "quick"
    assert get_profile().chosen_by == "LEARNSTRAT_PROFILE"
    monkeypatch.delenv("LEARNSTRAT_PROFILE")
    assert get_profile().name == "default" and get_profile().chosen_by == "the default"


def test_explicit_name_wins_over_env(monkeypatch):   # the notebooks' PROFILE cell
    monkeypatch.setenv("LEARNSTRAT_PROFILE", "full")
    assert get_profile("quick").name == "quick" and get_profile("quick").chosen_by == "PROFILE in this notebook"
    assert get_profile(None).name == "full"          # PROFILE = None keeps the environment's choice


@pytest.mark.parametrize("name", ["fast", "Defaults", "medium"])
def test_unknown_profile_lists_the_choices(monkeypatch, name):
    with pytest.raises(ValueError, match="quick, default, full"):
        get_profile(name)
    monkeypatch.setenv("LEARNSTRAT_PROFILE", name)
    with pytest.raises(ValueError, match="LEARNSTRAT_PROFILE"):
        get_profile()


def test_quick_is_strictly_smaller_than_default_smaller_than_full():
    quick, default, full = (get_profile(n).transfer for n in PROFILE_NAMES)
    for small, big in ((quick, default), (default, full)):
        assert len(small.seeds) < len(big.seeds)
        assert max(small.text_per_class) < max(big.text_per_class)
        assert max(small.vision_per_class) < max(big.vision_per_class)
        assert small.vision_pool_per_class < big.vision_pool_per_class
        assert small.vision_test_per_class < big.vision_test_per_class
        assert small.vision_resolution < big.vision_resolution
        assert small.vision_low_resolution < big.vision_low_resolution
        assert small.scratch_epochs < big.scratch_epochs
        assert small.scratch_max_steps < big.scratch_max_steps
        assert small.finetune_steps < big.finetune_steps
    assert max(quick.text_per_class) < max(default.text_per_class)
    assert len(quick.text_per_class) < len(default.text_per_class)
    assert quick.text_val_size is not None and quick.text_val_size < 872


def test_every_profile_is_internally_consistent():
    for name in PROFILE_NAMES:
        t = get_profile(name).transfer
        for f in ("seeds", "text_per_class", "vision_per_class"):
            values = getattr(t, f)
            assert len(values) >= 2 and list(values) == sorted(set(values)), (name, f)
        assert min(t.text_per_class) >= 1 and min(t.vision_per_class) >= 1
        # Every learning-curve subset is drawn from the pool, and the low resolution is the lower one.
        assert max(t.vision_per_class) <= t.vision_pool_per_class, name
        assert 8 <= t.vision_low_resolution < t.vision_resolution, name
        assert t.text_val_size is None or 1 <= t.text_val_size <= 872
        assert t.text_model_hub_id is None, "the offline-capable MiniLM is the only text model for now"


def test_default_text_sizes_span_8_to_512_and_include_32():
    sizes = get_profile("default").transfer.text_per_class
    assert 32 in sizes, "notebook 01 records a headline number at 32 sentences per class"
    assert min(sizes) == 8 and max(sizes) == 512
    assert 32 in get_profile("full").transfer.text_per_class


def test_profiles_are_frozen():
    profile = get_profile("quick")
    with pytest.raises(Exception):
        profile.transfer.seeds = (9,)  # type: ignore[misc]
    assert {f.name for f in fields(profile)} == {"name", "transfer", "fine_tuning", "federated", "multitask", "seed",
                                               "chosen_by"}
    with pytest.raises(Exception):
        profile.fine_tuning.train_sizes = (9,)  # type: ignore[misc]


def test_fine_tuning_quick_is_smaller_than_default_smaller_than_full():
    quick, default, full = (get_profile(n).fine_tuning for n in PROFILE_NAMES)
    for small, big in ((quick, default), (default, full)):
        assert len(small.seeds) < len(big.seeds)
        assert max(small.train_sizes) < max(big.train_sizes)
        for name in ("multi_seed_sizes", "small_epochs", "curve_val_size", "max_length", "batch_size", "throughput_steps"):
            assert getattr(small, name) < getattr(big, name), name
    assert quick.val_size is not None and quick.val_size < 872
    assert default.val_size is None and full.val_size is None


def test_fine_tuning_settings_are_consistent():
    for name in PROFILE_NAMES:
        t = get_profile(name).fine_tuning
        # default keeps three points within its time budget (the 400-sentence point runs in full and quick)
        enough = 3 if name == "default" else 4
        assert len(t.train_sizes) >= enough and list(t.train_sizes) == sorted(set(t.train_sizes)), name
        assert len(t.seeds) >= 2 and sum(s <= t.multi_seed_sizes for s in t.train_sizes) >= enough - 2, name
        assert t.multi_seed_sizes < t.train_sizes[-1], name
        # small sets need smaller batches for enough optimiser steps; never larger than the main batch size
        assert 1 <= t.small_batch_size <= t.batch_size and t.small_batch_size < t.train_sizes[0] * 2, name
        assert 0 < t.small_lr < 1e-2, name
    assert get_profile("default").fine_tuning.text_model_hub_id is None
    assert get_profile("full").fine_tuning.text_model_hub_id == "bert-base-uncased"
    d = get_profile("default").fine_tuning
    assert d.train_sizes[0] <= 128 and d.train_sizes[-1] >= 4000 and len(d.seeds) >= 3


def test_multitask_quick_is_smaller_than_default_smaller_than_full():
    quick, default, full = (get_profile(n).multitask for n in PROFILE_NAMES)
    assert quick.train_sentences is not None and quick.eval_sentences is not None
    assert default.train_sentences is None and default.eval_sentences is None, "default: all of CoNLL04"
    for small, big in ((quick, default), (default, full)):
        assert small.headline_epochs < big.headline_epochs and small.fraction_epochs[-1] < big.fraction_epochs[-1]
        assert len(small.seeds) < len(big.seeds)
        assert small.max_length <= big.max_length
    assert default.headline_layers is None, "the headline joint model uses the whole encoder"
    assert full.train_on_validation and not default.train_on_validation


def test_multitask_settings_are_consistent():
    for name in PROFILE_NAMES:
        m = get_profile(name).multitask
        assert m.fractions[-1] == 1.0 and list(m.fractions) == sorted(set(m.fractions)) and m.fractions[0] > 0, name
        assert m.soft_fraction in m.fractions, f"{name}: the soft sweep reuses the single-task run at soft_fraction"
        assert m.soft_strengths[0] == 0.0 and len(m.soft_strengths) >= 2, name
        assert list(m.soft_strengths) == sorted(set(m.soft_strengths)), name
        assert len(m.fraction_epochs) == len(m.fractions) and min(m.fraction_epochs) >= 1, name
        assert list(m.fraction_epochs) == sorted(m.fraction_epochs, reverse=True), f"{name}: smaller shares get more epochs"
        assert m.seeds[0] == m.seed and len(set(m.seeds)) == len(m.seeds), name
        assert m.cosine_every >= 1 and 0 < m.lr < m.head_lr and 0 < m.compare_lr < m.compare_head_lr, name
    assert get_profile("default").multitask.fractions == (0.1, 0.25, 1.0)
    assert len(get_profile("default").multitask.seeds) >= 2, "the smallest share is run with several seeds"


def test_federated_quick_is_smaller_than_default_smaller_than_full():
    quick, default, full = (get_profile(n).federated for n in PROFILE_NAMES)
    for small, big in ((quick, default), (default, full)):
        for name in ("bank_rounds", "rounds", "short_rounds", "central_epochs"):
            assert getattr(small, name) < getattr(big, name), name
        assert small.n_clients <= big.n_clients
        assert len(small.prox_mus) < len(big.prox_mus) and len(small.noise_multipliers) < len(big.noise_multipliers)
    assert quick.n_clients < default.n_clients == 100 and default.train_per_class is None, "notebook 04 promises 100 clients, all data"


def test_federated_settings_are_consistent():
    for name in PROFILE_NAMES:
        f = get_profile(name).federated
        assert 0 < f.fraction <= 1 and f.fraction * f.n_clients >= 2, name
        assert f.short_rounds <= f.rounds and f.bank_rounds >= 2, name
        assert 8 <= f.resolution <= 28 and 0 < f.target_accuracy < 1, name
        assert list(f.prox_mus) == sorted(set(f.prox_mus)) and min(f.prox_mus) > 0, name
        assert list(f.noise_multipliers) == sorted(set(f.noise_multipliers)), name


def test_learnstrat_seed_shifts_every_seed(monkeypatch):
    base = get_profile("default", seed=0)
    monkeypatch.setenv("LEARNSTRAT_SEED", "2")
    shifted = get_profile("default")
    assert shifted.seed == 2 and base.seed == 0
    assert shifted.transfer.seeds == tuple(s + 2 for s in base.transfer.seeds)
    assert shifted.multitask.seed == base.multitask.seed + 2
    assert shifted.fine_tuning.train_sizes == base.fine_tuning.train_sizes   # only seeds move
    monkeypatch.setenv("LEARNSTRAT_SEED", "two")
    with pytest.raises(ValueError, match="LEARNSTRAT_SEED must be a whole number"):
        get_profile("default")
