"""Zen-NAS structure strings as data: parse and print them (no torch needed).

A structure string is a run of blocks written back to back as `Name(int,int,...)`, e.g.

    SuperConvK3BNRELU(3,64,2,1)SuperResIDWE2K7(64,48,2,48,1)...SuperConvK1BNRELU(32,2048,1,1)

Block grammar (Zen-NAS's structure strings):
    SuperConvK{k}BNRELU(in,out,stride,L)
    SuperResIDWE{e}K{k}(in,out,stride,bottleneck,L)   inverted-residual pairs, expansion e
    SuperResK1K{k}K1(in,out,stride,bottleneck,L)      bottleneck pairs
    SuperResK{k1}K{k2}(in,out,stride,bottleneck,L)    basic-block pairs
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from fer_core.models.syntax import ArchitectureSyntaxError, parse_file

# kind → (name pattern, field names). Order matters: K1K{k}K1 before K{k1}K{k2}.
BLOCK_KINDS: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    "conv": (re.compile(r"SuperConvK(?P<k>\d+)BNRELU"), ("in", "out", "stride", "layers")),
    "idw": (
        re.compile(r"SuperResIDWE(?P<e>\d+)K(?P<k>\d+)"),
        ("in", "out", "stride", "bottleneck", "layers"),
    ),
    "k1kxk1": (
        re.compile(r"SuperResK1K(?P<k>\d+)K1"),
        ("in", "out", "stride", "bottleneck", "layers"),
    ),
    "kxkx": (
        re.compile(r"SuperResK(?P<k>\d+)K(?P<k2>\d+)"),
        ("in", "out", "stride", "bottleneck", "layers"),
    ),
}

# The largest value of each field: far above any searched or published network, and a typo
# (999999 channels) past them would allocate gigabytes or hang while the network is built.
LIMITS = {"in": 16384, "out": 16384, "bottleneck": 16384, "stride": 16, "layers": 256,
          "k": 31, "k2": 31, "e": 32}  # fmt: skip

_BLOCK = re.compile(r"\s*(?P<name>[A-Za-z][A-Za-z0-9]*)\((?P<args>[^()]*)\)\s*")


@dataclass(frozen=True)
class BlockSpec:
    kind: str
    name: str
    c_in: int
    c_out: int
    stride: int
    layers: int
    kernel: int
    kernel2: int = 0  # second kernel of SuperResK{k1}K{k2}
    expansion: int = 1  # IDW only
    bottleneck: int = 0  # residual blocks only

    def to_text(self) -> str:
        if self.kind == "conv":
            return f"{self.name}({self.c_in},{self.c_out},{self.stride},{self.layers})"
        return (
            f"{self.name}({self.c_in},{self.c_out},{self.stride},{self.bottleneck},{self.layers})"
        )


@dataclass(frozen=True)
class Structure:
    blocks: tuple[BlockSpec, ...]

    @classmethod
    def parse(cls, text: str) -> Structure:
        return cls(tuple(_parse(text)))

    @classmethod
    def from_file(cls, path: str | Path) -> Structure:
        return parse_file(path, cls.parse, "structure")

    def to_text(self) -> str:
        return "".join(b.to_text() for b in self.blocks)

    @property
    def out_channels(self) -> int:
        return self.blocks[-1].c_out

    def with_in_chans(self, in_chans: int) -> Structure:
        first = replace(self.blocks[0], c_in=in_chans)
        return Structure((first, *self.blocks[1:]))


def _parse(text: str) -> list[BlockSpec]:
    def fail(pos: int, message: str, length: int = 1) -> ArchitectureSyntaxError:
        return ArchitectureSyntaxError("structure string", text, pos, message, length)

    blocks: list[BlockSpec] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _BLOCK.match(text, pos)
        if match is None:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise fail(start, "expected a block written as Name(int,int,...)")
        name, name_pos = match["name"], match.start("name")
        found = _block_kind(name)
        if found is None:
            raise fail(
                name_pos,
                f"unknown block {name!r}; expected SuperConvK{{k}}BNRELU, SuperResIDWE{{e}}K{{k}}, "
                "SuperResK1K{k}K1 or SuperResK{k1}K{k2}",
                len(name),
            )
        kind, fields, head = found
        values, where = _ints(match["args"], match.start("args"), fail)
        if len(values) != len(fields):
            raise fail(
                match.start("args"),
                f"{name} takes {len(fields)} integers ({','.join(fields)}), got {len(values)}",
                max(1, len(match["args"])),
            )
        args = dict(zip(fields, values, strict=True))
        for field, value, (start, length) in zip(fields, values, where, strict=True):
            if value > LIMITS[field]:
                too_large = f"{name}: {field} {value} is too large (at most {LIMITS[field]})"
                raise fail(start, too_large, length)
        for field, value in head.groupdict().items():
            if value is not None and int(value) > LIMITS[field]:
                raise fail(name_pos, f"{name}: {field} {value} is too large (at most "
                           f"{LIMITS[field]})", len(name))  # fmt: skip
        spec = BlockSpec(
            kind=kind,
            name=name,
            c_in=args["in"],
            c_out=args["out"],
            stride=args["stride"],
            layers=args["layers"],
            kernel=int(head["k"]),
            kernel2=int(head.groupdict().get("k2") or 0),
            expansion=int(head.groupdict().get("e") or 1),
            bottleneck=args.get("bottleneck", 0),
        )
        problem = _check(spec, blocks[-1] if blocks else None)
        if problem:
            raise fail(match.start("name"), f"{name}: {problem}", match.end() - match.start())
        blocks.append(spec)
        pos = match.end()
    if not blocks:
        raise fail(0, "the structure string is empty")
    return blocks


def _block_kind(name: str) -> tuple[str, tuple[str, ...], re.Match[str]] | None:
    for kind, (pattern, fields) in BLOCK_KINDS.items():
        head = pattern.fullmatch(name)
        if head:
            return kind, fields, head
    return None


def _ints(args: str, offset: int, fail) -> tuple[list[int], list[tuple[int, int]]]:
    """The comma-separated integers of `args` and each one's (position, length) in the text."""
    values, where = [], []
    pos = offset
    for token in args.split(","):
        stripped = token.strip()
        start = pos + len(token) - len(token.lstrip())
        if not re.fullmatch(r"\d+", stripped):
            raise fail(
                start, f"expected a non-negative integer, got {stripped!r}", max(1, len(stripped))
            )
        values.append(int(stripped))
        where.append((start, len(stripped)))
        pos += len(token) + 1
    return values, where


