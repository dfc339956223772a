"""The wire contract: committed stubs match the .proto files, every element is documented,
the API follows the house proto style, the messages mirror the Python types, and the stubs work
over a real gRPC channel (including the chunked upload of ScanVideo)."""

from __future__ import annotations

import hashlib
import shutil
import typing
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

import serving._proto as generated
from serving import _gen_protos
from serving._proto.onscreen.v1 import (
    common_pb2,
    targeting_pb2,
    targeting_pb2_grpc,
    vision_pb2,
    visual_search_pb2,
)
from targeting import types as ttypes
from vision import types as vtypes

MODULES = (common_pb2, targeting_pb2, vision_pb2, visual_search_pb2)
PROTO_FILES = sorted((_gen_protos.PROTO_ROOT / _gen_protos.PROTO_PACKAGE_DIR).glob("*.proto"))


# --- stubs are fresh ------------------------------------------------------------------------


def test_generator_versions_match_the_committed_stubs() -> None:
    # Stubs differ byte-wise between generator versions; say so instead of "stale".
    assert _gen_protos.generator_versions() == generated.GENERATED_WITH, (
        f"serving/_proto was generated with {generated.GENERATED_WITH}, this environment has "
        f"{_gen_protos.generator_versions()}: install the pinned dev extras or run make protos"
    )


def test_committed_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = tmp_path / "_proto"
    written = _gen_protos.generate(fresh)
    assert Path("onscreen/v1/targeting_pb2_grpc.py") in written
    stale = _gen_protos.stale_files(_gen_protos.OUT_ROOT, fresh)
    assert not stale, "stubs are stale: run make protos\n  " + "\n  ".join(stale)


@pytest.mark.parametrize(
    "edit, stale_file",
    [
        # a new field changes the message module and its typed stub
        (("  int32 rank = 9;\n}", "  int32 rank = 9;\n  // A new field.\n  int32 extra = 10;\n}"),
         "onscreen/v1/common_pb2.py"),
        # comments become docstrings in the .pyi: a comment edit is a stale stub too
        ("// Left edge, 0..1 of the frame width.", "onscreen/v1/common_pb2.pyi"),
    ],
)  # fmt: skip
def test_stale_check_catches_a_proto_edit(
    tmp_path: Path, edit: tuple[str, str] | str, stale_file: str
) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(_gen_protos.PROTO_ROOT, protos)
    common = protos / "onscreen" / "v1" / "common.proto"
    text = common.read_text()
    old, new = edit if isinstance(edit, tuple) else (edit, edit.replace("Left", "Leftmost"))
    assert old in text
    common.write_text(text.replace(old, new))
    _gen_protos.generate(tmp_path / "out", proto_root=protos)
    assert stale_file in _gen_protos.stale_files(_gen_protos.OUT_ROOT, tmp_path / "out")


