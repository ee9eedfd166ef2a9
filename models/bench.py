"""``relradar bench classify``: the shipped inference path against a plain pipeline.

Both run in the same process on the same texts: the shipped int8 ONNX path (batch
tokenization, length-sorted runs, no padding for a dynamic graph) and a plain ``transformers``
text-classification pipeline over the same fine-tuned weights in fp32, one text at a time. It
reports both throughputs, their ratio, and how often the two agree on the label.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.classifier import SHIPPED_MODEL


def bench_classify(
    texts: Sequence[str],
    model_dir: Path = SHIPPED_MODEL,
    baseline_limit: int | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer, pipeline

    from models.artifact import load_torch_model
    from models.onnx_runtime import OnnxClassifier

    texts = list(texts)
    shipped = OnnxClassifier.load(model_dir, batch_size=batch_size)
    shipped.predict(texts[:64])  # warm-up: first-run allocations are not throughput
    began = time.perf_counter()
    fast = shipped.predict(texts)
    fast_seconds = time.perf_counter() - began
    tokens = sum(len(e.ids) for e in shipped.tokenizer.encode_batch(texts)) / len(texts)

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the pipeline warns about any non-built-in model class
    torch.set_num_threads(os.cpu_count() or 1)
    plain = pipeline(
        "text-classification",
        model=load_torch_model(model_dir),
        tokenizer=AutoTokenizer.from_pretrained(str(model_dir)),
        device=-1,
        truncation=True,
        max_length=int(shipped.meta.get("max_length", 128)),
    )
    subset = texts[:baseline_limit] if baseline_limit else texts
    plain(subset[:16])
    began = time.perf_counter()
    slow = [
        plain(t, batch_size=1)[0]["label"]
        for t in tqdm(subset, desc="plain pipeline", disable=not progress)
    ]
    slow_seconds = time.perf_counter() - began
    agree = sum(a.label.value == b for a, b in zip(fast, slow, strict=False)) / len(slow)
    fast_rate = len(texts) / fast_seconds
    slow_rate = len(subset) / slow_seconds
    return {
        "texts": len(texts),
        "mean_tokens": round(tokens, 1),
        "cores": os.cpu_count(),
        "shipped": {
            "path": f"onnxruntime int8 ({shipped.quantization} activation ranges)",
            "batch_size": shipped.batch_size,
            "msgs_per_s": round(fast_rate, 1),
            "seconds": round(fast_seconds, 2),
        },
        "plain_pipeline": {
            "path": "transformers pipeline fp32, batch size 1",
            "texts": len(subset),
            "msgs_per_s": round(slow_rate, 1),
            "seconds": round(slow_seconds, 2),
        },
        "ratio": round(fast_rate / slow_rate, 2),
        "label_agreement": round(agree, 4),
    }
