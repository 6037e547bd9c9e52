"""Notebook 02's learning-rate check, on the development split carved from SST-2 train (never on GLUE
validation, which 02 reports). Run once; the chosen values live in learnstrat_helpers/profiles.py.

    LEARNSTRAT_PROFILE=default python scripts/sweep_02_dev.py              # about 10 min on an idle 2-core CPU
    LEARNSTRAT_PROFILE=default python scripts/sweep_02_dev.py --headline   # full FT at the largest size, ~3 min

``--headline`` checks the headline run's learning rate (full fine-tuning, one epoch at the largest size); set
``LEARNSTRAT_SEED`` to repeat it with another seed's dev split, training order and initial head.
"""

import argparse
import sys

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer

from learnstrat_helpers import assets, datasets, finetuning as ft, training
from learnstrat_helpers.profiles import get_profile

settings = get_profile().fine_tuning
source = assets.resolve_text_model(settings.text_model_hub_id)
tokenizer = AutoTokenizer.from_pretrained(source)
sst2 = datasets.load_sst2(("train",))
sentences, labels = list(sst2["train"]["sentence"]), np.array(sst2["train"]["label"])
seed = settings.seeds[0]
dev_rows = np.random.default_rng(seed).choice(len(sentences), settings.dev_size, replace=False)  # as in 02
rest = np.setdiff1d(np.arange(len(sentences)), dev_rows)
order = rest[np.random.default_rng(seed).permutation(len(rest))]
dev = ft.tokenize([sentences[i] for i in dev_rows], labels[dev_rows], tokenizer, max_length=settings.max_length)


def step(model, batch, optimizer, scheduler):   # the notebook's train_step, without its bookkeeping
    loss = nn.functional.cross_entropy(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                       batch["labels"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    scheduler.step()
    return {"loss": loss.item()}


def dev_accuracy(prepare, n, lr, epochs=1, batch_size=settings.batch_size):
    train = ft.tokenize([sentences[i] for i in order[:n]], labels[order[:n]], tokenizer, max_length=settings.max_length)
    model = prepare(ft.load_classifier(source, seed=seed))
    ft.fine_tune(model, train, step, epochs=epochs, lr=lr, layer_decay=0.9, batch_size=batch_size, seed=seed,
                 show_progress=False)
    return (ft.predict_proba(model, dev).argmax(1) == dev.labels).float().mean().item()


parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--headline", action="store_true", help="only the headline run's learning rate")
if parser.parse_args().headline:
    n = settings.train_sizes[-1]
    for lr in (1e-4, 2e-4, 3e-4):
        print(f"full          n={n} lr={lr:g} seed={seed}: dev accuracy {dev_accuracy(lambda m: m, n, lr):.3f}",
              flush=True)
    sys.exit(0)

grid = {  # strategy: (prepare, learning rates tried), one epoch at the strategies' size
    "frozen (k=0)": (lambda m: ft.unfreeze_top_layers(m, 0), (3e-3, 1e-2)),
    "top-2": (lambda m: ft.unfreeze_top_layers(m, 2), (1e-4, 3e-4)),
    "full": (lambda m: m, (1e-4, 2e-4)),
    "LoRA r=8": (lambda m: ft.add_lora(m, r=8), (1e-3, 3e-3)),
}
n = settings.train_sizes[-2]
for name, (prepare, lrs) in grid.items():
    for lr in lrs:
        print(f"{name:13} n={n} lr={lr:g}: dev accuracy {dev_accuracy(prepare, n, lr):.3f}", flush=True)
n_small = settings.multi_seed_sizes   # the small sizes: batch and epochs as in 02's learning curve
for lr in (1e-4, 2e-4):
    acc = dev_accuracy(lambda m: m, n_small, lr, epochs=max(1, round(settings.small_epochs * settings.train_sizes[0]
                                                                      / n_small)), batch_size=settings.small_batch_size)
    print(f"full          n={n_small} lr={lr:g} (batch {settings.small_batch_size}): dev accuracy {acc:.3f}", flush=True)
sys.exit(0)
