"""Load and check an advertisers' rules directory, reporting every mistake at ``file:line``.

A rules directory looks like this (paths are relative to its root)::

    campaigns/*.yaml | *.yml     one campaign per file (schema: ``targeting.rules_schema``)
    brands/<brand>/*.png|jpg     reference logo images; ``<brand>`` is what ``logo: {brand: ..}``
                                 and ``exclude.logos`` name
    logos.yaml                   optional: the trained logo detector that joins the reference
                                 matcher (``targeting.logos_config``)
    anything else                e.g. ``examples/*.jpg`` for ``concept: {examples: [...]}``

Why collect everything at once: an advertiser fixing one typo per ``onscreen rules check`` run
is slow and makes them distrust the tool. So nothing here stops at the first problem: YAML syntax,
schema errors (pydantic), and directory-wide checks (duplicate ids, unknown brands, missing
example images, unknown IAB ids and safety classes) are all gathered and raised together as one
``RulesError``, each ``RuleProblem`` naming the file (relative to the root), the line, the field
as a dotted path (``target.any[0].concept.threshold``) and what to do about it.

The parts: ``targeting.yaml_lines`` composes YAML keeping the line of every key and item,
``targeting.schema_messages`` turns pydantic errors into sentences at those lines, and this
module walks the directory, runs the cross-file checks and builds the immutable ``RuleSet``.

Decisions (documented here because advertisers will hit them):

- Files in ``campaigns/`` that are not ``.yaml``/``.yml`` (a ``README.md``, a ``.json``) and
  sub-folders are ignored with a logged warning and listed in ``RuleSet.ignored``; hidden files
  (``.x.yaml.swp``, ``.#x.yaml``) and editor backups (``x.yaml~``) are ignored silently.
- YAML duplicate keys are errors (PyYAML would silently keep the last one).
- A file that is not text (a NUL byte, another control character, invalid UTF-8) is one problem,
  ``file:line: not valid text: ...``. No message ever quotes the file's text: a YAML syntax
  error names line, column and the problem, never PyYAML's snippet of the file.
- A link (file or folder) under ``campaigns/`` or ``brands/`` that resolves outside the rules
  root is refused and never read; links that stay inside are followed.
- Example image paths are relative to the rules root; absolute paths, and paths that leave the
  root (``..`` or a symlink pointing outside), are refused so a rules directory is self-contained
  and cannot make the server read arbitrary files.
- Whatever ``scan``/``serve`` would refuse at start-up is reported here, at file:line: brand
  reference images get the logo matcher's own check (``vision.brands.check_reference``: header
  limits before any pixel, so a decompression bomb costs nothing; almost fully transparent
  images; logos with too few features), example images the decoder's checks. A rules
  directory without ``brands/`` (or with an empty one) is valid when no campaign names a brand;
  ``RuleSet.brands_dir`` is then None and no logo matcher is needed.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import yaml
import yaml.reader
from pydantic import ValidationError

from targeting.logos_config import LOGOS_FILE, LogosConfig, check_logos
from targeting.rules_schema import Campaign, Concept
from targeting.schema_messages import describe, suggest, yaml_kind, yaml_path
from targeting.yaml_lines import (
    MAX_YAML_NODES,
    LineLoader,
    YamlPath,
    YamlTooBig,
    describe_reader_error,
    describe_yaml_error,
    format_field,
    line_for,
)
from vision.brands import BRAND_SLUG
from vision.errors import MediaError, RuleProblem, RulesError
from vision.image_formats import IMAGE_SUFFIXES, UNSUPPORTED_IMAGE_SUFFIXES, sniff_image_format
from vision.limits import ALLOWED_IMAGE_FORMATS, MAX_IMAGE_BYTES, MAX_REFS_PER_BRAND
from vision.safety_classes import SAFETY_BY_NAME
from vision.taxonomy import IAB_TSV, iab_by_id, iab_categories

log = logging.getLogger(__name__)

CAMPAIGNS_DIR = "campaigns"
BRANDS_DIR = "brands"
CAMPAIGN_SUFFIXES = (".yaml", ".yml")
MAX_CAMPAIGN_FILE_BYTES = 256 * 1024
"""Largest campaign file read, in bytes; a campaign is a few dozen lines."""
MAX_CAMPAIGN_FILES = 5_000
"""Most campaign files in one rules directory."""


@dataclass(frozen=True)
class RuleSet:
    """A validated rules directory, immutable once built.

    ``root`` is absolute. ``campaigns`` are sorted by id. ``brands`` maps a brand slug to its
    reference image files (absolute, sorted). ``sources`` maps a campaign id to the file
    (relative to ``root``, POSIX separators) and 1-based line of its ``id:`` key. ``version`` is a
    sha256 (hex) over the relative path and bytes of every file read, so two loads of an unchanged
    directory have the same version and any edit (a campaign, a logo, an example) changes it.
    ``ignored`` lists files in ``campaigns/`` that were skipped (not .yaml/.yml). ``logos`` is
    the checked ``logos.yaml`` (``targeting.logos_config``), None without one.
    """

    root: Path
    campaigns: tuple[Campaign, ...]
    brands: Mapping[str, tuple[Path, ...]]
    sources: Mapping[str, tuple[str, int]]
    version: str
    ignored: tuple[str, ...] = ()
    logos: LogosConfig | None = None
    _by_id: Mapping[str, Campaign] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", MappingProxyType({c.id: c for c in self.campaigns}))
        object.__setattr__(self, "brands", MappingProxyType(dict(self.brands)))
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    @property
    def brands_dir(self) -> Path | None:
        """``root/brands`` when it holds at least one brand, else None: face- and concept-only
        rules need no logo matcher (build one only from this, never from ``root/brands``)."""
        return self.root / BRANDS_DIR if self.brands else None

    def campaign(self, campaign_id: str) -> Campaign:
        """The campaign with this id; ``KeyError`` naming the known ids if there is none."""
        try:
            return self._by_id[campaign_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise KeyError(f"no campaign {campaign_id!r} in {self.root} (known: {known})") from None

    def prompts(self) -> tuple[str, ...]:
        """Every distinct concept prompt text (targets and exclusions), in campaign order.

        This is what the text encoder embeds once per rules version.
        """
        seen: dict[str, None] = {}
        for c in self.campaigns:
            for concept in _concepts(c):
                if concept.prompt is not None:
                    seen.setdefault(concept.prompt, None)
        return tuple(seen)

    def example_paths(self) -> tuple[Path, ...]:
        """Every distinct example image (absolute paths under ``root``), in campaign order."""
        seen: dict[Path, None] = {}
        for c in self.campaigns:
            for concept in _concepts(c):
                for rel in concept.examples or ():
                    seen.setdefault(self.resolve_example(rel), None)
        return tuple(seen)

    def resolve_example(self, rel: str) -> Path:
        """The absolute path of an example as written in a concept (relative to ``root``)."""
        return self.root / _example_rel(rel)

    @property
    def uses_text(self) -> bool:
        """Some campaign targets or excludes on-screen text, so keyframes need OCR."""
        return any(
            c.exclude.text or any(cl.text is not None for cl in c.target.clauses)
            for c in self.campaigns
        )

    def iab_ids(self) -> tuple[str, ...]:
        """Every distinct IAB id named by an ``iab`` clause, sorted."""
        return tuple(
            sorted(
                {i for c in self.campaigns for cl in c.target.clauses if cl.iab for i in cl.iab.ids}
            )
        )


def _example_rel(rel: str) -> PurePosixPath:
    """An example path as written (``/`` or ``\\`` separators), relative to the rules root."""
    return PurePosixPath(rel.strip().replace("\\", "/"))


def _concepts(c: Campaign) -> Iterator[Concept]:
    for clause in c.target.clauses:
        if clause.concept is not None:
            yield clause.concept
    yield from c.exclude.concepts


@dataclass
class _Parsed:
    """One campaign file after YAML: its data, line table, and the Campaign if it validated."""

    rel: str
    data: Any
    lines: dict[YamlPath, int]
    campaign: Campaign | None = None


class _Collector:
    """Gathers problems and the bytes of every file read (for ``RuleSet.version``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[RuleProblem] = []
        self.hash_parts: dict[str, bytes] = {}

    def add(self, file: str, line: int | None, path: YamlPath | str, message: str) -> None:
        where = path if isinstance(path, str) else format_field(path)
        self.problems.append(RuleProblem(file, line, where, message))

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def escapes(self, path: Path) -> bool:
        """True (and a problem) when ``path`` is, or passes through, a link out of the root.

        Such a path is never read: a link to ``/etc/passwd`` named ``campaigns/x.yaml`` must
        not make the server read (or echo) that file. Links that stay inside are fine.
        """
        try:
            inside = path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):  # a link loop
            inside = False
        if not inside:
            self.add(
                self.rel(path),
                None,
                "",
                "is a link to outside the rules directory: refused, never read "
                "(a rules directory must be self-contained: copy the file in)",
            )
        return not inside

    def read(self, path: Path, limit: int) -> bytes | None:
        """Read a file (recorded for the version hash) or add a problem and return None."""
        rel = self.rel(path)
        if self.escapes(path):
            return None
        try:
            size = path.stat().st_size
            if size > limit:
                self.add(rel, None, "", f"file is {size} bytes, more than the limit of {limit}")
                return None
            data = path.read_bytes()
        except OSError as exc:
            self.add(rel, None, "", f"cannot read: {exc.strerror or exc}")
            return None
        self.hash_parts[rel] = data
        return data

    def version(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self.hash_parts):
            h.update(rel.encode() + b"\0")
            h.update(hashlib.sha256(self.hash_parts[rel]).digest())
        return h.hexdigest()


