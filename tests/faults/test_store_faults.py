"""The placement store's disk full or read-only, for real (a tmpfs filled until ENOSPC, a
read-only bind mount): a clear error naming the cause and what to do, no corruption (a rerun
with --resume ends exactly as an uninterrupted scan), and a server that keeps answering the
lookups it can."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import grpc
import pytest

from serving._proto.onscreen.v1 import targeting_pb2, targeting_pb2_grpc
from serving.placement_store import PlacementStore
from targeting.types import Placement, Reason
from tests.conftest import REPO, read_rgb
from tests.faults.mounts import fill, readonly_view, tmpfs
from tests.serving.commands.test_scan import face_rules
from tests.serving.rpc.grpc_fixtures import code_of, local_config
from vision.errors import PlacementStoreError

pytestmark = pytest.mark.slow

PHOTOS = ("zidane", "bus", "astronaut", "coffee", "grace_hopper", "chelsea")


def _placement(media: str, i: int = 0) -> Placement:
    return Placement(
        campaign=f"c{i}",
        media=media,
        start_s=0.0,
        end_s=1.0,
        score=0.5,
        reasons=(Reason(kind="face", what="face", score=0.9, t=0.0),),
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, real_images: dict[str, Path]) -> Path:
    from vision.video_write import write_video

    root = tmp_path_factory.mktemp("media")
    for name in PHOTOS:
        frame = cv2.resize(read_rgb(real_images[name]), (320, 180), interpolation=cv2.INTER_AREA)
        write_video(root / f"{name}.mp4", [frame] * 10, fps=5.0)
    return root


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_scan(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        store = PlacementStore(disk / "s.sqlite")
        store.replace_media("kept", [_placement("kept")])
        filler = fill(disk)
        many = [_placement("kept", i) for i in range(5000)]  # far more than the free bytes
        with pytest.raises(PlacementStoreError) as info:
            store.replace_media("kept", many)
        message = str(info.value)
        assert f"the disk holding {disk} is full" in message, message
        assert "nothing of it was written (its previous scan, if any, is kept)" in message
        assert [p.campaign for p in store.lookup("kept") or []] == ["c0"]
        filler.unlink()
        store.replace_media("kept", many)  # space again: the same store writes
        assert len(store.lookup("kept") or []) == 5000
        store.close()
        with PlacementStore(disk / "s.sqlite", readonly=True) as again:
            assert len(again.lookup("kept") or []) == 5000
            integrity = again._conn().execute("PRAGMA integrity_check").fetchone()[0]
        assert integrity == "ok"


def test_a_read_only_mount_is_refused_for_writing_and_served_for_reading(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with PlacementStore(src / "s.sqlite") as store:
        store.replace_media("m", [_placement("m")])
    with readonly_view(src, tmp_path / "ro") as ro:
        with pytest.raises(PlacementStoreError) as info:
            PlacementStore(ro / "s.sqlite")
        assert str(info.value) == (
            f"placement store {ro / 's.sqlite'} is on a read-only file system: it cannot be "
            "written there; store elsewhere, or open it read-only to serve lookups"
        )
        with pytest.raises(PlacementStoreError, match="is on a read-only file system"):
            PlacementStore(ro / "sub" / "new.sqlite")
        with PlacementStore(ro / "s.sqlite", readonly=True) as reader:
            assert [p.campaign for p in reader.lookup("m") or []] == ["c0"]
            assert reader.lookup("never") is None
        assert sorted(os.listdir(ro)) == ["s.sqlite"]  # nothing written beside it


def _scan_argv(media: Path, rules: Path, out: Path, store: Path) -> list[str]:
    code = "import sys; from serving.commands.cli import main; sys.exit(main())"
    return [
        sys.executable, "-c", code, "scan", str(media), "--rules", str(rules),
        "--out", str(out / "o.jsonl"), "--store", str(store), "--semantic", "off",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _stored(path: Path) -> dict:
    with PlacementStore(path, readonly=True) as s:
        return {m: [p.to_json() for p in s.lookup(m) or []] for m in s.media_ids()}


def test_a_scan_whose_store_disk_fills_up_stops_clearly_and_resumes_exactly(
    tmp_path: Path, media: Path
) -> None:
    rules = face_rules(tmp_path / "rules")
    clean = tmp_path / "clean"
    subprocess.run(
        _scan_argv(media, rules, clean, clean / "s.sqlite"), env=_env(), check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    expected_lines = sorted((clean / "o.jsonl").read_text().splitlines())
    expected_store = _stored(clean / "s.sqlite")
    assert len(expected_store) == len(PHOTOS)

    out = tmp_path / "out"
    with tmpfs(tmp_path / "disk", "2m") as disk:
        argv = _scan_argv(media, rules, out, disk / "s.sqlite")
        proc = subprocess.Popen(argv, env=_env(), stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        lines = []
        filler = None
        for line in proc.stderr:
            lines.append(line)
            if filler is None and line.startswith("done "):
                filler = fill(disk)  # the disk fills up while the scan runs
        proc.wait(timeout=300)
        proc.stderr.close()
        err = "".join(lines)
        assert filler is not None, err
        assert proc.returncode == 2, err
        assert f"the disk holding {disk} is full" in err, err
        assert "then rerun (a scan: with --resume)" in err, err
        assert "Traceback" not in err, err
        filler.unlink()
        subprocess.run(
            [*argv, "--resume"], env=_env(), check=True, capture_output=True, timeout=300
        )
        assert sorted((out / "o.jsonl").read_text().splitlines()) == expected_lines
        assert _stored(disk / "s.sqlite") == expected_store


def _scan_rpc(stub: targeting_pb2_grpc.TargetingStub, media_id: str, name: str) -> list:
    start = targeting_pb2.ScanVideoStart(media_id=media_id, media_root_path=name, store=True)
    return list(stub.ScanVideo(iter([targeting_pb2.ScanVideoRequest(start=start)]), timeout=120))


def _lookup(stub: targeting_pb2_grpc.TargetingStub, media_id: str):
    return stub.LookupPlacements(
        targeting_pb2.LookupPlacementsRequest(media_id=media_id), timeout=5
    )


@pytest.fixture(scope="module")
def pipeline():
    from vision.pipeline import PipelineConfig, build_pipeline

    return build_pipeline(PipelineConfig(semantic="off"))


def test_a_server_whose_store_disk_fills_keeps_serving_lookups_and_recovers(
    tmp_path: Path, media: Path, pipeline, loop
) -> None:
    rules = face_rules(tmp_path / "rules")
    with tmpfs(tmp_path / "disk", "2m") as disk:
        cfg = local_config(rules, media_root=media, store=disk / "s.sqlite")
        server = loop.start(cfg, pipeline)
        try:
            with grpc.insecure_channel(server.address) as ch:
                stub = targeting_pb2_grpc.TargetingStub(ch)
                assert _scan_rpc(stub, "first", "zidane.mp4")[-1].summary.stored
                before = _lookup(stub, "first")
                filler = fill(disk)
                code, details = code_of(lambda: _scan_rpc(stub, "second", "bus.mp4"))
                assert code == grpc.StatusCode.UNAVAILABLE, details
                assert "is full" in details and "nothing of it was written" in details, details
                assert _lookup(stub, "first") == before  # lookups keep working
                assert code_of(lambda: _lookup(stub, "second"))[0] == grpc.StatusCode.NOT_FOUND
                filler.unlink()
                assert _scan_rpc(stub, "second", "bus.mp4")[-1].summary.stored
                assert _lookup(stub, "second").placements is not None
        finally:
            loop.stop(server)


def test_a_server_on_a_read_only_store_serves_lookups_and_refuses_to_store(
    tmp_path: Path, media: Path, pipeline, loop
) -> None:
    rules = face_rules(tmp_path / "rules")
    src = tmp_path / "src"
    with PlacementStore(src / "s.sqlite") as store:
        store.replace_media("kept", [_placement("kept")])
    with readonly_view(src, tmp_path / "ro") as ro:
        server = loop.start(local_config(rules, media_root=media, store=ro / "s.sqlite"), pipeline)
        try:
            with grpc.insecure_channel(server.address) as ch:
                stub = targeting_pb2_grpc.TargetingStub(ch)
                assert [p.campaign_id for p in _lookup(stub, "kept").placements] == ["c0"]
                code, details = code_of(lambda: _scan_rpc(stub, "new", "bus.mp4"))
                assert code == grpc.StatusCode.FAILED_PRECONDITION
                assert "placement store is read-only" in details, details
        finally:
            loop.stop(server)