def test_generator_refuses_a_non_empty_output_dir(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(_gen_protos.ProtoGenError, match="is not empty"):
        _gen_protos.generate(tmp_path)


def test_generator_reports_a_bad_proto(tmp_path: Path) -> None:
    bad = tmp_path / "protos" / "onscreen" / "v1"
    bad.mkdir(parents=True)
    (bad / "broken.proto").write_text('syntax = "proto3";\npackage onscreen.v1;\nmessage {\n')
    with pytest.raises(_gen_protos.ProtoGenError, match=r"protoc failed on onscreen/v1/broken"):
        _gen_protos.generate(tmp_path / "out", proto_root=tmp_path / "protos")


def test_stubs_use_relative_imports_only() -> None:
    pkg = _gen_protos.OUT_ROOT / _gen_protos.PROTO_PACKAGE_DIR
    for path in pkg.glob("*.py*"):
        text = path.read_text()
        assert "from onscreen" not in text and "import onscreen" not in text, path.name


# --- every element is documented --------------------------------------------------------------


def _descriptor_set(proto_root: Path, files: list[Path]) -> descriptor_pb2.FileDescriptorSet:
    """Parse .proto files with protoc itself (keeping comments) rather than with regexes."""
    from grpc_tools import protoc

    out = proto_root.parent / f"{proto_root.name}.pb"
    well_known = Path(protoc.__file__).parent / "_proto"
    rel = [str(f.relative_to(proto_root)) for f in files]
    args = ["protoc", f"-I{proto_root}", f"-I{well_known}", "--include_source_info"]
    assert protoc.main([*args, f"--descriptor_set_out={out}", *rel]) == 0, rel
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def undocumented(fds: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """Every message, field, oneof, enum, enum value, service and rpc without a comment."""
    missing: list[str] = []
    for f in fds.file:
        comments = {
            tuple(loc.path): (loc.leading_comments + loc.trailing_comments).strip()
            for loc in f.source_code_info.location
        }

        def need(
            path: tuple[int, ...], name: str, fname: str = f.name, comments: dict = comments
        ) -> None:
            if not comments.get(path):
                missing.append(f"{fname}: {name}")

        def enum(e: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str) -> None:
            need(path, f"enum {scope}{e.name}")
            for j, v in enumerate(e.value):
                need((*path, 2, j), f"enum value {scope}{e.name}.{v.name}")

        def message(m: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str) -> None:
            if m.options.map_entry:  # synthesized for map<,> fields: documented by the field
                return
            name = f"{scope}{m.name}"
            need(path, f"message {name}")
            for j, fld in enumerate(m.field):
                need((*path, 2, j), f"field {name}.{fld.name}")
            for j, o in enumerate(m.oneof_decl):
                if not o.name.startswith("_"):  # `optional` fields make a synthetic oneof
                    need((*path, 8, j), f"oneof {name}.{o.name}")
            for j, nested in enumerate(m.nested_type):
                message(nested, (*path, 3, j), f"{name}.")
            for j, e in enumerate(m.enum_type):
                enum(e, (*path, 4, j), f"{name}.")

        for i, m in enumerate(f.message_type):
            message(m, (4, i), "")
        for i, e in enumerate(f.enum_type):
            enum(e, (5, i), "")
        for i, s in enumerate(f.service):
            need((6, i), f"service {s.name}")
            for j, rpc in enumerate(s.method):
                need((6, i, 2, j), f"rpc {s.name}.{rpc.name}")
    return missing


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    root = tmp_path_factory.mktemp("contract") / "protos"
    shutil.copytree(_gen_protos.PROTO_ROOT, root)
    return _descriptor_set(root, sorted((root / "onscreen" / "v1").glob("*.proto")))


def test_every_element_of_the_contract_has_a_comment(
    contract: descriptor_pb2.FileDescriptorSet,
) -> None:
    assert len(contract.file) == len(PROTO_FILES) == 4
    missing = undocumented(contract)
    assert not missing, "add a comment to:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("// A.\nmessage A {\n  // B.\n  int32 b = 1;\n}\n", []),
        ("message A {\n  // B.\n  int32 b = 1;\n}\n", ["message A"]),
        ("// A.\nmessage A {\n  int32 b = 1; // trailing counts\n  int32 c = 2;\n}\n", ["field A.c"]),
        ("// E.\nenum E {\n  E_UNSPECIFIED = 0;\n}\n", ["enum value E.E_UNSPECIFIED"]),
        ("// S.\nservice S {\n  rpc R(A) returns (A);\n}\n// A.\nmessage A {}\n", ["rpc S.R"]),
        ("// A.\nmessage A {\n  oneof o {\n    // B.\n    int32 b = 1;\n  }\n}\n", ["oneof A.o"]),
    ],
)  # fmt: skip
def test_comment_check_finds_what_is_missing(
    tmp_path: Path, body: str, expected: list[str]
) -> None:
    root = tmp_path / "protos"
    (root / "x").mkdir(parents=True)
    proto = root / "x" / "t.proto"
    proto.write_text('syntax = "proto3";\npackage x;\n' + body)
    found = undocumented(_descriptor_set(root, [proto]))
    assert [m.split(": ", 1)[1] for m in found] == expected


# --- house style (AIP / buf) -------------------------------------------------------------------


def _all_enums() -> Iterator[typing.Any]:
    for mod in MODULES:
        yield from mod.DESCRIPTOR.enum_types_by_name.values()
        for m in _all_messages(mod):
            yield from m.enum_types


def _all_messages(mod: typing.Any) -> Iterator[Descriptor]:
    def walk(d: Descriptor) -> Iterator[Descriptor]:
        if not d.GetOptions().map_entry:
            yield d
        for n in d.nested_types:
            yield from walk(n)

    for d in mod.DESCRIPTOR.message_types_by_name.values():
        yield from walk(d)


