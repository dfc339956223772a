"""Compile campaigns into a ``ConceptIndex``'s layout and embed every distinct concept once.

``compile_index`` gives every distinct condition (prompt + threshold, example set + threshold,
IAB clause, logo, face, safety class) one signal slot, turns each campaign into a
``CampaignPlan`` of signal indices, embeds prompts and example files through the
``SemanticModel`` in bounded batches (each once, however many campaigns use it) and compiles the
IAB vocabulary's parent/child table. ``ConceptIndex.build`` wraps the result.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from targeting.index_layout import (
    CampaignPlan,
    ConceptColumn,
    FaceKey,
    IabClauseKey,
    IabTable,
    LogoKey,
    SafetyKey,
    TextKey,
)
from targeting.rules_schema import (
    DEFAULT_EXCLUDE_THRESHOLD,
    DEFAULT_TEXT_MIN_SCORE,
    Campaign,
    Concept,
)
from targeting.text_match import canonical_words
from vision.errors import ModelError
from vision.safety_classes import SAFETY_BY_NAME
from vision.semantic import CLIP_SCALE, ScoreScale, SemanticModel, translate_threshold
from vision.taxonomy import iab_by_id

MAX_CONCEPT_COLUMNS = 200_000
"""Most distinct (concept, threshold) columns in one index: 200k x 512 float32 is 400 MB."""
MAX_CAMPAIGNS = 100_000
"""Most campaigns compiled into one index."""
EMBED_BATCH = 512
"""Prompts or example files handed to the embedder per call, so memory stays bounded."""
NORM_EPS = 1e-6
"""An embedding with an L2 norm below this is treated as broken (a zero vector has no direction)."""


@dataclass(frozen=True, eq=False)
class CompiledIndex:
    """What ``compile_index`` produces: the compiled parts of a rule set. ``ConceptIndex``
    extends it with the flattened per-campaign signal layouts matching runs on (see its
    docstring for the fields).

    ``positions`` maps a campaign id to its row in ``plans``.
    """

    model_id: str
    dim: int
    columns: tuple[ConceptColumn, ...]
    matrix: np.ndarray
    thresholds: np.ndarray
    iab_keys: tuple[IabClauseKey, ...]
    iab: IabTable | None
    logo_keys: tuple[LogoKey, ...]
    face_keys: tuple[FaceKey, ...]
    text_keys: tuple[TextKey, ...]
    safety_keys: tuple[SafetyKey, ...]
    plans: tuple[CampaignPlan, ...]
    positions: dict[str, int]


def compile_index(
    campaigns: Sequence[Campaign],
    embedder: SemanticModel | None,
    *,
    rules_root: Path,
    iab_matrix: np.ndarray | None = None,
    iab_ids: Sequence[str] | None = None,
) -> CompiledIndex:
    """Compile ``campaigns`` and embed their concepts (arguments and errors: ``ConceptIndex.build``)."""
    if len(campaigns) > MAX_CAMPAIGNS:
        raise ValueError(f"{len(campaigns)} campaigns exceed MAX_CAMPAIGNS={MAX_CAMPAIGNS}")
    dim = int(embedder.dim) if embedder is not None else 0
    b = _Builder(rules_root, embedder.score_scale if embedder is not None else CLIP_SCALE)
    pos: dict[str, int] = {}
    for c in campaigns:
        if c.id in pos:
            raise ValueError(f"campaign id {c.id!r} appears twice: ids must be unique")
        pos[c.id] = len(pos)
        b.add(c)
    b.resolve()
    if len(b.columns) > MAX_CONCEPT_COLUMNS:
        raise ValueError(
            f"{len(b.columns)} distinct concepts exceed MAX_CONCEPT_COLUMNS={MAX_CONCEPT_COLUMNS}"
        )
    if embedder is None and (b.columns or b.iab_keys):
        raise ValueError(
            "these campaigns use concept or iab clauses, which need an embedder (CLIP)"
        )
    if embedder is None:
        matrix = np.zeros((0, 0), dtype=np.float32)
    else:
        matrix = _embed_columns(b.columns, embedder, dim, rules_root)
    return CompiledIndex(
        model_id=str(embedder.model_id) if embedder is not None else "none",
        dim=dim,
        columns=tuple(b.columns),
        matrix=matrix,
        thresholds=np.asarray([c.threshold for c in b.columns], dtype=np.float32),
        iab_keys=tuple(b.iab_keys),
        iab=_iab_table(b, iab_matrix, iab_ids, dim),
        logo_keys=tuple(b.logo_keys),
        face_keys=tuple(b.face_keys),
        text_keys=tuple(b.text_keys),
        safety_keys=tuple(b.safety_keys),
        plans=tuple(b.plans),
        positions=pos,
    )


class _Builder:
    """Assigns every distinct condition one slot per kind, then resolves slots to signals."""

    def __init__(self, rules_root: Path, scale: ScoreScale) -> None:
        self.root = rules_root
        self.scale = scale
        """The model's cosine scale: thresholds in the rules are on CLIP's scale (DESIGN.md)
        and are translated onto it (``vision.semantic.translate_threshold``), so one rules
        file behaves alike under CLIP and ``lite``."""
        self.columns: list[ConceptColumn] = []
        self.iab_keys: list[IabClauseKey] = []
        self.logo_keys: list[LogoKey] = []
        self.face_keys: list[FaceKey] = []
        self.text_keys: list[TextKey] = []
        self.safety_keys: list[SafetyKey] = []
        self._slots: dict[object, tuple[str, int]] = {}
        self._raw: list[
            tuple[Campaign, list[tuple[str, int]], int, list[tuple[str, int]], bool]
        ] = []
        self.plans: list[CampaignPlan] = []

    def _slot(self, key: object, kind: str, store: list) -> tuple[str, int]:
        got = self._slots.get((kind, key))
        if got is None:
            got = (kind, len(store))
            store.append(key)
            self._slots[(kind, key)] = got
        return got

    def _concept(
        self, c: Campaign, concept: Concept, exclusion: bool, where: str
    ) -> tuple[str, int]:
        if concept.threshold is not None:
            thr = float(concept.threshold)
        elif exclusion and concept.prompt is not None:
            thr = DEFAULT_EXCLUDE_THRESHOLD
        else:
            thr = float(concept.effective_threshold)
        thr = translate_threshold(thr, self.scale)
        if concept.prompt is not None:
            col = ConceptColumn("concept", concept.prompt, thr, (concept.prompt,))
        else:
            ex = tuple(sorted(set(concept.examples or ())))
            for rel in ex:
                if not (self.root / rel).is_file():
                    raise _unchecked(c, where, f"example image '{rel}' not found")
            col = ConceptColumn("example", ", ".join(ex), thr, ex)
        return self._slot(col, "concept", self.columns)

    def add(self, c: Campaign) -> None:
        clause_slots: list[tuple[str, int]] = []
        for i, clause in enumerate(c.target.clauses):
            part = "all" if i < len(c.target.all) else "any"
            j = i if part == "all" else i - len(c.target.all)
            where = f"target.{part}[{j}].{clause.kind}"
            if clause.concept is not None:
                clause_slots.append(self._concept(c, clause.concept, False, where))
            elif clause.iab is not None:
                th = clause.iab.threshold
                key = IabClauseKey(
                    tuple(clause.iab.ids),
                    clause.iab.top_k,
                    None if th is None else translate_threshold(float(th), self.scale),
                )
                clause_slots.append(self._slot(key, "iab", self.iab_keys))
            elif clause.logo is not None:
                lg = clause.logo
                key2 = LogoKey(lg.brand, float(lg.min_score), float(lg.min_area))
                clause_slots.append(self._slot(key2, "logo", self.logo_keys))
            elif clause.face is not None:
                f = clause.face
                key3 = FaceKey(f.min_count, f.max_count, float(f.min_area), float(f.min_score))
                clause_slots.append(self._slot(key3, "face", self.face_keys))
            elif clause.text is not None:
                key5 = _text_key(clause.text.any, float(clause.text.min_score))
                clause_slots.append(self._slot(key5, "text", self.text_keys))
        excl: list[tuple[str, int]] = []
        for j, name in enumerate(c.exclude.safety):
            sc = SAFETY_BY_NAME.get(name)
            if sc is None:
                raise _unchecked(c, f"exclude.safety[{j}]", f"unknown safety class '{name}'")
            excl.append(self._slot(SafetyKey(name, sc.threshold), "safety", self.safety_keys))
        for j, concept in enumerate(c.exclude.concepts):
            excl.append(self._concept(c, concept, True, f"exclude.concepts[{j}]"))
        for lg in c.exclude.logos:
            key4 = LogoKey(lg.brand, float(lg.min_score), float(lg.min_area))
            excl.append(self._slot(key4, "logo", self.logo_keys))
        if c.exclude.text:
            key6 = _text_key(c.exclude.text, DEFAULT_TEXT_MIN_SCORE)
            excl.append(self._slot(key6, "text", self.text_keys))
        self._raw.append((c, clause_slots, len(c.target.all), excl, bool(c.exclude.concepts)))

    def resolve(self) -> None:
        """Turn every campaign's slots into signal indices (``plans``), once all are added."""
        k = len(self.columns)
        base = {
            "concept": 0,
            "iab": k,
            "logo": k + len(self.iab_keys),
        }
        base["face"] = base["logo"] + len(self.logo_keys)
        base["text"] = base["face"] + len(self.face_keys)
        base["safety"] = base["text"] + len(self.text_keys)
        for c, slots, n_all, excl, ex_concepts in self._raw:
            sigs = tuple(base[kind] + i for kind, i in slots)
            ex = tuple(sorted({base[kind] + i for kind, i in excl}))
            self.plans.append(
                CampaignPlan(
                    campaign=c,
                    clause_signals=sigs,
                    all_signals=tuple(sorted(set(sigs[:n_all]))),
                    any_signals=tuple(sorted(set(sigs[n_all:]))),
                    exclude_signals=ex,
                    exclude_concepts=ex_concepts,
                )
            )


