"""Attribute tags: zero-shot colour / pattern / style / material tags from a small vocabulary.

For each item, each attribute (``colour``, ``pattern``, ...) of its category's vocabulary is
scored by a text-capable semantic model: the item image's vector against one prompt per value
("a photo of a red dress"), softmax over the attribute's values. The best value becomes a tag
``"attribute:value"`` when it is clearly the best (probability at least ``min_probability``);
an attribute the model cannot tell is left untagged rather than guessed. Tags are stored with
the item (``CatalogItem.tags``) and filterable (``CatalogFilter(tags=...)``).

The scoring is split from the model: ``tags_from_scores`` takes a precomputed (images x
prompts) similarity matrix, so it is testable and reusable with any model; ``zero_shot_tags``
wires it to a model with ``embed_texts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

DEFAULT_MIN_PROBABILITY = 0.6
"""The best value of an attribute is kept only when its softmax probability reaches this."""

DEFAULT_TEMPERATURE = 0.01
"""Softmax temperature on cosine similarities (CLIP's learned logit scale is ~100 = 1/0.01)."""

_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
            "white", "grey", "beige")  # fmt: skip
_PATTERNS = ("solid", "striped", "checked", "floral", "polka dot", "animal print")
_APPAREL = {
    "colour": _COLOURS,
    "pattern": _PATTERNS,
    "style": ("loose fit", "slim fit", "casual", "formal", "sporty", "vintage"),
    "material": ("cotton", "denim", "leather", "wool", "silk", "knit"),
}
_HOME = {
    "colour": _COLOURS,
    "pattern": _PATTERNS,
    "style": ("modern", "rustic", "minimalist", "vintage", "industrial"),
    "material": ("wood", "metal", "glass", "fabric", "ceramic", "plastic"),
}

DEFAULT_VOCABULARY: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "": {"colour": _COLOURS, "pattern": _PATTERNS},  # any category not listed
    **{c: _APPAREL for c in ("dress", "shirt", "trousers", "jacket", "shoes", "bag", "apparel")},
    **{c: _HOME for c in ("furniture", "lamp", "rug", "decor", "home")},
}
"""Per category: attribute -> values. The ``""`` entry applies to categories not listed."""


class TextModel(Protocol):
    """The text side of the semantic model: texts -> (T, D) L2-normalized float32."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class TagVocabulary:
    """Attributes and their values for each category, and the prompt that describes a value."""

    attributes: Mapping[str, Mapping[str, tuple[str, ...]]] = field(
        default_factory=lambda: DEFAULT_VOCABULARY
    )
    template: str = "a photo of a {value} {noun}"

    def for_category(self, category: str) -> Mapping[str, tuple[str, ...]]:
        return self.attributes.get(category, self.attributes.get("", {}))

    def prompts(self, category: str) -> list[tuple[str, str]]:
        """``(tag, prompt)`` for every value of the category's attributes, attribute order."""
        noun = category or "product"
        return [
            (f"{attr}:{value}", self.template.format(value=value, noun=noun))
            for attr, values in self.for_category(category).items()
            for value in values
        ]


def tags_from_scores(
    scores: np.ndarray,
    tags: Sequence[str],
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    min_probability: float = DEFAULT_MIN_PROBABILITY,
) -> list[tuple[str, ...]]:
    """Tags per image from an (N, T) cosine-similarity matrix against ``tags`` (``attr:value``).

    Values compete only with values of the same attribute (softmax per attribute); at most one
    tag per attribute per image, and only when its probability reaches ``min_probability``.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(tags):
        raise ValueError(f"scores must be (N, {len(tags)}), got {s.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    groups: dict[str, list[int]] = {}
    for j, tag in enumerate(tags):
        attr, sep, value = tag.partition(":")
        if not sep or not attr or not value:
            raise ValueError(f"tag {tag!r} is not 'attribute:value'")
        groups.setdefault(attr, []).append(j)
    out: list[list[str]] = [[] for _ in range(len(s))]
    for cols in groups.values():
        logits = s[:, cols] / temperature
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        best = p.argmax(axis=1)
        for i, (b, prob) in enumerate(zip(best, p[np.arange(len(s)), best], strict=True)):
            if prob >= min_probability:
                out[i].append(tags[cols[b]])
    return [tuple(sorted(t)) for t in out]


def zero_shot_tags(
    image_vectors: np.ndarray,
    categories: Sequence[str],
    model: TextModel,
    vocabulary: TagVocabulary | None = None,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    min_probability: float = DEFAULT_MIN_PROBABILITY,
) -> list[tuple[str, ...]]:
    """Tags for items given their (N, D) unit image vectors and categories, scored by ``model``
    (which must embed texts in the same space as the images). Prompts are embedded once per
    distinct category."""
    vocabulary = vocabulary or TagVocabulary()
    x = np.asarray(image_vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(categories):
        raise ValueError(f"{len(categories)} categories for image vectors of shape {x.shape}")
    out: list[tuple[str, ...]] = [() for _ in categories]
    for category in dict.fromkeys(categories):
        rows = [i for i, c in enumerate(categories) if c == category]
        pairs = vocabulary.prompts(category)
        if not pairs:
            continue
        text = np.asarray(model.embed_texts([p for _, p in pairs]), dtype=np.float32)
        tagged = tags_from_scores(
            x[rows] @ text.T,
            [t for t, _ in pairs],
            temperature=temperature,
            min_probability=min_probability,
        )
        for i, t in zip(rows, tagged, strict=True):
            out[i] = t
    return out
