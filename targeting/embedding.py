"""What targeting needs from a model, as a protocol: text and example-image embeddings.

Targeting never imports a model. ``serving`` hands it an object with these methods (backed by
``vision.clip_embedder.ClipEmbedder``); tests hand it a tiny deterministic fake, so matching is
testable without any weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ConceptEmbedder(Protocol):
    """Embeds concepts into the same space as ``FrameFacts.embedding``.

    Both methods return ``(N, D)`` float32 arrays with L2-normalized rows, ``D == dim``.
    """

    @property
    def dim(self) -> int: ...

    @property
    def model_id(self) -> str:
        """Names model and weights, so cached concept matrices are rebuilt when either changes."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_image_files(self, paths: Sequence[Path]) -> np.ndarray: ...
