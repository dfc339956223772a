"""Pydantic validation errors -> sentences an advertiser can act on, at the path they wrote.

``targeting.rules_loader`` validates each campaign with ``targeting.rules_schema``; pydantic's
errors name model fields (``loc``) and types (``extra_forbidden``, ``float_type``). This module
turns one error into the path as written in the YAML (the ``iab`` shorthand differs from the
model) and a message: unknown keys get a "did you mean" and the allowed keys, wrong types say
what was found in YAML words ("a list", "text 'abc'").
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel

from targeting.rules_schema import Campaign
from targeting.yaml_lines import YamlPath


def yaml_path(loc: tuple[Any, ...], lines: Mapping[YamlPath, int]) -> YamlPath:
    """Map a pydantic ``loc`` to the path the advertiser wrote.

    The one divergence is the ``iab`` shorthand: ``- iab: [210]`` is validated as
    ``iab: {ids: [210]}``, so ``(..., 'iab', 'ids', 0)`` is ``(..., 'iab', 0)`` in the file.
    """
    path = tuple(p for p in loc if isinstance(p, str | int))
    for i in range(len(path) - 1):
        head = path[: i + 1]
        shorthand = (*head, "ids") not in lines and (*head, 0) in lines
        if path[i] == "iab" and path[i + 1] == "ids" and shorthand:
            return (*head, *path[i + 2 :])
    return path


def model_at(path: YamlPath) -> type[BaseModel] | None:
    """The schema model that validates the mapping at ``path`` (``()`` is ``Campaign``)."""
    model: type[BaseModel] | None = Campaign
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue  # an item of a tuple[Model, ...]: the model was unwrapped already
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _unwrap_model(info.annotation)
    return model


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Model``, ``Model | None`` or ``tuple[Model, ...]``; else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def suggest(word: str, options: list[str], cutoff: float = 0.6) -> str:
    """``"did you mean 'x'? "`` for the likeliest option, or ``""``.

    A prefix match wins over string similarity: ``bid`` means ``bid_cpm``, not ``id``.
    """
    prefixed = [o for o in options if o.startswith(word) or word.startswith(o + "_")]
    hint = prefixed[:1] or difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return f"did you mean '{hint[0]}'? " if hint else ""


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def yaml_kind(value: Any, *, echo: bool = True) -> str:
    """What ``value`` is, in YAML words; ``echo=False`` never quotes the value itself (for a
    whole file that is not a campaign: it may be any file's text)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"true/false ({value})"
    if isinstance(value, str):
        return f"text {_got(value)}" if echo else "text"
    if value is None:
        return "nothing (empty value)"
    return _got(value) if echo else f"a {type(value).__name__}"


def describe(err: Mapping[str, Any], path: YamlPath) -> str:
    """A pydantic error as a sentence an advertiser can act on."""
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        model = model_at(path[:-1])
        allowed = list(model.model_fields) if model else []
        return f"unknown key '{key}' ({suggest(str(key), allowed)}allowed: {', '.join(allowed)})"
    if kind == "missing":
        return f"missing required key '{path[-1]}'" if path else "missing required key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"should be a mapping of keys (key: value), got {yaml_kind(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"should be a list (`- item` lines or [a, b]), got {yaml_kind(value)}"
    if kind == "value_error":
        msg = str(err["msg"])
        return msg.removeprefix("Value error, ")
    msg = str(err["msg"])
    if msg.startswith("Input should be"):
        msg = "should be" + msg.removeprefix("Input should be")
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{msg}, got {_got(value)} (put it in quotes)"
    if kind in ("float_type", "int_type") and isinstance(value, bool):
        return f"{msg}, got true/false ({value}): write the number itself"
    if kind in ("float_type", "int_type") and isinstance(value, str) and _is_number(value):
        return f"{msg}, got text {_got(value)} (write it without quotes)"
    return f"{msg}, got {yaml_kind(value)}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
