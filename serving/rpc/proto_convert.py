"""Domain objects <-> protobuf messages, at the servicer edge and nowhere else.

The dataclasses (``vision.types``, ``targeting.types``) are the truth; the messages of
``onscreen.v1`` mirror them field for field. Enum values are ``<ENUM>_<LITERAL>`` of the
Python literal (``"face"`` -> ``DETECTION_KIND_FACE``); a literal the contract does not know is
a bug and raises ``KeyError`` (INTERNAL), never a silent UNSPECIFIED.
"""

from __future__ import annotations

from collections.abc import Iterable

from serving._proto.onscreen.v1 import common_pb2, targeting_pb2
from serving.scan_events import ScanEvent, ScanProgress, ScanSummary
from targeting.types import Placement, Reason
from vision.types import Box, Detection, FrameFacts, LogoMatch, SafetyFlag

_DETECTION_KIND = {
    "face": common_pb2.DETECTION_KIND_FACE,
    "safety": common_pb2.DETECTION_KIND_SAFETY,
    "logo": common_pb2.DETECTION_KIND_LOGO,
    "object": common_pb2.DETECTION_KIND_OBJECT,
}
_LOGO_METHOD = {
    "features": common_pb2.LOGO_MATCH_METHOD_FEATURES,
    "detector": common_pb2.LOGO_MATCH_METHOD_DETECTOR,
    "clip": common_pb2.LOGO_MATCH_METHOD_CLIP,
}
_SAFETY_SOURCE = {
    "detector": common_pb2.SAFETY_SOURCE_DETECTOR,
    "clip": common_pb2.SAFETY_SOURCE_CLIP,
}
_KEYFRAME_REASON = {
    "interval": common_pb2.KEYFRAME_REASON_INTERVAL,
    "cut": common_pb2.KEYFRAME_REASON_CUT,
    "image": common_pb2.KEYFRAME_REASON_IMAGE,
}
_REASON_KIND = {
    "concept": common_pb2.REASON_KIND_CONCEPT,
    "iab": common_pb2.REASON_KIND_IAB,
    "logo": common_pb2.REASON_KIND_LOGO,
    "face": common_pb2.REASON_KIND_FACE,
    "example": common_pb2.REASON_KIND_EXAMPLE,
    "exclusion": common_pb2.REASON_KIND_EXCLUSION,
    "text": common_pb2.REASON_KIND_TEXT,
}
_REASON_KIND_BACK = {v: k for k, v in _REASON_KIND.items()}


def box_to_proto(box: Box) -> common_pb2.Box:
    """A normalized xyxy box as ``onscreen.v1.Box``."""
    x0, y0, x1, y1 = box
    return common_pb2.Box(x0=x0, y0=y0, x1=x1, y1=y1)


def box_from_proto(box: common_pb2.Box) -> Box:
    return (box.x0, box.y0, box.x1, box.y1)


def detection_to_proto(d: Detection) -> common_pb2.Detection:
    return common_pb2.Detection(
        kind=_DETECTION_KIND[d.kind], label=d.label, score=d.score, box=box_to_proto(d.box)
    )


def logo_to_proto(m: LogoMatch) -> common_pb2.LogoMatch:
    return common_pb2.LogoMatch(
        brand=m.brand, score=m.score, box=box_to_proto(m.box), method=_LOGO_METHOD[m.method]
    )


def safety_to_proto(s: SafetyFlag) -> common_pb2.SafetyFlag:
    msg = common_pb2.SafetyFlag(
        category=s.category, score=s.score, source=_SAFETY_SOURCE[s.source], label=s.label
    )
    if s.box is not None:
        msg.box.CopyFrom(box_to_proto(s.box))
    return msg


def facts_to_proto(f: FrameFacts, *, include_embedding: bool = False) -> common_pb2.FrameFacts:
    """FrameFacts as a message; the (D,) float32 embedding only when asked (it is large)."""
    msg = common_pb2.FrameFacts(
        media_id=f.media_id,
        t_s=f.t,
        detections=[detection_to_proto(d) for d in f.detections],
        logos=[logo_to_proto(m) for m in f.logos],
        safety=[safety_to_proto(s) for s in f.safety],
        concepts=[common_pb2.ConceptScore(id=c.id, name=c.name, score=c.score) for c in f.concepts],
        text=[
            common_pb2.TextRead(text=r.text, score=r.score, box=box_to_proto(r.box)) for r in f.text
        ],
        reason=_KEYFRAME_REASON[f.reason],
        width_px=f.width,
        height_px=f.height,
    )
    if include_embedding and f.embedding is not None:
        msg.embedding.extend(f.embedding.tolist())
    return msg