def _check(spec: BlockSpec, previous: BlockSpec | None) -> str | None:
    if previous is not None and spec.c_in != previous.c_out:
        return (
            f"input channels {spec.c_in} do not match the previous block's output {previous.c_out}"
        )
    if min(spec.c_in, spec.c_out, spec.layers, spec.stride) < 1:
        return "channels, stride and layer count must be at least 1"
    if spec.kind != "conv" and spec.bottleneck < 1:
        return "bottleneck channels must be at least 1"
    for k in (spec.kernel, spec.kernel2 or 1):
        if k % 2 == 0:
            return f"kernel sizes must be odd, got {k}"
    return None


# Searched backbones (ZenNet-SA's ZenNet-M and ZenNet-R, from Zen-NAS).
ZENNET_M = (
    "SuperConvK3BNRELU(3,64,2,1)SuperResIDWE2K7(64,48,2,48,1)SuperResIDWE2K7(48,80,2,80,1)"
    "SuperResIDWE2K7(80,96,2,96,3)SuperResIDWE2K7(96,96,1,96,3)SuperResIDWE6K7(96,32,2,40,4)"
    "SuperConvK1BNRELU(32,2048,1,1)"
)
ZENNET_R = (
    "SuperConvK3BNRELU(3,8,1,1)SuperResK1K3K1(8,8,1,8,1)SuperResK1K5K1(8,32,2,8,1)"
    "SuperResK1K7K1(32,160,2,8,1)SuperResK1K7K1(160,256,2,16,5)SuperConvK1BNRELU(256,192,1,1)"
)

# Initial structures of the FER searches (ZenNet-SA), where Zen-NAS evolution starts.
INIT_M = (
    "SuperConvK3BNRELU(3,8,2,1)SuperResIDWE6K3(8,32,2,8,1)SuperResIDWE6K3(32,48,2,32,1)"
    "SuperResIDWE6K3(48,96,2,48,1)SuperResIDWE6K3(96,128,2,96,1)SuperConvK1BNRELU(128,2048,1,1)"
)
INIT_R = (
    "SuperConvK3BNRELU(3,8,1,1)SuperResK3K3(8,16,1,8,1)SuperResK3K3(16,32,2,16,1)"
    "SuperResK3K3(32,64,2,32,1)SuperResK3K3(64,64,2,32,1)SuperConvK1BNRELU(64,128,1,1)"
)
