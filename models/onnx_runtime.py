"""The shipped inference path: ONNX Runtime with int8 weights.

Texts are tokenized in one call (the Rust tokenizer batches them) and sorted by length; each
run's word embeddings are looked up from the base model's table (the artifact's ONNX graph
starts after that lookup) and go through the int8 encoder. The shipped graph quantizes its
activations dynamically, from the range of the tensor it is given, so it gets one text per run:
the range is then that text's own, with no padding in it, and a text's scores never depend on
its batch. A statically quantized graph (fixed ranges) runs in length-sorted batches of 16,
padded to their longest text. One single-threaded session per core, fed by a thread pool,
beats one session with a thread per core on these small matrices (about 1.3x on 2 cores
here), since the cores never wait for each other inside an operator; each session takes the
next run when it is free. Probabilities are ``softmax((logits + problem bias) / temperature)``,
both settings fitted on the dev split, so they are calibrated. The graph's second output, the
pooled embedding, feeds the treatment model's head (agent turns) in numpy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import ONNX_FILE, POOLED_OUTPUT, read_meta
from models.base import padded_feed, word_embeddings
from models.classifier import Classifier, ClassifierError, Prediction, predictions_from
from models.metrics import calibrated
from models.treatment import TreatmentModel
from schemas import LABELS


def session_options(threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def batch_size_for(quantization: str, requested: int | None) -> int:
    """Texts per run: 1 for a dynamically quantized graph, whose activation ranges would
    otherwise be shared with batch-mates and padding; 16 (or as asked) for a static one."""
    if quantization == "dynamic":
        if requested not in (None, 1):
            raise ClassifierError(
                f"batch size {requested}: a dynamically quantized graph runs one text at a time "
                "so that a text's scores never depend on the texts beside it"
            )
        return 1
    if requested is not None and requested < 1:
        raise ClassifierError(f"batch size must be at least 1, not {requested}")
    return requested or 16


class OnnxClassifier(Classifier):
    """int8 ONNX Runtime classifier over a saved relradar model directory."""

    def __init__(
        self,
        path: Path,
        sessions: list[Any],
        tokenizer: Any,
        meta: dict[str, Any],
        batch_size: int | None = None,
    ) -> None:
        self.path = path
        self.sessions = sessions
        self.tokenizer = tokenizer
        self.meta = meta
        self.quantization = str(meta.get("quantization", "static"))
        self.batch_size = batch_size_for(self.quantization, batch_size)
        self.temperature = float(meta.get("temperature", 1.0))
        self.problem_bias = float(meta.get("problem_bias", 0.0))
        self.embeddings = word_embeddings()
        self.treatment = TreatmentModel.load(path, meta)
        self._outputs = {output.name for output in sessions[0].get_outputs()}
        # A graph written for one unpadded text has no attention-mask input.
        self._inputs = {given.name for given in sessions[0].get_inputs()}
        self._pool = ThreadPoolExecutor(len(sessions)) if len(sessions) > 1 else None
        name, data = meta.get("name", "relradar-minilm"), str(meta.get("data_hash", ""))[:8]
        # Stored rows name the model that labelled them; the two quantizations label differently.
        kind = "int8" if self.quantization == "static" else f"int8-{self.quantization}"
        self._version = f"{name}-{data}-{kind}"

    @classmethod
    def load(
        cls, path: Path, workers: int | None = None, batch_size: int | None = None
    ) -> OnnxClassifier:
        """``workers`` single-threaded sessions (default: one per core); ``batch_size``
        defaults to what the graph's quantization allows (see ``batch_size_for``)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = read_meta(path)
        model = (path / ONNX_FILE).read_bytes()
        sessions = [
            ort.InferenceSession(model, session_options(1), providers=["CPUExecutionProvider"])
            for _ in range(workers or os.cpu_count() or 1)
        ]
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(meta.get("max_length", 128)))
        return cls(path, sessions, tokenizer, meta, batch_size)

    @property
    def version(self) -> str:
        return self._version

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(texts, "logits", len(LABELS))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The mean-pooled embedding each text's relationship head reads (texts x hidden)."""
        if POOLED_OUTPUT not in self._outputs:
            raise ClassifierError(f"{self.path / ONNX_FILE} has no '{POOLED_OUTPUT}' output")
        return self._run(texts, POOLED_OUTPUT, self.embeddings.shape[1])

    def input_mean(self, texts: Sequence[str]) -> np.ndarray:
        """The mean of each text's token embeddings: what the graph reads, averaged."""
        encodings = self.tokenizer.encode_batch(list(texts))
        return np.stack([self.embeddings[e.ids].mean(axis=0) for e in encodings])

    def treatment_features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """What the treatment head reads: the pooled and the mean input embedding."""
        return self.embed(texts), self.input_mean(texts)

    def predict_treatment(self, texts: Sequence[str]) -> list[Prediction]:
        if self.treatment is None:
            raise ClassifierError(f"{self.path} has no treatment model")
        return self.treatment.predictions(texts, self.treatment_features)

    def _run(self, texts: Sequence[str], output: str, width: int) -> np.ndarray:
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = np.argsort([len(i) for i in ids], kind="stable")
        out = np.zeros((len(texts), width), dtype=np.float32)
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        workers = len(self.sessions)
        # Each session pulls the next batch when it is free, longest first: with a fixed split,
        # a session slowed by other work on the machine left the other idle at the end.
        pending = iter(batches[::-1])
        lock = threading.Lock()

        # One unpadded text into a graph with no mask needs no padding or mask arrays; at about
        # 1 ms a text, building them per run (under the GIL) cost a few per cent of throughput.
        single = self.batch_size == 1 and "attention_mask" not in self._inputs

        def run(worker: int) -> None:
            session = self.sessions[worker]
            while True:
                with lock:
                    idx = next(pending, None)
                if idx is None:
                    return
                if single:
                    feed = {"inputs_embeds": self.embeddings[ids[idx[0]]][None]}
                else:
                    feed = padded_feed(ids, idx, self.embeddings)
                    feed = {name: value for name, value in feed.items() if name in self._inputs}
                out[idx] = session.run([output], feed)[0]

        if self._pool is None or len(batches) <= 1:
            for worker in range(workers):
                run(worker)
        else:
            list(self._pool.map(run, range(workers)))
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        return predictions_from(calibrated(self.logits(texts), self.temperature, self.problem_bias))