def load_rules(path: str | Path) -> RuleSet:
    """Load and fully check a rules directory; raise ``RulesError`` listing every problem.

    ``path`` is the rules root (it holds ``campaigns/`` and ``brands/``). Returns a ``RuleSet``
    with campaigns sorted by id. Reads each campaign file, each brand image and each example
    image once; nothing is decoded or embedded here.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise RulesError([RuleProblem(str(path), None, "", f"rules directory {what}")])
    root = root.resolve()
    col = _Collector(root)

    brands = _load_brands(root, col)
    files, ignored = _campaign_files(root, col)
    parsed = [p for f in files if (p := _parse_file(f, col)) is not None]
    sources = _check_directory(root, parsed, brands, col)
    logos = _load_logos(root, brands, col)

    if col.problems:
        raise RulesError(sorted(col.problems, key=lambda p: (p.file, p.line or 0)))
    campaigns = tuple(sorted((p.campaign for p in parsed if p.campaign), key=lambda c: c.id))
    return RuleSet(
        root=root,
        campaigns=campaigns,
        brands=brands,
        sources=sources,
        version=col.version(),
        ignored=tuple(ignored),
        logos=logos,
    )


def _load_logos(
    root: Path, brands: Mapping[str, tuple[Path, ...]], col: _Collector
) -> LogosConfig | None:
    """``logos.yaml`` checked (problems to ``col``); its detector's sha256 joins the version."""
    path = root / LOGOS_FILE
    if not (path.exists() or path.is_symlink()):
        return None
    if path.is_symlink() and col.escapes(path):
        return None
    if not path.is_file():
        col.add(LOGOS_FILE, None, "", "is not a file")
        return None
    loaded = read_yaml(path, col)
    if loaded is None:
        return None
    data, lines, dups = loaded
    logos, sha = check_logos(data, lines, root, brands, col.add)
    if sha is not None:  # retrained in place: a new rules version
        col.hash_parts[f"{LOGOS_FILE}:detector"] = sha.encode()
    return None if dups else logos


