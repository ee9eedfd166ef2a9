"""The student step: which unlabelled texts it may learn from, how it is cut from the teacher,
its loss, and one tiny end-to-end run through the shared training loop."""

from __future__ import annotations

import itertools

import pytest
import torch

from models.data import Item, split_of
from models.distill import (
    DistillArgs,
    distil,
    distillation_loss,
    student_from,
    unlabelled_pool,
)
from models.net import MeanPoolClassifier
from models.train import TrainingArgs
from schemas import LABELS, Label


def tiny(layers: int = 3) -> MeanPoolClassifier:
    from transformers import BertConfig

    from models.base import base_model_dir

    config = BertConfig.from_pretrained(base_model_dir(), num_labels=len(LABELS))
    config.hidden_size, config.num_attention_heads = 32, 2
    config.num_hidden_layers, config.intermediate_size = layers, 64
    torch.manual_seed(0)
    return MeanPoolClassifier(config).eval()


def ids_in(split: str, count: int) -> list[str]:
    found = (f"airline:{n}" for n in itertools.count() if split_of("real", f"airline:{n}") == split)
    return list(itertools.islice(found, count))


def item(rid: str, text: str, split: str, label: Label = Label.enemies) -> Item:
    return Item(rid, text, label, "real_airline", "real", "social_post", "customer", "United",
                rid, split)  # fmt: skip


def test_the_pool_keeps_only_new_train_side_texts_that_copy_no_held_out_item() -> None:
    train_ids, dev_ids = ids_in("train", 6), ids_in("dev", 2)
    held = "@united lost my bag again and nobody at the desk would even look up from the phone"
    items = [
        item(train_ids[0], "@united already labelled, this one", "train"),
        item(dev_ids[0], held, "dev"),
    ]
    candidates = [
        (train_ids[0], "@united already labelled, this one"),  # labelled: out
        (dev_ids[1], "@united a text whose group is in dev"),  # split: out
        (train_ids[1], held.upper() + "!!"),  # the same words as a dev item: out
        (train_ids[2], held + " smh"),  # a near copy of it: out
        (train_ids[4], "@delta my flight was fine, thanks for the snacks"),
        (train_ids[3], "@Delta  my flight was FINE, thanks for the snacks!"),  # a copy: one kept
        (train_ids[5], "@jetblue when does the sale start"),
    ]
    pool = unlabelled_pool(candidates, items)
    assert pool == sorted(pool, key=lambda t: [c[1] for c in sorted(candidates)].index(t))
    assert len(pool) == 2
    assert "@jetblue when does the sale start" in pool
    assert sum("snacks" in text for text in pool) == 1


def test_the_student_keeps_the_chosen_layers_and_leaves_the_teacher_whole() -> None:
    teacher = tiny(3)
    student = student_from(teacher, (0, 2))
    assert len(student.bert.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    assert len(teacher.bert.encoder.layer) == 3 and teacher.config.num_hidden_layers == 3
    kept = student.bert.encoder.layer[1].output.dense.weight
    assert torch.equal(kept, teacher.bert.encoder.layer[2].output.dense.weight)
    assert kept.data_ptr() != teacher.bert.encoder.layer[2].output.dense.weight.data_ptr()
    with pytest.raises(ValueError, match="3 layers"):
        student_from(teacher, (0, 3))


def test_the_distillation_loss_is_zero_only_when_the_student_matches_the_teacher() -> None:
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    assert torch.allclose(distillation_loss(teacher, teacher, 2.0), torch.zeros(2), atol=1e-6)
    moved = distillation_loss(teacher.flip(-1), teacher, 2.0)
    assert moved.shape == (2,) and bool((moved > 0).all())


@pytest.mark.parametrize(
    "bad", [{"layers": (2, 0)}, {"layers": ()}, {"alpha": 1.5}, {"temperature": 0}]
)
def test_distillation_arguments_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid distillation arguments"):
        DistillArgs(**bad)  # type: ignore[arg-type]


def test_a_tiny_student_trains_on_labelled_and_unlabelled_texts() -> None:
    labels = [Label.enemies, Label.buddies, Label.basic_exchange, Label.none]
    texts = [f"@brand message number {n} " + "word " * (n % 5) for n in range(12)]
    train_items = [item(f"airline:t{n}", t, "train", labels[n % 4]) for n, t in enumerate(texts)]
    dev_items = [item(f"airline:d{n}", f"@brand dev {n}", "dev", labels[n % 4]) for n in range(4)]
    unlabelled = [f"@brand an unlabelled customer text {n}" for n in range(10)]
    args = TrainingArgs(epochs=1, batch_size=4, bf16=False, threads=1)
    student = DistillArgs(layers=(1,), epochs=2)
    result = distil(tiny(3), train_items, dev_items, unlabelled, args, student, progress=False)
    assert result.model.config.num_hidden_layers == 1
    assert len(result.history) == 2  # the student's own epochs, not the teacher's
    assert all(h["train_loss"] > 0 for h in result.history)
