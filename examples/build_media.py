"""Build the example media from real photos that ship inside installed packages.

Real pixels, known truth: a 20 s video cut from five photos, with the acme logo pasted on screen
from 6.0 s to 12.0 s (across a cut at 9.0 s), the rival logo from 17.0 s to the end and a text
banner "WINTER TYRES SALE" over the bus from 4.0 s to 9.0 s, plus a pin image. The truth is written next to the media as ``truth.json`` so a person (and the tests)
can check what the scan should find.

    python examples/build_media.py [OUT_DIR]     # default: examples/media
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.synthetic import paste_logo
from vision.video_write import write_video

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules"
SIZE = (640, 360)
FPS = 10


def package_image(package: str, *parts: str) -> Path:
    module = __import__(package)
    return Path(module.__file__).resolve().parent.joinpath(*parts)


PHOTOS = {
    "grace_hopper": ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
    "bus": ("ultralytics", "assets", "bus.jpg"),
    "astronaut": ("skimage", "data", "astronaut.png"),
    "coffee": ("skimage", "data", "coffee.png"),
    "zidane": ("ultralytics", "assets", "zidane.jpg"),
}


@dataclass(frozen=True)
class Scene:
    photo: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class LogoOverlay:
    brand: str
    start_s: float
    end_s: float
    center: tuple[float, float]
    scale: float


SCENES = (
    Scene("grace_hopper", 0.0, 4.0),
    Scene("bus", 4.0, 9.0),
    Scene("astronaut", 9.0, 13.0),
    Scene("coffee", 13.0, 17.0),
    Scene("zidane", 17.0, 20.0),
)
OVERLAYS = (
    LogoOverlay("acme", 6.0, 12.0, center=(0.72, 0.86), scale=0.32),
    LogoOverlay("rival", 17.0, 20.0, center=(0.8, 0.78), scale=0.28),
)


@dataclass(frozen=True)
class TextBanner:
    """One line of text on a plate, as a broadcaster's lower third or a shop's banner."""

    text: str
    start_s: float
    end_s: float
    origin: tuple[float, float]
    size_px: int


BANNERS = (TextBanner("WINTER TYRES SALE", 4.0, 9.0, origin=(0.05, 0.06), size_px=30),)


def read_rgba(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(path)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    code = cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(img, code)


def cover(image: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Resize to cover ``size`` (w, h) and center-crop: every scene fills the frame."""
    w, h = size
    s = max(w / image.shape[1], h / image.shape[0])
    resized = cv2.resize(
        image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA
    )
    y0 = (resized.shape[0] - h) // 2
    x0 = (resized.shape[1] - w) // 2
    return np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w, :3])


def brand_logo(brand: str, rules: Path = RULES) -> np.ndarray:
    files = sorted(
        p
        for p in (rules / "brands" / brand).iterdir()
        if p.suffix.lower() in {".png", ".jpg", ".jpeg"}
    )
    return read_rgba(files[0])


def on_plate(logo: np.ndarray, margin: float = 0.08) -> np.ndarray:
    """A transparent logo flattened onto a white card, as broadcasters show sponsor bugs.

    A see-through text logo over a busy photo keeps too few stable features for reference
    matching (see vision/logo_matcher.py); on a card it is found every time.
    """
    if logo.shape[2] == 3:
        return logo
    padded = pad_transparent(logo, margin)
    a = padded[..., 3:4].astype(np.float32) / 255.0
    card = padded[..., :3].astype(np.float32) * a + 255.0 * (1 - a)
    return card.round().astype(np.uint8)


def pad_transparent(logo: np.ndarray, margin: float = 0.08) -> np.ndarray:
    """The RGBA logo with a transparent border: the plate's geometry, the logo's visible pixels.

    Pasting this instead of the card gives the truth box of the logo itself (what a matcher
    should report), not of the white card around it.
    """
    h, w = logo.shape[:2]
    m = round(margin * max(h, w))
    rgba = logo if logo.shape[2] == 4 else np.dstack([logo, np.full((h, w), 255, np.uint8)])
    return np.pad(rgba, ((m, m), (m, m), (0, 0)))


def build_video(
    path: Path,
    scenes: tuple[Scene, ...] = SCENES,
    overlays: tuple[LogoOverlay, ...] = OVERLAYS,
    *,
    banners: tuple[TextBanner, ...] = BANNERS,
    rules: Path = RULES,
    fps: int = FPS,
) -> dict[str, object]:
    """Write the video and return its truth: cut times, each overlay's and each banner's
    interval and box."""
    from vision.synthetic import render_text

    photos = {s.photo: cover(read_rgba(package_image(*PHOTOS[s.photo]))[..., :3]) for s in scenes}
    raw = {o.brand: brand_logo(o.brand, rules) for o in overlays}
    logos = {b: on_plate(logo) for b, logo in raw.items()}
    boxes: dict[str, list[float]] = {}
    blank = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    for o in overlays:  # truth: the logo's own visible pixels, not its card
        _, box = paste_logo(blank, pad_transparent(raw[o.brand]), center=o.center, scale=o.scale)
        boxes[o.brand] = [round(v, 4) for v in box]
    text_boxes = [
        render_text(blank, b.text, origin=b.origin, size_px=b.size_px, plate=(20, 20, 20))[1]
        for b in banners
    ]
    duration = scenes[-1].end_s
    n = round(duration * fps)

    def frames():
        for i in range(n):
            t = i / fps
            scene = next(s for s in scenes if s.start_s <= t < s.end_s)
            img = photos[scene.photo]
            for o in overlays:
                if o.start_s <= t < o.end_s:
                    img, _ = paste_logo(img, logos[o.brand], center=o.center, scale=o.scale)
            for b in banners:
                if b.start_s <= t < b.end_s:
                    img, _ = render_text(
                        img, b.text, origin=b.origin, size_px=b.size_px, plate=(20, 20, 20)
                    )
            yield img

    write_video(path, frames(), fps)
    return {
        "media": path.name,
        "fps": fps,
        "duration_s": duration,
        "cuts_s": [s.start_s for s in scenes[1:]],
        "scenes": [asdict(s) for s in scenes],
        "logos": [{**asdict(o), "box": boxes.get(o.brand)} for o in overlays],
        "text": [
            {**asdict(b), "box": [round(v, 4) for v in box]}
            for b, box in zip(banners, text_boxes, strict=True)
        ],
    }


def build_pin(path: Path, *, rules: Path = RULES) -> dict[str, object]:
    """A pin image: the coffee photo with the rival logo in a corner."""
    img = cover(read_rgba(package_image(*PHOTOS["coffee"]))[..., :3], (800, 600))
    img, box = paste_logo(img, brand_logo("rival", rules), center=(0.22, 0.8), scale=0.3)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return {"media": path.name, "logos": [{"brand": "rival", "box": [round(v, 4) for v in box]}]}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else HERE / "media"
    out.mkdir(parents=True, exist_ok=True)
    truth = [build_video(out / "demo.mp4"), build_pin(out / "pin-coffee.jpg")]
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"example media written to {out}: demo.mp4 (20 s), pin-coffee.jpg, truth.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