def _campaign_files(root: Path, col: _Collector) -> tuple[list[Path], list[str]]:
    folder = root / CAMPAIGNS_DIR
    if folder.is_symlink() and col.escapes(folder):
        return [], []
    if not folder.is_dir():
        col.add(
            CAMPAIGNS_DIR,
            None,
            "",
            f"no '{CAMPAIGNS_DIR}/' folder in {root}: put one campaign per .yaml file there",
        )
        return [], []
    files: list[Path] = []
    ignored: list[str] = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith(".") or name.endswith("~"):
            continue  # hidden files, editor swap and backup files
        if entry.is_symlink() and col.escapes(entry):
            continue
        if entry.is_file() and entry.suffix.lower() in CAMPAIGN_SUFFIXES:
            files.append(entry)
        else:
            rel = col.rel(entry)
            log.warning("%s: ignored (campaign files end in .yaml or .yml)", rel)
            ignored.append(rel)
    if not files:
        col.add(CAMPAIGNS_DIR, None, "", "no campaign files (*.yaml, *.yml) in this folder")
    elif len(files) > MAX_CAMPAIGN_FILES:
        col.add(CAMPAIGNS_DIR, None, "", f"{len(files)} campaign files, over {MAX_CAMPAIGN_FILES}")
        return [], ignored
    return files, ignored


