"""Expression labels by name. Every dataset declares its class names; mapping between class
sets is by name, never by position."""

from __future__ import annotations

FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FERPLUS = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")
CKPLUS = ("angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")
AFFECTNET8 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")
AFFECTNET7 = AFFECTNET8[:7]
RAFDB = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")  # file labels 1..7

CANONICAL = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

_ALIASES = {
    "anger": "angry",
    "angry": "angry",
    "an": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "di": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "fe": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "ha": "happy",
    "sad": "sad",
    "sadness": "sad",
    "sa": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "su": "surprise",
    "neutral": "neutral",
    "neutrality": "neutral",
    "calm": "neutral",
    "ne": "neutral",
    "contempt": "contempt",
    "co": "contempt",
}


def canonical(name: str) -> str:
    """The project's name for an expression label (`Anger`, `happiness`, `HA` → angry, happy)."""
    key = name.strip().lower()
    try:
        return _ALIASES[key]
    except KeyError:
        raise ValueError(
            f"unknown expression label {name!r}; known: {', '.join(CANONICAL)} (and common "
            "spellings such as anger, happiness, sadness, surprised)"
        ) from None


def index_map(source: tuple[str, ...], target: tuple[str, ...]) -> list[int | None]:
    """For each source class, its index in `target` (None where the target has no such class)."""
    where = {canonical(n): i for i, n in enumerate(target)}
    return [where.get(canonical(n)) for n in source]
