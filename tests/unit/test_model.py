"""The shipped fine-tuned model: its labels, its verdicts, and its two runtimes agreeing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import SHIPPED_MODEL, Classifier
from models.artifact import ONNX_FILE, WEIGHTS_FILE
from models.classifier import ClassifierError
from models.data import corpus_hash, load_corpus
from models.onnx_runtime import OnnxClassifier, batch_size_for
from models.torch_runtime import TorchClassifier
from schemas import LABELS, Label

SHIPPED_META = json.loads((SHIPPED_MODEL / "relradar_model.json").read_text())


@pytest.fixture(scope="module")
def onnx_model() -> OnnxClassifier:
    return OnnxClassifier.load(SHIPPED_MODEL)


def test_artifact_labels_equal_the_enum_and_it_fits_the_budget() -> None:
    meta = json.loads((SHIPPED_MODEL / "relradar_model.json").read_text())
    assert meta["labels"] == [label.value for label in LABELS]
    total = sum(f.stat().st_size for f in SHIPPED_MODEL.iterdir())
    assert total <= 40 * 1024 * 1024
    assert (SHIPPED_MODEL / ONNX_FILE).exists() and (SHIPPED_MODEL / WEIGHTS_FILE).exists()
    assert meta["data_hash"] == corpus_hash(load_corpus()), "the model was trained on other data"
    assert 0.05 < meta["temperature"] < 10


def test_default_classifier_is_the_shipped_model() -> None:
    assert isinstance(Classifier.from_pretrained("default"), OnnxClassifier)


UNAMBIGUOUS = [
    (
        "@SkyHigh you are the worst airline on earth, everyone avoid them, never flying you again",
        Label.enemies,
    ),
    ("@SkyHigh hi, how do I change the seat on my booking for friday?", Label.basic_exchange),
    (
        "Hi Maria, sorry about the delay! Please DM us your booking reference and we'll look ^JT",
        Label.none,
    ),
    (
        "Flew with you for 15 years and defended you to everyone. After this week I'm done, "
        "moving to another airline.",
        Label.ex_friends,
    ),
    (
        "Feature idea for the app: let us export statements as CSV. Also the search breaks "
        "if you type an accent, repro: type é",
        Label.business_partner,
    ),
]


@pytest.mark.parametrize(("text", "label"), UNAMBIGUOUS)
def test_unambiguous_texts(onnx_model: OnnxClassifier, text: str, label: Label) -> None:
    [prediction] = onnx_model.predict([text])
    assert prediction.label is label, {k.value: round(v, 3) for k, v in prediction.scores.items()}
    assert abs(sum(prediction.scores.values()) - 1) < 1e-4


def test_onnx_and_torch_paths_agree_on_a_fixed_sample(onnx_model: OnnxClassifier) -> None:
    sample = [i.text for i in load_corpus() if i.split == "test"][::7][:200]
    fast = onnx_model.predict(sample)
    reference = TorchClassifier.load(SHIPPED_MODEL).predict(sample)
    agree = np.mean([a.label is b.label for a, b in zip(fast, reference, strict=True)])
    # Measured for the shipped model: 98.0% of labels agree, mean |p_int8 - p_fp32| = 0.0034
    # (with fixed, statically calibrated ranges it was 93.5% and 0.013; docs/model.md).
    assert agree >= 0.96
    diffs = [
        abs(a.scores[k] - b.scores[k]) for a, b in zip(fast, reference, strict=True) for k in LABELS
    ]
    assert float(np.mean(diffs)) < 0.01


def test_batch_order_and_length_do_not_change_answers(onnx_model: OnnxClassifier) -> None:
    texts = ["short one", "a much longer text " * 20, "@Brand hello?", "x"]
    together = onnx_model.predict(texts)
    alone = [onnx_model.predict([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a.label is b.label
        assert max(abs(a.scores[k] - b.scores[k]) for k in LABELS) < 1e-3
    assert onnx_model.predict([]) == []


def test_a_dynamic_graph_runs_one_text_at_a_time(onnx_model: OnnxClassifier) -> None:
    # The shipped graph takes each activation's int8 range from the tensor it is given; a
    # batch would share one range among its texts and their padding.
    assert onnx_model.quantization == "dynamic" and onnx_model.batch_size == 1
    assert onnx_model.version.endswith("-int8-dynamic")
    assert batch_size_for("dynamic", None) == batch_size_for("dynamic", 1) == 1
    with pytest.raises(ClassifierError, match="one text at a time"):
        batch_size_for("dynamic", 16)
    assert batch_size_for("static", None) == 16 and batch_size_for("static", 4) == 4
    with pytest.raises(ClassifierError):
        batch_size_for("static", 0)


def test_bench_refuses_a_batch_size_the_graph_cannot_take() -> None:
    from click.testing import CliRunner

    from stream_jobs.cli import main

    result = CliRunner().invoke(main, ["bench", "classify", "--texts", "8", "--batch-size", "16"])
    assert result.exit_code == 2 and "one text at a time" in result.output


def test_bench_classify_reports_both_paths_and_their_ratio() -> None:
    from click.testing import CliRunner

    from stream_jobs.cli import main

    result = CliRunner().invoke(
        main, ["bench", "classify", "--texts", "64", "--baseline-limit", "8", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["texts"] == 64 and report["plain_pipeline"]["texts"] == 8
    shipped, plain = report["shipped"]["msgs_per_s"], report["plain_pipeline"]["msgs_per_s"]
    assert shipped > 0 and plain > 0
    assert report["ratio"] == pytest.approx(shipped / plain, rel=0.02)


@pytest.mark.parametrize("quantize", ["dynamic", "static"])
def test_a_saved_artifact_records_its_quantization(tmp_path: Path, quantize: str) -> None:
    # The runtime's batch size follows the record, so it must be what the export did.
    from transformers import BertConfig

    from models.artifact import save_artifact
    from models.base import base_model_dir, load_tokenizer
    from models.net import MeanPoolClassifier

    config = BertConfig.from_pretrained(base_model_dir(), num_labels=len(LABELS))
    config.num_hidden_layers, config.intermediate_size = 1, 64
    tiny = MeanPoolClassifier(config)
    save_artifact(tiny, load_tokenizer(), tmp_path / "onnx", {"max_length": 32},
                  calibration_texts=["hello there", "a longer text than that"],
                  quantize=quantize)  # fmt: skip
    loaded = OnnxClassifier.load(tmp_path / "onnx", workers=1)
    assert loaded.meta["quantization"] == quantize
    assert loaded.batch_size == (1 if quantize == "dynamic" else 16)
    if quantize == "dynamic":  # the dev settings are fitted on the written graph's own logits
        from models.metrics import PROBLEM_BIAS_GRID
        from models.pipeline import calibrate_artifact

        dev = [i for i in load_corpus() if i.split == "dev"][:40]
        settings = calibrate_artifact(tmp_path / "onnx", dev)
        meta = json.loads((tmp_path / "onnx" / "relradar_model.json").read_text())
        assert meta["problem_bias"] == settings["problem_bias"] in PROBLEM_BIAS_GRID
        assert meta["temperature"] == settings["temperature"] > 0
        assert OnnxClassifier.load(tmp_path / "onnx").problem_bias == settings["problem_bias"]
    save_artifact(tiny, load_tokenizer(), tmp_path / "torch", {"max_length": 32}, onnx=False)
    meta = json.loads((tmp_path / "torch" / "relradar_model.json").read_text())
    assert meta["runtime"] == "torch" and "quantization" not in meta


def test_problem_bias_is_fitted_on_dev_macro_f1() -> None:
    from models.metrics import fit_problem_bias, with_problem_bias
    from schemas import PROBLEM_LABELS

    enemies, basic = LABELS.index(Label.enemies), LABELS.index(Label.basic_exchange)
    # Three enemies items the raw logits call basic_exchange by 0.25, and three clear items:
    # a bias of 0.3 or more wins them all, and the smallest such bias is chosen.
    logits = np.zeros((6, len(LABELS)), dtype=np.float32)
    logits[:3, basic], logits[:3, enemies] = 1.0, 0.75
    logits[3:, basic] = 2.0
    gold = np.array([enemies] * 3 + [basic] * 3)
    assert fit_problem_bias(logits, gold) == 0.3
    shifted = with_problem_bias(logits, 0.3)
    problem = [LABELS.index(label) for label in PROBLEM_LABELS]
    assert np.allclose(shifted[:, problem] - logits[:, problem], 0.3)
    assert np.allclose(np.delete(shifted, problem, axis=1), np.delete(logits, problem, axis=1))
    # Nothing to gain: no bias.
    assert fit_problem_bias(logits[3:], gold[3:]) == 0.0


def test_both_runtimes_apply_the_recorded_problem_bias(onnx_model: OnnxClassifier) -> None:
    from schemas import PROBLEM_LABELS

    text = "@SkyHigh hi, how do I change the seat on my booking for friday?"
    assert onnx_model.problem_bias == SHIPPED_META.get("problem_bias", 0.0)
    torch_model = TorchClassifier.load(SHIPPED_MODEL)
    assert torch_model.problem_bias == onnx_model.problem_bias
    for model in (onnx_model, torch_model):
        kept = model.problem_bias
        try:
            model.problem_bias = 100.0
            [prediction] = model.predict([text])
        finally:
            model.problem_bias = kept
        assert prediction.label in PROBLEM_LABELS


def test_eval_scores_the_whole_test_split_and_each_slice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import models.evaluate as evaluation
    from models.metrics import evaluate

    corpus = load_corpus()
    small = [i for i in corpus if i.split == "train"][::20]
    for slice_name in ("synthetic", "real"):
        small += [i for i in corpus if i.split == "test" and i.slice == slice_name][:30]
    monkeypatch.setattr(evaluation, "load_corpus", lambda: small)
    results = evaluation.run_eval(SHIPPED_MODEL)
    assert list(results) == ["synthetic", "real", "all"]
    test = [i for i in small if i.split == "test"]
    predicted = OnnxClassifier.load(SHIPPED_MODEL).predict([i.text for i in test])
    whole = evaluate([i.label for i in test], [p.label for p in predicted])
    shipped = results["all"]["fine-tuned int8 (shipped)"]
    assert shipped["macro_f1"] == pytest.approx(whole.macro_f1, abs=1e-4)
    assert "## Test split, all of it (60 items)" in capsys.readouterr().out