def _screaming(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


def test_enums_have_an_unspecified_zero_and_prefixed_values() -> None:
    enums = list(_all_enums())
    assert len(enums) == 5
    for e in enums:
        prefix = _screaming(e.name) + "_"
        assert e.values_by_number[0].name == prefix + "UNSPECIFIED", e.full_name
        assert all(v.name.startswith(prefix) for v in e.values), e.full_name


def test_each_rpc_has_its_own_request_and_response() -> None:
    seen: set[str] = set()
    for mod in MODULES:
        for service in mod.DESCRIPTOR.services_by_name.values():
            for rpc in service.methods:
                assert rpc.input_type.name == f"{rpc.name}Request", rpc.full_name
                assert rpc.output_type.name == f"{rpc.name}Response", rpc.full_name
                assert rpc.input_type.file is rpc.containing_service.file
                seen |= {rpc.input_type.full_name, rpc.output_type.full_name}
    assert len(seen) == 2 * 8  # 4 Targeting + 1 Vision + 3 VisualSearch rpcs, none shared


@pytest.mark.parametrize(
    "service, rpc, client_streaming, server_streaming",
    [
        ("Targeting", "TargetImage", False, False),
        ("Targeting", "ScanVideo", True, True),  # chunked upload in, placements out
        ("Targeting", "TargetStream", True, True),
        ("Targeting", "LookupPlacements", False, False),
        ("Vision", "Analyze", False, False),
        ("VisualSearch", "SimilarItems", False, False),
        ("VisualSearch", "UpsertItems", False, False),
        ("VisualSearch", "DeleteItems", False, False),
    ],
)
def test_rpc_shapes(service: str, rpc: str, client_streaming: bool, server_streaming: bool) -> None:
    svc = next(
        m.DESCRIPTOR.services_by_name[service]
        for m in MODULES
        if service in m.DESCRIPTOR.services_by_name
    )
    method = svc.methods_by_name[rpc]
    assert (method.client_streaming, method.server_streaming) == (
        client_streaming,
        server_streaming,
    )


def test_fields_are_snake_case_with_units_on_times_and_sizes() -> None:
    for mod in MODULES:
        for m in _all_messages(mod):
            for f in m.fields:
                assert f.name == f.name.lower() and "__" not in f.name, f.full_name
                if f.type == FieldDescriptor.TYPE_DOUBLE:  # times and money
                    assert f.name.endswith(("_s", "_cpm")), f"{f.full_name}: name its unit"
                if f.type == FieldDescriptor.TYPE_INT64:  # sizes
                    assert f.name.endswith("_bytes"), f"{f.full_name}: name its unit"


# --- the messages mirror the Python types -------------------------------------------------------


@pytest.mark.parametrize(
    "cls, message, renames",
    [
        (vtypes.Detection, common_pb2.Detection, {}),
        (vtypes.LogoMatch, common_pb2.LogoMatch, {}),
        (vtypes.SafetyFlag, common_pb2.SafetyFlag, {}),
        (vtypes.ConceptScore, common_pb2.ConceptScore, {}),
        (vtypes.TextRead, common_pb2.TextRead, {}),
        (vtypes.FrameFacts, common_pb2.FrameFacts,
         {"t": "t_s", "width": "width_px", "height": "height_px"}),
        (ttypes.Reason, common_pb2.Reason, {"t": "t_s"}),
        (ttypes.Placement, common_pb2.Placement, {"campaign": "campaign_id", "media": "media_id"}),
    ],
)  # fmt: skip
def test_messages_mirror_the_dataclasses(
    cls: type, message: type[Message], renames: dict[str, str]
) -> None:
    py = {renames.get(name, name) for name in cls.__dataclass_fields__}  # type: ignore[attr-defined]
    assert py == set(message.DESCRIPTOR.fields_by_name)


@pytest.mark.parametrize(
    "literal, enum",
    [
        (vtypes.DetectionKind, common_pb2.DetectionKind),
        (typing.get_type_hints(vtypes.LogoMatch)["method"], common_pb2.LogoMatchMethod),
        (typing.get_type_hints(vtypes.SafetyFlag)["source"], common_pb2.SafetySource),
        (vtypes.KeyframeReason, common_pb2.KeyframeReason),
        (ttypes.ReasonKind, common_pb2.ReasonKind),
    ],
)
def test_enums_mirror_the_literals(literal: typing.Any, enum: typing.Any) -> None:
    prefix = _screaming(enum.DESCRIPTOR.name) + "_"
    values = {n.removeprefix(prefix).lower() for n in enum.DESCRIPTOR.values_by_name} - {
        "unspecified"
    }
    assert values == set(typing.get_args(literal))


# --- every message builds, fully populated, and round-trips ------------------------------------

_SAMPLES: dict[int, object] = {
    FieldDescriptor.TYPE_DOUBLE: 12.5,
    FieldDescriptor.TYPE_FLOAT: 0.25,
    FieldDescriptor.TYPE_INT32: 7,
    FieldDescriptor.TYPE_INT64: 1 << 33,
    FieldDescriptor.TYPE_BOOL: True,
    FieldDescriptor.TYPE_STRING: "acme",
    FieldDescriptor.TYPE_BYTES: b"\xff\xd8\x00",
}


def _sample(f: FieldDescriptor) -> object:
    if f.type == FieldDescriptor.TYPE_ENUM:
        return f.enum_type.values[-1].number  # a real, non-zero value
    return _SAMPLES[f.type]


def fill(msg: Message, oneof_pick: int) -> None:
    """Set every field (one member per oneof: the first, or the last with ``oneof_pick=-1``)."""
    for f in msg.DESCRIPTOR.fields:
        oneof = f.real_containing_oneof if hasattr(f, "real_containing_oneof") else None
        if oneof is not None and f is not oneof.fields[oneof_pick]:
            continue
        value = getattr(msg, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value["key"] = _sample(f.message_type.fields_by_name["value"])
        elif f.is_repeated and f.message_type is not None:
            fill(value.add(), oneof_pick)
        elif f.is_repeated:
            value.append(_sample(f))
        elif f.message_type is not None:
            value.SetInParent()
            fill(value, oneof_pick)
        else:
            setattr(msg, f.name, _sample(f))


ALL_MESSAGES = sorted(
    (d.full_name, d) for mod in MODULES for d in _all_messages(mod)
)  # fmt: skip


@pytest.mark.parametrize("oneof_pick", [0, -1])
@pytest.mark.parametrize("name, desc", ALL_MESSAGES, ids=[n for n, _ in ALL_MESSAGES])
def test_every_message_builds_and_round_trips(name: str, desc: Descriptor, oneof_pick: int) -> None:
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(desc)
    msg = cls()
    fill(msg, oneof_pick)
    expected = len(desc.fields) - sum(
        len(o.fields) - 1 for o in desc.oneofs if not o.name.startswith("_")
    )
    assert len(msg.ListFields()) == expected, name  # every field (one per oneof) was set
    back = cls.FromString(msg.SerializeToString())
    assert back == msg


def test_box_and_optional_time_presence() -> None:
    # An unset box means "no box" (a whole-frame flag), an unset t_s means "all placements":
    # both need presence, which proto3 gives message fields and `optional` scalars.
    flag = common_pb2.SafetyFlag(category="nudity", score=0.4, source=common_pb2.SAFETY_SOURCE_CLIP)
    assert not flag.HasField("box")
    req = targeting_pb2.LookupPlacementsRequest(media_id="m")
    assert not req.HasField("t_s")
    req.t_s = 0.0
    assert req.HasField("t_s")  # t = 0 s is a real time, not "unset"


# --- the stubs work over a real channel ---------------------------------------------------------

CHUNK_BYTES = 1 << 20


class _Targeting(targeting_pb2_grpc.TargetingServicer):
    """A minimal servicer: enough to prove the generated stubs and the upload protocol work."""

    def LookupPlacements(
        self, request: targeting_pb2.LookupPlacementsRequest, context: grpc.ServicerContext
    ) -> targeting_pb2.LookupPlacementsResponse:
        if request.media_id != "known":
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"media {request.media_id!r} was never scanned"
            )
        reason = common_pb2.Reason(
            kind=common_pb2.REASON_KIND_LOGO, what="acme", score=0.8, t_s=6.5
        )
        p = common_pb2.Placement(
            campaign_id="c", media_id="known", start_s=6, end_s=12.5, score=0.7
        )
        p.reasons.append(reason)
        return targeting_pb2.LookupPlacementsResponse(placements=[p])

    def ScanVideo(
        self,
        request_iterator: Iterator[targeting_pb2.ScanVideoRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[targeting_pb2.ScanVideoResponse]:
        first = next(request_iterator)
        if first.WhichOneof("message") != "start" or first.start.WhichOneof("source") != "upload":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must be start.upload")
        digest, received = hashlib.sha256(), 0
        for req in request_iterator:
            digest.update(req.chunk)
            received += len(req.chunk)
            yield targeting_pb2.ScanVideoResponse(
                progress=targeting_pb2.ScanProgress(received_bytes=received)
            )
        if (
            received != first.start.upload.size_bytes
            or digest.hexdigest() != first.start.upload.sha256
        ):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "upload does not match its header")
        yield targeting_pb2.ScanVideoResponse(summary=targeting_pb2.ScanSummary(stored=True))


@pytest.fixture(scope="module")
def stub() -> Iterator[targeting_pb2_grpc.TargetingStub]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    targeting_pb2_grpc.add_TargetingServicer_to_server(_Targeting(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield targeting_pb2_grpc.TargetingStub(channel)
    finally:
        channel.close()
        server.stop(grace=None)


def test_unary_call_through_generated_stubs(stub: targeting_pb2_grpc.TargetingStub) -> None:
    reply = stub.LookupPlacements(
        targeting_pb2.LookupPlacementsRequest(media_id="known"), timeout=5
    )
    assert [(p.campaign_id, p.start_s, p.reasons[0].what) for p in reply.placements] == [
        ("c", 6.0, "acme")
    ]
    with pytest.raises(grpc.RpcError) as err:
        stub.LookupPlacements(targeting_pb2.LookupPlacementsRequest(media_id="nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never scanned" in err.value.details()


def test_scan_video_uploads_a_file_larger_than_one_message(
    stub: targeting_pb2_grpc.TargetingStub,
) -> None:
    # 6 MiB is over gRPC's default 4 MiB message limit: only the chunked protocol gets it across.
    data = bytes(range(256)) * (6 * CHUNK_BYTES // 256)
    start = targeting_pb2.ScanVideoStart(
        media_id="clip",
        upload=targeting_pb2.ScanVideoUpload(
            size_bytes=len(data), filename="clip.mp4", sha256=hashlib.sha256(data).hexdigest()
        ),
    )

    def requests() -> Iterator[targeting_pb2.ScanVideoRequest]:
        yield targeting_pb2.ScanVideoRequest(start=start)
        for i in range(0, len(data), CHUNK_BYTES):
            yield targeting_pb2.ScanVideoRequest(chunk=data[i : i + CHUNK_BYTES])

    events = list(stub.ScanVideo(requests(), timeout=10))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["progress"] * 6 + ["summary"]
    assert events[-2].progress.received_bytes == len(data)

    one_message = targeting_pb2.ScanVideoRequest(chunk=data)
    with pytest.raises(grpc.RpcError) as err:
        list(
            stub.ScanVideo(
                iter([targeting_pb2.ScanVideoRequest(start=start), one_message]), timeout=10
            )
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_text_facts_reach_the_proto_and_the_json() -> None:
    from serving.facts_json import facts_to_json
    from serving.rpc.proto_convert import facts_to_proto

    read = vtypes.TextRead("Winter tyres", 0.93, (0.1, 0.2, 0.5, 0.3))
    facts = vtypes.FrameFacts("m", 1.5, text=(read,))
    msg = facts_to_proto(facts)
    assert [(r.text, round(r.score, 4)) for r in msg.text] == [("Winter tyres", 0.93)]
    box = msg.text[0].box
    assert [round(v, 4) for v in (box.x0, box.y0, box.x1, box.y1)] == [0.1, 0.2, 0.5, 0.3]
    assert facts_to_json(facts)["text"] == [
        {"text": "Winter tyres", "score": 0.93, "box": [0.1, 0.2, 0.5, 0.3]}
    ]
    assert facts_to_json(vtypes.FrameFacts("m", 0.0))["text"] == []