def read_yaml(
    path: Path, col: _Collector, limit: int = MAX_CAMPAIGN_FILE_BYTES
) -> tuple[Any, dict[YamlPath, int], bool] | None:
    """One YAML file of the rules directory: (data, line of every key and item, whether a key
    was repeated), or None after adding its problems (unreadable, not text, not YAML) to
    ``col``. Repeated keys are reported here."""
    rel = col.rel(path)
    raw = col.read(path, limit)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col.add(
            rel, line, "", f"not valid text: invalid UTF-8 at byte {exc.start}; save it as UTF-8"
        )
        return None
    try:
        # PyYAML's reader refuses NUL and other control characters when it is created.
        loader = LineLoader(text)
    except yaml.reader.ReaderError as exc:
        at, message = describe_reader_error(exc, text)
        col.add(rel, at, "", message)
        return None
    try:
        data, lines, dups = loader.load_with_lines()
    except yaml.MarkedYAMLError as exc:
        at2, message = describe_yaml_error(exc)
        col.add(rel, at2, "", message)
        return None
    except yaml.YAMLError:
        col.add(rel, None, "", "YAML error: the file cannot be parsed as YAML")
        return None
    except YamlTooBig:
        col.add(rel, None, "", f"more than {MAX_YAML_NODES} YAML nodes (aliases expanded)")
        return None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        col.add(rel, None, "", "YAML nested too deeply (a campaign needs a few levels)")
        return None
    finally:
        loader.dispose()
    for dpath, line, first in dups:
        col.add(
            rel, line, dpath, f"key '{dpath[-1]}' appears twice (first on line {first}); keep one"
        )
    return data, lines, bool(dups)


def _parse_file(path: Path, col: _Collector) -> _Parsed | None:
    rel = col.rel(path)
    loaded = read_yaml(path, col)
    if loaded is None:
        return None
    data, lines, dups = loaded
    if data is None:
        col.add(rel, 1, "", "file is empty: a campaign needs at least 'id' and 'target'")
        return None
    if not isinstance(data, dict):
        col.add(
            rel,
            lines.get(()),
            "",
            f"top level should be a mapping (id: ..., target: ...), got {yaml_kind(data, echo=False)}",
        )
        return None
    parsed = _Parsed(rel, data, lines)
    try:
        parsed.campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            ypath = yaml_path(err["loc"], lines)
            col.add(rel, line_for(lines, ypath), ypath, describe(err, ypath))
    if dups:
        parsed.campaign = None
    return parsed


def _load_brands(root: Path, col: _Collector) -> dict[str, tuple[Path, ...]]:
    folder = root / BRANDS_DIR
    brands: dict[str, tuple[Path, ...]] = {}
    if folder.is_symlink() and col.escapes(folder):
        return brands
    if not folder.is_dir():
        return brands  # no brands: fine unless a campaign names one (reported there)
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() and col.escapes(entry):
            continue
        rel = col.rel(entry)
        if not entry.is_dir():
            log.warning("%s: ignored (reference images go in %s/<brand>/)", rel, BRANDS_DIR)
            continue
        if not BRAND_SLUG.fullmatch(entry.name):
            col.add(
                rel,
                None,
                "",
                f"brand folder name '{entry.name}' cannot be named in rules: "
                "use lowercase letters, digits, '-' and '_' (e.g. 'acme-motors')",
            )
            continue
        files = sorted(
            p
            for p in entry.iterdir()
            if not p.name.startswith(".")
            and not (p.is_symlink() and col.escapes(p))
            and p.is_file()
        )
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        for p in files:
            if p.suffix.lower() in UNSUPPORTED_IMAGE_SUFFIXES:
                col.add(
                    col.rel(p),
                    None,
                    "",
                    f"{p.suffix.lower()} reference logos are not supported; "
                    "convert it to PNG (keep the transparency) or JPEG",
                )
        if not images:
            col.add(
                rel,
                None,
                "",
                f"brand '{entry.name}' has no reference image ({', '.join(IMAGE_SUFFIXES)})",
            )
            continue
        if len(images) > MAX_REFS_PER_BRAND:
            col.add(rel, None, "", f"{len(images)} reference images, over {MAX_REFS_PER_BRAND}")
            continue
        # A brand with a broken image stays known, so campaigns naming it get no second error.
        brands[entry.name] = tuple(
            p for p in images if _check_image(p, col, col.rel(p), None, "", brand=entry.name)
        )
    return brands