def reason_to_proto(r: Reason) -> common_pb2.Reason:
    msg = common_pb2.Reason(
        kind=_REASON_KIND[r.kind], what=r.what, score=r.score, t_s=r.t, detail=r.detail
    )
    if r.box is not None:
        msg.box.CopyFrom(box_to_proto(r.box))
    return msg


def reason_from_proto(msg: common_pb2.Reason) -> Reason:
    """A Reason message back as the dataclass (clients, tests). Raises ValueError if invalid."""
    if msg.kind not in _REASON_KIND_BACK:
        raise ValueError(f"reason kind {msg.kind} is not set or unknown")
    return Reason(
        kind=_REASON_KIND_BACK[msg.kind],  # type: ignore[arg-type]
        what=msg.what,
        score=msg.score,
        t=msg.t_s,
        box=box_from_proto(msg.box) if msg.HasField("box") else None,
        detail=msg.detail,
    )


def placement_to_proto(p: Placement) -> common_pb2.Placement:
    return common_pb2.Placement(
        campaign_id=p.campaign,
        media_id=p.media,
        start_s=p.start_s,
        end_s=p.end_s,
        score=p.score,
        reasons=[reason_to_proto(r) for r in p.reasons],
        advertiser=p.advertiser,
        bid_cpm=p.bid_cpm,
        rank=p.rank,
    )


def placement_from_proto(msg: common_pb2.Placement) -> Placement:
    """A Placement message back as the dataclass (clients, tests). Raises ValueError if invalid."""
    return Placement(
        campaign=msg.campaign_id,
        media=msg.media_id,
        start_s=msg.start_s,
        end_s=msg.end_s,
        score=msg.score,
        reasons=tuple(reason_from_proto(r) for r in msg.reasons),
        advertiser=msg.advertiser,
        bid_cpm=msg.bid_cpm,
        rank=msg.rank,
    )


def placements_to_proto(placements: Iterable[Placement]) -> list[common_pb2.Placement]:
    return [placement_to_proto(p) for p in placements]


def scan_event_to_proto(e: ScanEvent) -> targeting_pb2.ScanVideoResponse:
    """One ScanEvent as the ScanVideo response message carrying it."""
    if e.placement is not None:
        return targeting_pb2.ScanVideoResponse(placement=placement_to_proto(e.placement))
    if e.facts is not None:
        return targeting_pb2.ScanVideoResponse(facts=facts_to_proto(e.facts))
    if e.progress is not None:
        g = e.progress
        return targeting_pb2.ScanVideoResponse(
            progress=targeting_pb2.ScanProgress(
                t_s=g.t_s, duration_s=g.duration_s, keyframes=g.keyframes,
                received_bytes=g.received_bytes,
            )
        )  # fmt: skip
    assert e.summary is not None
    m = e.summary
    return targeting_pb2.ScanVideoResponse(
        summary=targeting_pb2.ScanSummary(
            duration_s=m.duration_s, keyframes=m.keyframes, placements=m.placements,
            stored=m.stored, elapsed_s=m.elapsed_s, rules_version=m.rules_version,
        )
    )  # fmt: skip


def scan_event_from_proto(msg: targeting_pb2.ScanVideoResponse) -> ScanEvent | None:
    """A ScanVideo response back as a ScanEvent (clients); None for an event kind this client
    does not know, or keyframe facts (clients read facts through Analyze)."""
    kind = msg.WhichOneof("event")
    if kind == "placement":
        return ScanEvent(placement=placement_from_proto(msg.placement))
    if kind == "progress":
        g = msg.progress
        return ScanEvent(progress=ScanProgress(g.t_s, g.duration_s, g.keyframes, g.received_bytes))
    if kind == "summary":
        m = msg.summary
        return ScanEvent(
            summary=ScanSummary(
                m.duration_s, m.keyframes, m.placements, m.stored, m.elapsed_s, m.rules_version
            )
        )
    return None
