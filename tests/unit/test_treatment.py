"""The treatment model and its data: labels, the shipped variant's choice, the TF-IDF part's
serialisation, verdicts on plain agent turns, runtimes agreeing, envelope routing, the lexicon's
agent cues, and the labelled files' validity and split."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import (
    SHIPPED_MODEL,
    Classifier,
    ClassifierError,
    LexiconClassifier,
    Prediction,
    treat_envelopes,
)
from models.artifact import POOLED_OUTPUT
from models.data import normalise
from models.onnx_runtime import OnnxClassifier
from models.tfidf import LinearTfidf, char_grams, fit_linear_tfidf, word_grams
from models.treatment import (
    HEAD_FILE,
    TFIDF_FILE,
    TREATMENT_PRECEDENCE,
    VARIANTS,
    TreatmentHead,
    TreatmentModel,
    mix,
    resolve_treatment,
)
from models.treatment_data import (
    TREATMENT_DIR,
    TreatmentDataError,
    TreatmentItem,
    data_hash,
    load_items,
    load_raw,
)
from schemas import LABELS, Envelope, Kind, Label, Role


@pytest.fixture(scope="module")
def onnx_model() -> OnnxClassifier:
    return OnnxClassifier.load(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def items() -> list[TreatmentItem]:
    return load_items()


def _meta() -> dict[str, Any]:
    return dict(json.loads((SHIPPED_MODEL / "relradar_model.json").read_text()))


def test_treatment_labels_equal_the_enum_and_match_the_data(items: list[TreatmentItem]) -> None:
    entry = _meta()["treatment"]
    assert entry["labels"] == [label.value for label in LABELS]
    assert entry["data_hash"] == data_hash(items), "the treatment model was trained on other data"
    assert 0.05 < entry["temperature"] < 10 and 0.05 < entry["head"]["temperature"] < 10
    with np.load(SHIPPED_MODEL / HEAD_FILE) as head:
        assert head["weight"].shape[0] == len(LABELS) == head["bias"].shape[0]
    tfidf = LinearTfidf.load(SHIPPED_MODEL / TFIDF_FILE)
    assert tfidf.coef.shape == (entry["tfidf"]["features"], len(LABELS))
    assert sum(f.stat().st_size for f in SHIPPED_MODEL.iterdir()) <= 40 * 1024 * 1024


def test_the_shipped_variant_is_the_dev_choice() -> None:
    entry = _meta()["treatment"]
    dev = entry["variants_dev"]
    assert list(dev) == list(VARIANTS)
    rank = {n: (f["dev_macro_f1"], f["dev_real_accuracy"], -f["dev_ece"]) for n, f in dev.items()}
    assert entry["variant"] == max(rank, key=rank.__getitem__)
    assert entry["head_weight"] == dev[entry["variant"]]["head_weight"]
    assert entry["metrics"]["test_real"]["n"] > 0 and entry["metrics"]["test_synthetic"]["n"] > 0


def test_a_head_fitted_on_another_encoder_is_left_out() -> None:
    meta = _meta()
    assert TreatmentHead.load(SHIPPED_MODEL, meta) is not None
    meta["treatment"]["encoder"] = "0" * 64
    assert TreatmentHead.load(SHIPPED_MODEL, meta) is None
    # A variant that reads the head is left out with it; TF-IDF alone does not need it.
    meta["treatment"]["head_weight"] = 0.5
    assert TreatmentModel.load(SHIPPED_MODEL, meta) is None
    meta["treatment"].update(variant="tfidf", head_weight=0.0)
    alone = TreatmentModel.load(SHIPPED_MODEL, meta)
    assert alone is not None and alone.head is None
    assert alone.predictions(["Please DM us your booking reference."], _no_encoder)
    meta["treatment"]["labels"] = ["fling"]
    with pytest.raises(ClassifierError, match="labels differ"):
        TreatmentModel.load(SHIPPED_MODEL, meta)
    with pytest.raises(ClassifierError, match="labels differ"):
        TreatmentHead.load(SHIPPED_MODEL, meta)


def _no_encoder(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    raise AssertionError("TF-IDF alone must not run the encoder")


def test_mixing_keeps_single_parts_exact_and_sums_to_one() -> None:
    rng = np.random.default_rng(3)
    p_head, p_tfidf = (rng.dirichlet(np.ones(len(LABELS)), size=5) for _ in range(2))
    assert mix(p_head, p_tfidf, 1.0, 0.7) is p_head and mix(p_head, p_tfidf, 0.0, 0.7) is p_tfidf
    mixed = mix(p_head, p_tfidf, 0.4, 0.8)
    assert np.allclose(mixed.sum(axis=1), 1)
    plain = mix(p_head, p_tfidf, 0.4, 1.0)
    assert np.allclose(plain, 0.4 * p_head + 0.6 * p_tfidf)


ODD = ["a b  c\tdé ÉTÉ!! x", "", "   ", "I'm ok-ish.. 😀 #tag @user_1 http://t.co/x", "x" * 9]


def test_tfidf_analyzers_match_scikit_learn(items: list[TreatmentItem]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(ngram_range=(1, 2)).build_analyzer()
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    for text in [i.text for i in items] + ODD:
        assert word_grams(text) == word(text), text
        assert char_grams(text) == char(text), text


def test_tfidf_matches_scikit_learn_and_round_trips_exactly(
    items: list[TreatmentItem], tmp_path: Path
) -> None:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels = [i.text for i in items][::5], [LABELS.index(i.label) for i in items][::5]
    word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    char.fit(texts)

    def features(batch: list[str]) -> Any:
        return hstack([word.transform(batch), char.transform(batch)]).tocsr()

    reference = LogisticRegression(C=10.0, max_iter=3000).fit(features(texts), labels)
    model = LinearTfidf.from_sklearn(word, char, reference)
    sample = [i.text for i in items][1::40] + ODD
    got = model.logits(sample)
    assert (
        np.abs(got[:, reference.classes_] - reference.decision_function(features(sample))).max()
        < 1e-4
    )
    model.save(tmp_path / "t.npz")
    again = LinearTfidf.load(tmp_path / "t.npz")
    assert again.word_vocabulary == model.word_vocabulary
    assert again.char_vocabulary == model.char_vocabulary
    for name in ("idf", "coef", "intercept"):
        assert np.array_equal(getattr(again, name), getattr(model, name)), name
    assert np.array_equal(again.logits(sample), got)
    assert np.array_equal(np.vstack([model.logits([t]) for t in sample]), got), "batch-invariant"
    shipped = LinearTfidf.load(SHIPPED_MODEL / TFIDF_FILE)
    shipped.save(tmp_path / "s.npz")
    assert np.array_equal(
        LinearTfidf.load(tmp_path / "s.npz").logits(sample), shipped.logits(sample)
    )


def test_tfidf_fit_picks_its_settings_on_dev(items: list[TreatmentItem]) -> None:
    texts, y = [i.text for i in items][::3], np.array([LABELS.index(i.label) for i in items][::3])
    train = np.arange(len(texts)) % 4 != 0
    model, search = fit_linear_tfidf(texts, y, train, ~train, np.zeros(len(texts), bool),
                                     c_grid=(0.01, 10.0), real_weights=(1.0,))  # fmt: skip
    assert [g["C"] for g in search["grid"]] == [0.01, 10.0]
    assert search["dev_macro_f1"] == max(g["dev_macro_f1"] for g in search["grid"])
    assert search["features"] == model.coef.shape[0] == model.idf.shape[0]
    with pytest.raises(ClassifierError, match="missing"):
        LinearTfidf.load(Path("/nonexistent/t.npz"))


UNAMBIGUOUS = [
    ("Please DM us your booking reference.", Label.basic_exchange),
    ("@maria_k DM us your booking reference and we'll take a look ^JT", Label.basic_exchange),
    (
        "Love this idea! I've passed it to our product team, keep them coming",
        Label.business_partner,
    ),
    (
        "Maybe read the terms before blaming us on Twitter. We won't be responding further.",
        Label.enemies,
    ),
    (
        "You can cancel, but the early termination fee of $240 for the remaining contract "
        "months will apply.",
        Label.captive,
    ),
    ("Agent Sam has joined the chat.", Label.none),
    ("Thank you for 15 years with us, Helen! Your loyalty means the world.", Label.marriage),
    (
        "I'm so sorry for your loss. I've waived the fee and I'll call you tomorrow to check "
        "everything's sorted.",
        Label.best_friends,
    ),
]


@pytest.mark.parametrize(("text", "label"), UNAMBIGUOUS)
def test_unambiguous_agent_turns(onnx_model: OnnxClassifier, text: str, label: Label) -> None:
    [prediction] = onnx_model.predict_treatment([text])
    assert prediction.label is label, {k.value: round(v, 3) for k, v in prediction.scores.items()}
    assert set(prediction.scores) == set(LABELS)
    assert abs(sum(prediction.scores.values()) - 1) < 1e-4


def test_onnx_and_torch_treatment_paths_agree(
    onnx_model: OnnxClassifier, items: list[TreatmentItem]
) -> None:
    from models.torch_runtime import TorchClassifier

    sample = [i.text for i in items if i.split == "test"][::2][:150]
    fast = onnx_model.predict_treatment(sample)
    reference = TorchClassifier.load(SHIPPED_MODEL).predict_treatment(sample)
    # Measured for the shipped model: 99.3% of labels agree, mean |p_int8 - p_fp32| = 0.001.
    assert np.mean([a.label is b.label for a, b in zip(fast, reference, strict=True)]) >= 0.95
    diffs = [abs(a.scores[k] - b.scores[k]) for a, b in zip(fast, reference, strict=True)
             for k in LABELS]  # fmt: skip
    assert float(np.mean(diffs)) < 0.02


def test_treatment_is_batch_invariant(onnx_model: OnnxClassifier) -> None:
    texts = [t for t, _ in UNAMBIGUOUS] + ["ok", "a much longer reply " * 25]
    together = onnx_model.predict_treatment(texts)
    assert onnx_model.predict_treatment(texts) == together, "the same batch, the same scores"
    for text, joint in zip(texts, together, strict=True):
        [alone] = onnx_model.predict_treatment([text])
        assert alone.label is joint.label
        assert max(abs(alone.scores[k] - joint.scores[k]) for k in LABELS) < 1e-3
    assert onnx_model.predict_treatment([]) == []
    assert onnx_model.embed(["hello"]).shape == (1, onnx_model.embeddings.shape[1])
    assert POOLED_OUTPUT in onnx_model._outputs


def _envelope(n: int, role: Role, text: str) -> Envelope:
    return Envelope(id=f"t:{n}", source="test", kind=Kind.support_turn, brand="Acme",
                    conversation_id="c1", turn_index=n, role=role, text=text,
                    created_at=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip


@pytest.mark.parametrize("kind", ["onnx", "lexicon"])
def test_treat_envelopes_gives_none_to_customers(onnx_model: OnnxClassifier, kind: str) -> None:
    classifier = onnx_model if kind == "onnx" else LexiconClassifier()
    envelopes = [
        _envelope(0, Role.customer, "You should add a dark mode, it would help a lot"),
        _envelope(1, Role.agent, "Great idea! I've sent it to our design team as a suggestion"),
        _envelope(2, Role.customer, "thanks!"),
        _envelope(3, Role.agent, "Agent Sam has left the chat."),
    ]
    result = treat_envelopes(classifier, envelopes)
    assert result[0] is None and result[2] is None
    assert result[1] is not None and result[1].label is Label.business_partner
    assert result[3] is not None and result[3].label is Label.none
    assert treat_envelopes(classifier, envelopes[::2]) == [None, None]


def test_lexicon_agent_cues_and_precedence() -> None:
    lexicon = LexiconClassifier()
    cases = {
        "Sorry to see you go after 8 years. Note the early termination fee of $90 applies.": (
            Label.captive  # lock-in outranks the farewell
        ),
        "Your wish is our command, esteemed guest": Label.master_servant,
        "Pls DM us your order number and we'll check ^KL": Label.basic_exchange,
        "[System] Chat transferred to billing": Label.none,
        "https://t.co/abc": Label.none,
    }
    for text, label in cases.items():
        [prediction] = lexicon.predict_treatment([text])
        assert prediction.label is label, text
        assert abs(sum(prediction.scores.values()) - 1) < 1e-9
    assert TREATMENT_PRECEDENCE[0] is Label.enemies and set(TREATMENT_PRECEDENCE) == set(LABELS)
    assert resolve_treatment({Label.buddies, Label.business_partner}) is Label.business_partner
    assert resolve_treatment(set()) is Label.none


class _NoHead(Classifier):
    @property
    def version(self) -> str:
        return "no-head-1"

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return []


def test_classifiers_without_a_head_say_so() -> None:
    with pytest.raises(ClassifierError, match="no-head-1 has no treatment head"):
        _NoHead().predict_treatment(["hello"])


def test_data_files_parse_with_valid_labels_and_enough_items(items: list[TreatmentItem]) -> None:
    raw = load_raw()
    assert len({i.id for i in raw}) == len(raw)
    synthetic = Counter(i.label for i in items if i.source == "synthetic")
    assert sum(synthetic.values()) >= 2000
    assert all(synthetic[label] >= 100 for label in LABELS), synthetic
    assert sum(1 for i in items if i.source == "real") >= 400
    assert {i.split for i in items} == {"train", "dev", "test"}
    assert len({i.channel for i in items if i.source == "synthetic"}) == 5
    assert len({i.industry for i in items if i.source == "synthetic"}) >= 15


def test_splits_are_disjoint_by_id_group_and_text(items: list[TreatmentItem]) -> None:
    by_split: dict[str, set[str]] = defaultdict(set)
    groups: dict[str, set[str]] = defaultdict(set)
    texts: dict[str, set[str]] = defaultdict(set)
    for item in items:
        by_split[item.split].add(item.id)
        groups[item.group].add(item.split)
        texts[normalise(item.text)].add(item.split)
    assert sum(len(ids) for ids in by_split.values()) == len(items)
    assert all(len(splits) == 1 for splits in groups.values())
    assert all(len(splits) == 1 for splits in texts.values())
    assert items == load_items(), "the split must be a pure function of the files"


def test_bad_rows_are_clear_errors(tmp_path: Path) -> None:
    good = (TREATMENT_DIR / "real_twcs.jsonl").read_text().splitlines()[0]
    bad = {
        '{"id": "x", "text": "hi", "label": "pals", "source": "real", "dataset": "twcs"}': (
            "unknown label"
        ),
        '{"id": "x", "text": "hi", "label": "none", "source": "synthetic"}': "industry",
        "not json": "not JSON",
        good: "duplicate id",
    }
    for line, reason in bad.items():
        (tmp_path / "a.jsonl").write_text(good + "\n" + line + "\n")
        with pytest.raises(TreatmentDataError, match=reason) as error:
            load_raw(tmp_path)
        assert "a.jsonl:2" in str(error.value)