def _check_image(
    path: Path,
    col: _Collector,
    file: str,
    line: int | None,
    where: Any,
    *,
    brand: str | None = None,
) -> bool:
    """Read an image's bytes (for the version) and check them; problems go to ``col``.

    ``file``/``line``/``where`` say where the problem is reported: the image itself for a brand
    reference, the campaign line that names it for an example. A brand reference gets every
    check the logo matcher makes at start-up (``vision.brands.check_reference``: decode limits
    from the header, transparency, enough features); an example gets the decoder's checks
    (``vision.image_decode.decode_image``), as the embedder will decode it.
    """
    # Imported here: they load OpenCV and Pillow, which a rules directory without images (and
    # everything that only imports RuleSet) does not need.
    from vision.brands import check_reference
    from vision.image_decode import decode_image

    rel = col.rel(path)
    name = "" if file == rel else f"{rel}: "
    try:
        size = path.stat().st_size
    except OSError as exc:
        col.add(file, line, where, f"{name}cannot read: {exc.strerror or exc}")
        return False
    if size > MAX_IMAGE_BYTES:
        col.add(file, line, where, f"{name}{size} bytes, over the limit {MAX_IMAGE_BYTES}")
        return False
    data = col.read(path, MAX_IMAGE_BYTES)
    if data is None:
        return False
    if sniff_image_format(data) not in ALLOWED_IMAGE_FORMATS:
        col.add(
            file,
            line,
            where,
            f"{name}not a PNG, JPEG or WebP image (by its first bytes)",
        )
        return False
    try:
        if brand is not None:
            check_reference(data, rel, brand)
        else:
            decode_image(data, rel)
    except MediaError as exc:
        col.add(file, line, where, f"{name}{str(exc).removeprefix(f'{rel}: ')}")
        return False
    return True


def _check_directory(
    root: Path,
    parsed: list[_Parsed],
    brands: Mapping[str, tuple[Path, ...]],
    col: _Collector,
) -> dict[str, tuple[str, int]]:
    """Checks that need the whole directory, run on the raw data of every file.

    They run even on files that failed the schema, so one ``rules check`` shows every mistake;
    values of the wrong type are skipped here because the schema already reported them.
    """
    sources: dict[str, tuple[str, int]] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    for p in parsed:
        cid = p.data.get("id")
        if isinstance(cid, str) and cid.strip():
            cid = cid.strip()
            where = (p.rel, p.lines.get(("id",), 1))
            if cid in first_seen:
                f, ln = first_seen[cid]
                col.add(
                    p.rel,
                    where[1],
                    "id",
                    f"duplicate campaign id '{cid}': also at {f}:{ln}; ids must be unique",
                )
                p.campaign = None
            else:
                first_seen[cid] = where
                sources[cid] = where
        for path, value in _brand_refs(p.data):
            if isinstance(value, str) and BRAND_SLUG.fullmatch(value) and value not in brands:
                col.add(p.rel, line_for(p.lines, path), path, _unknown_brand(value, brands))
        for path, value in _example_refs(p.data):
            if isinstance(value, str) and value.strip():
                _check_example(root, value.strip(), p, path, col)
        for path, value in _iab_refs(p.data):
            known_type = isinstance(value, int | str) and not isinstance(value, bool)
            if known_type and str(value) not in iab_by_id():
                col.add(p.rel, line_for(p.lines, path), path, _unknown_iab(str(value)))
        for path, value in _safety_refs(p.data):
            if isinstance(value, str) and value.strip() not in SAFETY_BY_NAME:
                known = ", ".join(SAFETY_BY_NAME)
                maybe = suggest(value.strip(), list(SAFETY_BY_NAME), cutoff=0.5)
                col.add(
                    p.rel,
                    line_for(p.lines, path),
                    path,
                    f"unknown safety class '{value}' ({maybe}known: {known})",
                )
    return sources


