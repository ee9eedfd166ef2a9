"""The learning-curve measurement: which train items each share holds, and that every model
is scored on dev per slice, with a fake network standing in for the six-layer one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import models.train
from models.curve import (
    FUSION_WEIGHTS,
    format_curve,
    learning_curve,
    teacher_dev_logits,
    written_share,
)
from models.data import Item
from schemas import LABELS, Label
from stream_jobs.cli import main

WORDS = {label: f"{label.value} cue{n}" for n, label in enumerate(LABELS)}


def item(n: int, label: Label, split: str, slice_name: str, group: str) -> Item:
    # real dev items carry the next label's cue, so the word-based baseline gets them wrong
    cue = LABELS[(LABELS.index(label) + 1) % len(LABELS)] if (split, slice_name) == (
        "dev", "real") else label  # fmt: skip
    text = f"{WORDS[cue]} message number {n}"
    return Item(f"x:{n}", text, label, "src", slice_name, "social_post", "customer", "Acme",
                group, split)  # fmt: skip


def corpus() -> list[Item]:
    items = []
    for n in range(260):
        label = LABELS[n % len(LABELS)]
        split = "dev" if n % 5 == 0 else "train"
        slice_name = "real" if n % 4 == 0 else "synthetic"
        items.append(item(n, label, split, slice_name, f"g{n // 2}"))
    return items


def test_a_share_keeps_every_real_item_whole_groups_and_grows_by_nesting() -> None:
    train = [i for i in corpus() if i.split == "train"]
    written_groups = {i.group for i in train if i.slice == "synthetic"}
    quarter, half, whole = (written_share(train, f) for f in (0.25, 0.5, 1.0))
    for share in (quarter, half, whole):
        assert {i.id for i in train if i.slice == "real"} <= {i.id for i in share}
        kept = {i.group for i in share if i.slice == "synthetic"}
        assert all(i in share for i in train if i.slice == "synthetic" and i.group in kept)
    assert {i.id for i in quarter} < {i.id for i in half} < {i.id for i in whole}
    assert whole == train
    assert len({i.group for i in half if i.slice == "synthetic"}) == len(written_groups) // 2
    with pytest.raises(ValueError):
        written_share(train, 0.0)


def test_every_model_is_scored_on_dev_per_slice_with_the_lead_over_tfidf() -> None:
    seen: list[tuple[int, int]] = []

    def fit(share: list[Item], dev: list[Item], seed: int) -> np.ndarray:
        seen.append((len(share), seed))
        gold = np.eye(len(LABELS))[[LABELS.index(i.label) for i in dev]]
        noise = np.random.default_rng(seed).normal(size=gold.shape)
        return 10 * gold if seed == 1 else noise  # seed 1 is always right, seed 2 guesses

    rows = learning_curve(corpus(), [0.5, 1.0], [1, 2], fit)
    assert [seed for _, seed in seen] == [1, 2, 1, 2]
    assert seen[0][0] < seen[2][0]  # the half share is smaller than the whole
    assert rows[0]["written_train"] < rows[1]["written_train"]
    for row in rows:
        scores = row["scores"]
        assert set(scores) == {"tfidf", "network_seed1", "network_seed2", "networks_mean",
                               "networks_plus_tfidf"}  # fmt: skip
        assert scores["network_seed1"]["written_macro_f1"] == 1.0
        assert scores["network_seed1"]["real_accuracy"] == 1.0
        assert scores["network_seed2"]["written_macro_f1"] < 0.5
        assert scores["networks_plus_tfidf"]["weight"] in FUSION_WEIGHTS
        assert scores["tfidf"]["written_macro_f1"] > 0.9
        assert scores["tfidf"]["real_accuracy"] < 0.2
    text = format_curve(rows)
    assert "network_seed1" in text and "lead +" in text


@pytest.mark.parametrize("args", [["--fractions", "0,1"], ["--fractions", "a"], ["--seeds", "x"]])
def test_the_curve_command_rejects_bad_shares_and_seeds_before_training(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["model", "curve", *args])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_the_training_loops_epoch_lines_go_to_stderr_so_stdout_keeps_only_the_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds: list[int] = []

    def fake_train(share: list[Item], dev: list[Item], args: Any, progress: bool) -> Any:
        seeds.append(args.seed)
        print("epoch 1: loss 1.0")
        return SimpleNamespace(model=None)

    monkeypatch.setattr(models.train, "train", fake_train)
    monkeypatch.setattr(models.train, "load_tokenizer", lambda: None)
    monkeypatch.setattr(models.train, "predict_logits", lambda *a, **k: np.zeros((2, 13)))
    fit = teacher_dev_logits(models.train.TrainingArgs(seed=13))
    assert fit([], [], 14).shape == (2, 13)
    assert seeds == [14]
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 1" in captured.err
