"""Deterministic synthetic vectors for index mechanics (not image features): each id maps to
one fixed random unit vector, so a test can recompute what the catalog must hold."""

from __future__ import annotations

import zlib

import numpy as np


def vector_for(item_id: str, dim: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(item_id.encode()))
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def vectors_for(ids: list[str], dim: int) -> np.ndarray:
    return np.stack([vector_for(i, dim) for i in ids]) if ids else np.zeros((0, dim), np.float32)


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