def _unknown_brand(brand: str, brands: Mapping[str, tuple[Path, ...]]) -> str:
    if not brands:
        return (
            f"unknown brand '{brand}': there are no brands yet; "
            f"add reference images under {BRANDS_DIR}/{brand}/"
        )
    maybe = suggest(brand, sorted(brands))
    return (
        f"unknown brand '{brand}' ({maybe}known: {', '.join(sorted(brands))}; "
        f"a brand is a folder {BRANDS_DIR}/<brand>/ of reference images)"
    )


def _unknown_iab(value: str) -> str:
    names = {c.name.lower(): c for c in iab_categories()}
    hint = difflib.get_close_matches(value.lower(), list(names), n=1, cutoff=0.6)
    maybe = ""
    if hint:
        c = names[hint[0]]
        maybe = f" (did you mean {c.id}, '{' > '.join(c.path)}'?)"
    return (
        f"unknown IAB id '{value}'{maybe}: ids are the 'Unique ID' column of the IAB Content "
        f"Taxonomy 3.1 (vision/data/{IAB_TSV}), e.g. 210 for Food & Drink"
    )


def _check_example(root: Path, rel: str, p: _Parsed, path: YamlPath, col: _Collector) -> None:
    line = line_for(p.lines, path)
    pure = _example_rel(rel)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", rel):
        col.add(p.rel, line, path, f"example '{rel}' is absolute: write it relative to {root}")
        return
    target = (root / pure).resolve()
    if not target.is_relative_to(root):
        col.add(p.rel, line, path, f"example '{rel}' points outside the rules directory {root}")
        return
    if not target.is_file():
        col.add(
            p.rel, line, path, f"example image '{rel}' not found (paths are relative to {root})"
        )
        return
    if target.suffix.lower() not in IMAGE_SUFFIXES:
        col.add(p.rel, line, path, f"example '{rel}' is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return
    _check_image(target, col, p.rel, line, format_field(path))


def _items(data: Any, *keys: str) -> Iterator[tuple[YamlPath, Any]]:
    """Walk ``data`` along ``keys`` defensively, yielding ``(path, value)`` where it exists."""
    cur: list[tuple[YamlPath, Any]] = [((), data)]
    for key in keys:
        nxt: list[tuple[YamlPath, Any]] = []
        for path, value in cur:
            if key == "[]":
                if isinstance(value, list):
                    nxt.extend(((*path, i), v) for i, v in enumerate(value))
            elif isinstance(value, dict) and key in value:
                nxt.append(((*path, key), value[key]))
        cur = nxt
    yield from cur


def _clauses(data: Any) -> Iterator[tuple[YamlPath, Any]]:
    yield from _items(data, "target", "all", "[]")
    yield from _items(data, "target", "any", "[]")


def _brand_refs(data: Any) -> Iterator[tuple[YamlPath, Any]]:
    for path, clause in _clauses(data):
        for sub, value in _items(clause, "logo", "brand"):
            yield (*path, *sub), value
    yield from _items(data, "exclude", "logos", "[]", "brand")


def _example_refs(data: Any) -> Iterator[tuple[YamlPath, Any]]:
    for path, clause in _clauses(data):
        for sub, value in _items(clause, "concept", "examples", "[]"):
            yield (*path, *sub), value
    yield from _items(data, "exclude", "concepts", "[]", "examples", "[]")


def _iab_refs(data: Any) -> Iterator[tuple[YamlPath, Any]]:
    for path, clause in _clauses(data):
        for sub, value in _items(clause, "iab", "[]"):  # shorthand: iab: [210, 222]
            yield (*path, *sub), value
        for sub, value in _items(clause, "iab", "ids", "[]"):
            yield (*path, *sub), value


def _safety_refs(data: Any) -> Iterator[tuple[YamlPath, Any]]:
    yield from _items(data, "exclude", "safety", "[]")