def _text_key(phrases: Sequence[str], min_score: float) -> TextKey:
    ordered = tuple(dict.fromkeys(phrases))
    return TextKey(ordered, min_score, tuple(canonical_words(p) for p in ordered))


def _unchecked(c: Campaign, where: str, what: str) -> ValueError:
    """A wiring mistake: campaigns that did not come through ``load_rules``.

    The rules loader is the one place that reports rules mistakes (at ``file:line``, with every
    other mistake); the index only meets campaigns it has checked, so reaching this is a bug in
    the caller, not the advertiser's, and it is not reported a second way.
    """
    return ValueError(
        f"campaign {c.id!r} {where}: {what}; ConceptIndex.build expects campaigns checked by "
        "targeting.rules_loader.load_rules (which reports this at file:line)"
    )


def _batches(items: Sequence[str] | Sequence[Path], size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _checked(out: object, n: int, dim: int, model_id: str, what: str) -> np.ndarray:
    arr = np.asarray(out)
    if arr.shape != (n, dim) or not np.issubdtype(arr.dtype, np.floating):
        raise ModelError(
            f"embedder {model_id!r} returned {arr.shape} {arr.dtype} for {n} {what}; "
            f"expected ({n}, {dim}) floats"
        )
    arr = arr.astype(np.float32)
    norms = np.linalg.norm(arr, axis=1)
    if not np.all(np.isfinite(arr)) or np.any(norms < NORM_EPS):
        raise ModelError(
            f"embedder {model_id!r} returned a non-finite or zero embedding for {what}"
        )
    return arr / norms[:, None]


def _embed_columns(
    columns: Sequence[ConceptColumn], embedder: SemanticModel, dim: int, root: Path
) -> np.ndarray:
    """(K, D) float32, unit rows: prompts in one pass, example files in one pass, each once."""
    model_id = str(embedder.model_id)
    prompts = list(dict.fromkeys(c.what for c in columns if c.kind == "concept"))
    files = list(dict.fromkeys(s for c in columns if c.kind == "example" for s in c.sources))
    text_vec: dict[str, np.ndarray] = {}
    for batch in _batches(prompts, EMBED_BATCH):
        got = _checked(embedder.embed_texts(list(batch)), len(batch), dim, model_id, "prompts")
        text_vec.update(zip(batch, got, strict=True))
    file_vec: dict[str, np.ndarray] = {}
    for batch in _batches(files, EMBED_BATCH):
        paths = [root / rel for rel in batch]
        got = _checked(
            embedder.embed_image_files(paths), len(batch), dim, model_id, "example images"
        )
        file_vec.update(zip(batch, got, strict=True))
    matrix = np.zeros((len(columns), dim), dtype=np.float32)
    for i, col in enumerate(columns):
        if col.kind == "concept":
            matrix[i] = text_vec[col.what]
        else:
            mean = np.mean([file_vec[s] for s in col.sources], axis=0)
            norm = float(np.linalg.norm(mean))
            if norm < NORM_EPS:
                raise ModelError(
                    f"example images {col.what} average to a zero embedding with {model_id!r}: "
                    "use examples that show the same thing"
                )
            matrix[i] = mean / norm
    return matrix


def _iab_table(
    b: _Builder, iab_matrix: np.ndarray | None, iab_ids: Sequence[str] | None, dim: int
) -> IabTable | None:
    if not b.iab_keys:
        return None
    if iab_matrix is None or iab_ids is None:
        users = sorted({c.id for c, slots, *_ in b._raw if any(k == "iab" for k, _ in slots)})
        raise ValueError(
            f"campaign(s) {', '.join(users[:5])} have iab clauses but no IAB vocabulary was given: "
            "pass iab_matrix and iab_ids (vision.vocabulary.ConceptVocabulary.from_iab())"
        )
    ids = tuple(str(i) for i in iab_ids)
    mat = np.asarray(iab_matrix, dtype=np.float32)
    if mat.ndim != 2 or mat.shape != (len(ids), dim):
        raise ValueError(
            f"iab_matrix must be ({len(ids)}, {dim}) for {len(ids)} ids, got {mat.shape}"
        )
    if len(set(ids)) != len(ids):
        raise ValueError("iab_ids must be unique")
    taxonomy = iab_by_id()
    space: dict[str, int] = {}
    chains: list[list[int]] = []
    for cid in ids:
        chain: list[int] = []
        cur: str | None = cid
        while cur is not None and len(chain) < 16:
            chain.append(space.setdefault(cur, len(space)))
            cat = taxonomy.get(cur)
            cur = cat.parent if cat is not None else None
        chains.append(chain)
    depth = max(len(ch) for ch in chains)
    ancestors = np.asarray([ch + [ch[0]] * (depth - len(ch)) for ch in chains], dtype=np.intp)
    width = max(len(k.ids) for k in b.iab_keys)
    clause_ids = np.full((len(b.iab_keys), width), len(space), dtype=np.intp)
    for q, key in enumerate(b.iab_keys):
        for j, iid in enumerate(key.ids):
            if iid not in space:
                user = next(c for c, slots, *_ in b._raw if ("iab", q) in slots)
                raise _unchecked(
                    user,
                    "target.iab",
                    f"IAB id '{iid}' is neither in the IAB vocabulary nor a parent of one of "
                    "its categories",
                )
            else:
                clause_ids[q, j] = space[iid]
    names = tuple(taxonomy[i].name if i in taxonomy else i for i in ids)
    return IabTable(
        ids=ids,
        names=names,
        matrix=mat,
        space=tuple(space),
        ancestors=ancestors,
        clause_ids=clause_ids,
        clause_top_k=np.asarray([k.top_k for k in b.iab_keys], dtype=np.int64),
        clause_threshold=np.asarray(
            [-np.inf if k.threshold is None else k.threshold for k in b.iab_keys], dtype=np.float32
        ),
    )
