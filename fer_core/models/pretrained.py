"""Loading user-supplied weights into a part of a network, with a report of what matched.

POSTER V2 starts from an IR-50 (ArcFace, MS-Celeb) and a 68-landmark MobileFaceNet; both are
distributed as plain state dicts, possibly wrapped (`{"state_dict": ...}`) or prefixed
(`module.`). Nothing is downloaded: the user passes the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

_WRAPPERS = ("state_dict", "model", "model_state", "net")
_PREFIXES = ("module.", "backbone.", "ir_back.", "face_landback.", "model.")


@dataclass(frozen=True)
class LoadReport:
    component: str
    path: Path
    loaded: int  # tensors copied
    missing: tuple[str, ...]  # the model has them, the file does not (they keep their init)
    unexpected: tuple[str, ...]  # the file has them, nothing in the model matches
    ignored: tuple[str, ...]  # the file has them for parts this network does not use

    @property
    def complete(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        lines = [f"{self.component}: loaded {self.loaded} tensors from {self.path}"]
        if self.ignored:
            lines.append(
                f"  ignored {len(self.ignored)} keys of unused parts "
                f"(e.g. {', '.join(self.ignored[:3])})"
            )
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                shown = ", ".join(keys[:8]) + (" …" if len(keys) > 8 else "")
                lines.append(f"  {len(keys)} {label} keys: {shown}")
        return "\n".join(lines)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and unsupported-type errors all mean "not weights"
        raise ValueError(f"{path}: not a readable torch state dict ({err})") from err
    for key in _WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{path}: expected a state dict of tensors (optionally under 'state_dict')"
        )
    return obj


def _strip_prefixes(state: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix (`module.`, …) when that makes more keys match the model."""
    for prefix in _PREFIXES:
        stripped = {k.removeprefix(prefix): v for k, v in state.items()}
        if len(wanted & stripped.keys()) > len(wanted & state.keys()):
            state = stripped
    return state


def load_into(
    module: nn.Module,
    path: str | Path,
    component: str,
    unused: tuple[str, ...] = (),
) -> LoadReport:
    """Copy matching tensors from `path` into `module`; `unused` are regexes for file keys
    that belong to parts the network leaves out. A shape mismatch is an error."""
    path = Path(path)
    target = module.state_dict()
    state = _strip_prefixes(read_state_dict(path), set(target))
    ignore = [re.compile(p) for p in unused]
    matched, unexpected, ignored = {}, [], []
    for key, value in state.items():
        if key in target:
            if tuple(value.shape) != tuple(target[key].shape):
                raise ValueError(
                    f"{path}: {component} key {key!r} has shape {tuple(value.shape)}, "
                    f"the model expects {tuple(target[key].shape)}"
                )
            matched[key] = value
        elif any(p.match(key) for p in ignore):
            ignored.append(key)
        else:
            unexpected.append(key)
    # BN batch counters are absent from older checkpoints and carry no information.
    missing = [k for k in target if k not in matched and not k.endswith("num_batches_tracked")]
    module.load_state_dict(matched, strict=False)
    return LoadReport(
        component, path, len(matched), tuple(missing), tuple(unexpected), tuple(ignored)
    )
