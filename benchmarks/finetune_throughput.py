"""Fine-tuning throughput: the helper loop (length-grouped, dynamic padding) vs the Hugging Face Trainer
with its defaults, on the same model (MiniLM-L6), data (SST-2 training sentences) and batch size.

Writes benchmarks/finetune_throughput.json. Real (non-padding) tokens per second; each measurement runs
``--steps`` optimiser steps after ``--warmup`` untimed ones, in the same process, alternating the two
``--repeats`` times. Usage: python benchmarks/finetune_throughput.py [--steps 40] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from learnstrat_helpers import assets, datasets, finetuning as ft

OUT = Path(__file__).resolve().parent / "finetune_throughput.json"


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def train_step(model, batch, optimizer, scheduler, max_grad_norm=1.0):
    """Notebook 02's step: forward, loss, backward, clip, step, schedule; logs the real tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = nn.functional.cross_entropy(logits, batch["labels"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
    optimizer.step()
    scheduler.step()
    return {"loss": loss.item(), "tokens": batch["attention_mask"].sum().item()}


def helper_tokens_per_s(source, data, steps, batch_size):
    model = ft.load_classifier(source, seed=0).to(DEVICE)
    history = ft.fine_tune(model, data, train_step, batch_size=batch_size, lr=5e-5, max_steps=steps,
                           show_progress=False)
    return history.series("tokens")[1].sum() / history.seconds


def trainer_tokens_per_s(source, data, tokenizer, steps, batch_size):
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch_size, max_steps=steps,
                             learning_rate=5e-5, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
                             include_num_input_tokens_seen="non_padding")
    train_set = Dataset.from_dict({"input_ids": data.input_ids, "labels": data.labels.tolist()})
    trainer = Trainer(model=ft.load_classifier(source, seed=0), args=args, train_dataset=train_set,
                      data_collator=DataCollatorWithPadding(tokenizer))
    start = time.perf_counter()
    trainer.train()
    return trainer.state.num_input_tokens_seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("LEARNSTRAT_PROGRESS", "0")
    from transformers import AutoTokenizer

    source = assets.resolve_text_model()
    sst2 = datasets.load_sst2(("train",))
    order = np.random.default_rng(0).permutation(len(sst2["train"]))[: args.steps * args.batch_size]
    train = sst2["train"].select(order)
    tokenizer = AutoTokenizer.from_pretrained(source)
    data = ft.tokenize(train["sentence"], train["label"], tokenizer, max_length=args.max_length)
    helper_tokens_per_s(source, data, 3, args.batch_size)  # warm-up: first-call allocations
    helper, trainer = [], []
    for _ in range(args.repeats):
        helper.append(helper_tokens_per_s(source, data, args.steps, args.batch_size))
        trainer.append(trainer_tokens_per_s(source, data, tokenizer, args.steps, args.batch_size))
        print(f"helper {helper[-1]:,.0f} tokens/s   Trainer {trainer[-1]:,.0f} tokens/s", flush=True)
    report = {
        "model": "all-MiniLM-L6-v2", "batch_size": args.batch_size, "steps": args.steps, "max_length": args.max_length,
        "sentences": len(data), "mean_tokens": float(data.lengths.mean()),
        "device": DEVICE, "helper_tokens_per_s": float(np.median(helper)),
        "trainer_tokens_per_s": float(np.median(trainer)),
        "ratio": float(np.median(helper) / np.median(trainer)),
        "runs": {"helper": helper, "trainer": trainer},
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"ratio helper/Trainer: {report['ratio']:.2f}x -> {OUT}")


if __name__ == "__main__":
    main()
