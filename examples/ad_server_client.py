"""What an ad-server team copies: ask onscreen for placements, with a deadline and a fallback.

    onscreen serve --rules examples/rules --port 50051 &      # in another terminal
    python examples/ad_server_client.py examples/media/pin-coffee.jpg [--server localhost:50051]

The ad server must answer its own caller in time, whatever onscreen does: every call has a
deadline, and every failure maps to a decision (no placement, retry elsewhere, back off).

The deadline (DEADLINE_S) is sized for a CPU-only host, where the 0.25 s an ad server would
like always expires: one pin image runs the face/safety detector and reference-logo matching on
the CPU, measured at 2.5-4.0 s per image (12 calls in a row) on the 2 shared cores of the
development machine under load (load average ~10). On a GPU host p99 is tens of ms: set
DEADLINE_S to your own latency budget (e.g. 0.05) there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from serving.client import ClientError, OnscreenClient

# What to do on each failure: the status code tells who is at fault.
GIVE_UP = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}  # the request is bad
BACK_OFF = {grpc.StatusCode.RESOURCE_EXHAUSTED}  # onscreen is full: shed load for a moment
TRY_ELSEWHERE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
DEADLINE_S = 8.0
"""Deadline of one TargetImage call, seconds: fits a CPU-only host (see the module doc)."""


def choose_campaign(client: OnscreenClient, image: bytes, media_id: str) -> str | None:
    """The best campaign for an image, or None (serve a house ad) on any failure."""
    try:
        result = client.target_image(
            image, media_id=media_id, max_placements=3, timeout_s=DEADLINE_S
        )
    except ClientError as err:
        if err.code in BACK_OFF:
            print("onscreen is over capacity; backing off", file=sys.stderr)
        elif err.code in TRY_ELSEWHERE:
            print(f"onscreen replica unavailable ({err.code.name}); next replica", file=sys.stderr)
        elif err.code in GIVE_UP:
            print(f"bad request, not retried: {err}", file=sys.stderr)
        else:
            print(f"unexpected: {err}", file=sys.stderr)
        return None
    if not result.placements:
        return None
    best = result.placements[0]
    for r in best.reasons:  # every placement says why; log it for the advertiser's report
        print(f"  because {r.kind} {r.what} (score {r.score:.2f} at {r.t:.1f}s)")
    return best.campaign


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("image", type=Path)
    ap.add_argument("--server", default="localhost:50051")
    ap.add_argument("--api-key", default=None)
    args = ap.parse_args()
    with OnscreenClient(args.server, api_key=args.api_key) as client:
        campaign = choose_campaign(client, args.image.read_bytes(), args.image.name)
    print(f"{args.image.name}: {campaign or 'no campaign: serve the house ad'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
