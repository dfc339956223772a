"""Brand-safety classes: what ``exclude.safety`` may name, where each signal comes from.

Categories follow the GARM brand-safety floor, restricted to what is *visible*:

- ``nudity`` comes from the face/nudity detector (boxes of exposed-body classes);
- the others come from CLIP: the frame embedding is compared with a few prompts describing the
  category *and* with neutral prompts, and the score is the softmax probability mass on the
  category (0..1). A softmax against neutral scenes is used instead of a raw cosine because raw
  CLIP cosines sit in a narrow band (~0.15..0.35) that shifts with the image, so one absolute
  threshold would not mean the same thing on two frames.

This is pure data; scoring lives in ``vision.safety``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SafetyClass:
    """One brand-safety category. ``threshold`` is the default score (0..1) that blocks."""

    name: str
    garm: str
    source: Literal["detector", "clip"]
    threshold: float
    prompts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


NUDITY_DETECTOR_LABELS = (
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)
"""NudeNet classes that count as nudity (covered classes and bare feet/belly/armpits do not)."""

SAFETY_CLASSES: tuple[SafetyClass, ...] = (
    SafetyClass(
        "nudity", "Adult & Explicit Sexual Content", "detector", 0.45, labels=NUDITY_DETECTOR_LABELS
    ),
    SafetyClass(
        "violence",
        "Crime & Harmful Acts",
        "clip",
        0.6,
        prompts=("people fighting violently", "a violent assault", "a bloody injury"),
    ),
    SafetyClass(
        "weapons",
        "Arms & Ammunition",
        "clip",
        0.6,
        prompts=("a gun", "a person holding a firearm", "a rifle", "a knife used as a weapon"),
    ),
    SafetyClass(
        "drugs",
        "Illegal Drugs, Tobacco, Vaping & Alcohol",
        "clip",
        0.6,
        prompts=("illegal drugs and a syringe", "a person smoking a joint", "lines of cocaine"),
    ),
    SafetyClass(
        "alcohol",
        "Illegal Drugs, Tobacco, Vaping & Alcohol",
        "clip",
        0.6,
        prompts=("people drinking beer", "bottles of liquor", "a glass of wine"),
    ),
    SafetyClass(
        "tobacco",
        "Illegal Drugs, Tobacco, Vaping & Alcohol",
        "clip",
        0.6,
        prompts=("a person smoking a cigarette", "a person vaping"),
    ),
    SafetyClass(
        "disaster",
        "Death, Injury or Military Conflict",
        "clip",
        0.6,
        prompts=("a car crash", "a burning building", "a natural disaster with destruction"),
    ),
    SafetyClass(
        "military",
        "Death, Injury or Military Conflict",
        "clip",
        0.6,
        prompts=("soldiers in combat", "a war zone", "a tank firing"),
    ),
    SafetyClass(
        "gore",
        "Death, Injury or Military Conflict",
        "clip",
        0.6,
        prompts=("a gory wound with blood", "a dead body"),
    ),
)

NEUTRAL_PROMPTS = (
    "a photo",
    "an everyday scene",
    "people talking",
    "a street",
    "a landscape",
    "a product on a table",
    "a person smiling",
    "a room indoors",
)
"""Competitors in the softmax: ordinary content that should take the probability mass."""

SAFETY_BY_NAME = {c.name: c for c in SAFETY_CLASSES}

NOT_A_PERSON = "not_a_person"
"""Category of the second-opinion flag (``vision.safety``): the semantic model's probability
that the frame shows no real person (an animal, a cartoon, a pattern). Not a brand-safety class
(rules cannot exclude it); ``targeting.safety_policy`` reads it to overrule weak detector
nudity and face boxes."""
NOT_A_PERSON_PROMPTS = (
    "a cartoon",
    "an animated film",
    "a drawing",
    "an illustration",
    "an animal",
    "a bird",
    "a cat",
    "a dog",
    "a rabbit",
    "an abstract colourful pattern",
    "a texture",
    "a microscope image",
)
"""Depictions of no real person. Vehicles, machines and rooms are deliberately absent: people
stand in front of them (ultralytics' bus.jpg scores 1.0 "a vehicle" against person prompts)."""
PERSON_PROMPTS = (
    "a photo of a person",
    "a naked person",
    "a woman",
    "a man",
    "people",
    "a person's bare skin",
    "a face",
    "a person in a bikini",
    "underwear",
    "a nude body",
    "a person in a street",
    "a crowd",
)
"""Depictions of real people, clothed or not, alone or in a crowd: the softmax's other side."""
