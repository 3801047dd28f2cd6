"""Contrastive fine-tuning of a sentence-transformers model on the CPU.

Training data is a set of groups: texts that share one resolution (an article and the
incidents resolved with it, or incidents with the same resolution). Each step draws a batch
of distinct groups and one (anchor, positive) pair from each, and minimises the symmetric
in-batch softmax loss (multiple negatives ranking): every other group's positive in the batch
is a negative, and no batch ever holds two pairs of one group, so no negative is a false one.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kb.errors import NotEnoughDataError

MIN_GROUPS = 4
MIN_ANCHORS = 100


@dataclass
class FineTuneSettings:
    epochs: float = 1.0
    batch_size: int = 64
    learning_rate: float = 3e-5
    scale: float = 20.0
    warmup_share: float = 0.1
    max_seconds: float = 1800.0
    seed: int = 13
    threads: int = 2


@dataclass
class FineTuneResult:
    steps: int
    seconds: float
    final_loss: float
    stopped_early: bool


def plan_steps(groups: dict[str, list[str]], settings: FineTuneSettings) -> tuple[int, int]:
    """(steps, batch size) for the groups. Raises NotEnoughDataError when too small."""
    usable = {g: texts for g, texts in groups.items() if len(texts) >= 2}
    anchors = sum(len(t) for t in usable.values())
    if len(usable) < MIN_GROUPS or anchors < MIN_ANCHORS:
        raise NotEnoughDataError(
            f"kb tune needs at least {MIN_ANCHORS} resolved incidents in at least {MIN_GROUPS} "
            f"resolutions that each have two or more of them (an article with its incidents, or "
            f"incidents sharing one resolution); the store has {anchors} in {len(usable)}"
        )
    batch = min(settings.batch_size, len(usable))
    steps = max(1, math.ceil(settings.epochs * anchors / batch))
    return steps, batch


def fine_tune(
    model_folder: Path,
    groups: dict[str, list[str]],
    output_folder: Path,
    settings: FineTuneSettings | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> FineTuneResult:
    """Train from ``model_folder`` and save the result to ``output_folder``.

    ``progress(step, steps, loss)`` is called after every step. Stops early, still saving
    the model, when ``max_seconds`` is reached. Raises NotEnoughDataError.
    """
    settings = settings or FineTuneSettings()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    usable = {g: texts for g, texts in groups.items() if len(texts) >= 2}
    steps, batch = plan_steps(groups, settings)
    model = SentenceTransformer(str(model_folder), device="cpu", local_files_only=True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01)
    warmup = max(1, int(steps * settings.warmup_share))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(settings.seed)
    keys = sorted(usable)
    began = time.monotonic()
    loss_value = float("nan")
    stopped = False
    done = 0
    for step in range(steps):
        chosen = rng.sample(keys, batch)
        anchors, positives = [], []
        for group in chosen:
            a, p = rng.sample(usable[group], 2)
            anchors.append(a)
            positives.append(p)
        emb_a = torch.nn.functional.normalize(
            model(model.preprocess(anchors))["sentence_embedding"], dim=-1
        )
        emb_p = torch.nn.functional.normalize(
            model(model.preprocess(positives))["sentence_embedding"], dim=-1
        )
        logits = emb_a @ emb_p.T * settings.scale
        target = torch.arange(len(chosen))
        loss = (
            torch.nn.functional.cross_entropy(logits, target)
            + torch.nn.functional.cross_entropy(logits.T, target)
        ) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_value = float(loss.item())
        done = step + 1
        if progress:
            progress(done, steps, loss_value)
        if time.monotonic() - began > settings.max_seconds:
            stopped = True
            break
    model.eval()
    output_folder.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(output_folder), create_model_card=False)
    return FineTuneResult(done, round(time.monotonic() - began, 1), round(loss_value, 4), stopped)
