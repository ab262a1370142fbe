"""FER2013 as lossless WebP faces in npz parts small enough to travel, rebuilt into the
original CSV byte for byte (its SHA-256 checked)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import warnings
import zlib
from pathlib import Path

from trainer.device_pass.common import MIB, Say, say
from trainer.files import atomic_write

MANIFEST = "manifest.json"
HEADER = "emotion,pixels,Usage"
FERPLUS = "fer2013new.csv"
SIDE = 48
PART_OVERHEAD = 4096  # an npz part's zip and npy headers, well above what they take
ROW_OVERHEAD = 6  # a face's emotion (uint8), usage code (uint8) and length (uint32)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_csv(data: str | Path) -> Path:
    """The FER2013 file `data` names: a .csv or .csv.gz, or a folder holding one."""
    data = Path(data)
    if data.is_dir():
        for name in ("fer2013.csv", "fer2013.csv.gz"):
            if (data / name).is_file():
                return data / name
        raise ValueError(f"{data}: holds neither fer2013.csv nor fer2013.csv.gz")
    if not data.is_file():
        raise ValueError(f"{data}: no such file or folder")
    return data


def _open_csv(path: Path):
    """The file's uncompressed bytes as a binary stream (gzip told by its magic number)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


_PIXEL_TEXT = [str(v) for v in range(256)]


def _row_text(emotion: int, pixels, usage: str) -> str:
    """One row as FER2013 writes it (`pixels`: a flat uint8 array)."""
    return f"{emotion},{' '.join([_PIXEL_TEXT[v] for v in pixels.tolist()])},{usage}"


def _parse_row(line: str, where: str):
    """(emotion, 48×48 uint8 face, usage) of a row whose text `_row_text` rebuilds exactly."""
    import numpy as np

    fields = line.split(",")
    if len(fields) != 3:
        raise ValueError(f"{where}: expected emotion,pixels,Usage, got {len(fields)} fields")
    emotion, pixels, usage = fields
    if not emotion.isdigit() or not 0 <= int(emotion) <= 255:
        raise ValueError(f"{where}: emotion {emotion!r} is not an integer from 0 to 255")
    try:
        with warnings.catch_warnings():  # numpy warns of text it stops at (later: ValueError)
            warnings.simplefilter("error", DeprecationWarning)
            values = np.fromstring(pixels, dtype=np.int32, sep=" ")
    except (ValueError, DeprecationWarning):
        values = None
    if values is None or values.size != SIDE * SIDE or values.min() < 0 or values.max() > 255:
        raise ValueError(f"{where}: expected {SIDE * SIDE} pixel values from 0 to 255")
    face = values.astype(np.uint8)
    if _row_text(int(emotion), face, usage) != line:
        raise ValueError(
            f"{where}: not written as `unpack` would rebuild it (leading zeros, extra spaces?), "
            "so it could not come back byte for byte"
        )
    return int(emotion), face.reshape(SIDE, SIDE), usage


def _encode(face, where: str) -> bytes:
    """A face as lossless WebP, checked to decode back to the same pixels."""
    import cv2

    ok, buf = cv2.imencode(".webp", face, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
    back = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
    if back is None or back.shape != face.shape or (back != face).any():
        raise ValueError(f"{where}: the face does not survive lossless WebP")
    return buf.tobytes()


def _write_part(path: Path, emotions, usages, blobs, usage_names) -> None:
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                emotion=np.array(emotions, np.uint8),
                usage=np.array([usage_names.index(u) for u in usages], np.uint8),
                usages=np.array(usage_names),
                lengths=np.array([len(b) for b in blobs], np.uint32),
                data=np.frombuffer(b"".join(blobs), np.uint8),
            )

    atomic_write(path, write)


def pack(data: str | Path, out: str | Path, part_mib: float = 15.0, say: Say = say) -> dict:
    """FER2013 (`data`: csv, csv.gz or their folder) → `out`/fer2013-NN.npz parts, each under
    `part_mib` MiB, and `out`/manifest.json; FER+'s fer2013new.csv beside it is copied as it
    is when it fits in a part. The parts are read back and must rebuild the original text."""
    source = find_csv(data)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder")
    limit = int(part_mib * MIB)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        try:
            return _pack(source, out, limit, part_mib, say)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise ValueError(f"{source}: damaged ({err})") from None
    except BaseException:  # the folder was new or empty: what is in it is this pack's
        for f in out.iterdir():
            f.unlink()
        if created:
            out.rmdir()
        raise


def _pack(source: Path, out: Path, limit: int, part_mib: float, say: Say) -> dict:
    digest, total_bytes, rows = hashlib.sha256(), 0, 0
    parts: list[dict] = []
    usage_names: list[str] = []
    emotions, usages, blobs, size = [], [], [], PART_OVERHEAD
    newline, final_newline = b"\n", True

    def flush() -> None:
        nonlocal emotions, usages, blobs, size
        name = f"fer2013-{len(parts):02d}.npz"
        _write_part(out / name, emotions, usages, blobs, usage_names)
        written = (out / name).stat().st_size
        if written > limit:  # the estimate is generous; this would be a bug
            raise ValueError(f"{out / name}: {written} bytes, over --part-mib {part_mib}")
        parts.append({"name": name, "rows": len(blobs), "bytes": written})
        say(f"{out / name}: {len(blobs)} faces, {written / MIB:.2f} MiB")
        emotions, usages, blobs, size = [], [], [], PART_OVERHEAD

    with _open_csv(source) as f:
        for number, raw in enumerate(f, 1):
            digest.update(raw)
            total_bytes += len(raw)
            where = f"{source} line {number}"
            if number == 1:
                newline = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
            if raw.endswith(newline):
                body = raw[: -len(newline)]
            elif raw.endswith(b"\n"):
                raise ValueError(f"{where}: line ending differs from the header's")
            else:
                body, final_newline = raw, False
            try:
                line = body.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError(f"{where}: not ASCII text") from None
            if number == 1:
                if line != HEADER:
                    raise ValueError(f"{source}: header {line[:60]!r} is not {HEADER!r}")
                continue
            emotion, face, usage = _parse_row(line, where)
            if usage not in usage_names:
                if len(usage_names) == 255:
                    raise ValueError(f"{where}: more than 255 Usage values")
                usage_names.append(usage)
            blob = _encode(face, where)
            cost = ROW_OVERHEAD + len(blob)
            names = sum(4 * len(n) for n in usage_names)  # the Usage names, as numpy's unicode
            if PART_OVERHEAD + names + cost > limit:
                raise ValueError(f"--part-mib {part_mib}: too small for one face ({cost} bytes)")
            if size + names + cost > limit:
                flush()
            emotions.append(emotion)
            usages.append(usage)
            blobs.append(blob)
            size += cost
            rows += 1
    if rows == 0:
        raise ValueError(f"{source}: holds no faces")
    flush()
    for part in parts:
        part["sha256"] = sha256_file(out / part["name"])
    extras = []
    ferplus = source.parent / FERPLUS
    if ferplus.is_file():
        if ferplus.stat().st_size <= limit:
            shutil.copyfile(ferplus, out / FERPLUS)
            extras.append(
                {"name": FERPLUS, "bytes": ferplus.stat().st_size, "sha256": sha256_file(ferplus)}
            )
        else:
            say(f"left out {ferplus}: larger than --part-mib {part_mib}")
    manifest = {
        "format": "fer2013 as lossless WebP in npz parts, 1",
        "source": source.name,
        "rows": rows,
        "bytes": total_bytes,
        "sha256": digest.hexdigest(),
        "newline": newline.decode(),
        "final_newline": final_newline,
        "parts": parts,
        "extras": extras,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(text))
    check = hashlib.sha256()
    for chunk in _rebuilt_text(manifest, [out]):
        check.update(chunk)
    if check.hexdigest() != manifest["sha256"]:
        raise ValueError(f"{out}: the parts do not rebuild {source} (a bug: please report it)")
    say(
        f"packed {rows} faces of {source} ({total_bytes / MIB:.1f} MiB of text) into "
        f"{len(parts)} parts, {sum(p['bytes'] for p in parts) / MIB:.1f} MiB, in {out}; "
        f"sha256 {manifest['sha256']}"
    )
    return manifest


def read_manifest(dirs: list[Path]) -> tuple[Path, dict]:
    for d in dirs:
        if (d / MANIFEST).is_file():
            path = d / MANIFEST
            try:
                manifest = json.loads(path.read_text())
                _ = manifest["sha256"], manifest["parts"], manifest["rows"]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}: not a manifest written by pack") from None
            return path, manifest
    raise ValueError(f"no {MANIFEST} in {', '.join(map(str, dirs))}")


def _find_part(entry: dict, dirs: list[Path], manifest_path: Path) -> Path:
    """The part named in the manifest, in whichever folder holds it, checked whole."""
    name = entry["name"]
    if Path(name).name != name:
        raise ValueError(f"{manifest_path}: part name {name!r} is not a plain file name")
    for d in dirs:
        if (d / name).is_file():
            path = d / name
            if "sha256" in entry and sha256_file(path) != entry["sha256"]:
                raise ValueError(f"{path}: differs from the part {manifest_path} names")
            return path
    where = ", ".join(map(str, dirs))
    raise ValueError(f"part {name} of {manifest_path} is missing: in none of {where}")


def _rebuilt_text(manifest: dict, dirs: list[Path], manifest_path: Path | None = None):
    """The original CSV's bytes, in chunks, from the parts found in `dirs`."""
    import cv2
    import numpy as np

    manifest_path = manifest_path or dirs[0] / MANIFEST
    newline = manifest.get("newline", "\n")
    paths = [_find_part(entry, dirs, manifest_path) for entry in manifest["parts"]]
    lines = [HEADER]  # then each row after a line ending, then the last ending if there was one
    count = 0
    for path in paths:
        with np.load(path) as z:
            data, lengths = z["data"], z["lengths"].astype(np.int64)
            names = [str(n) for n in z["usages"]]
            ends = np.cumsum(lengths)
            for i, (emotion, usage) in enumerate(zip(z["emotion"], z["usage"], strict=True)):
                blob = data[ends[i] - lengths[i] : ends[i]]
                face = cv2.imdecode(blob, cv2.IMREAD_GRAYSCALE)
                if face is None or face.shape != (SIDE, SIDE):
                    raise ValueError(f"{path}: face {i} does not decode")
                lines.append(newline + _row_text(int(emotion), face.ravel(), names[usage]))
                count += 1
                if len(lines) >= 1024:
                    yield "".join(lines).encode()
                    lines = []
    if count != manifest["rows"]:
        raise ValueError(f"{manifest_path}: names {manifest['rows']} rows, the parts hold {count}")
    lines.append(newline if manifest.get("final_newline", True) else "")
    yield "".join(lines).encode()


def unpack(dirs: list[str | Path], out: str | Path, say: Say = say) -> dict:
    """Rebuild the CSV packed in `dirs` (the manifest and the parts, in one folder or spread
    over several) into `out`, written only when its SHA-256 is the manifest's; FER+'s file,
    when packed, is put beside it."""
    dirs = [Path(d) for d in dirs]
    out = Path(out)
    manifest_path, manifest = read_manifest(dirs)
    extras = []
    for entry in manifest.get("extras", []):
        found = [d / entry["name"] for d in dirs if (d / entry["name"]).is_file()]
        if not found:
            raise ValueError(f"{entry['name']} of {manifest_path} is missing")
        if sha256_file(found[0]) != entry["sha256"]:
            raise ValueError(f"{found[0]}: differs from the copy {manifest_path} names")
        extras.append(found[0])

    def write(tmp: str) -> None:
        digest = hashlib.sha256()
        with open(tmp, "wb") as f:
            for chunk in _rebuilt_text(manifest, dirs, manifest_path):
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != manifest["sha256"]:
            raise ValueError(
                f"{out}: the rebuilt text's sha256 {digest.hexdigest()} is not the "
                f"{manifest['sha256']} of {manifest_path}; nothing written"
            )

    atomic_write(out, write)
    for extra in extras:
        if extra.resolve() != (out.parent / extra.name).resolve():
            atomic_write(out.parent / extra.name, lambda tmp, e=extra: shutil.copyfile(e, tmp))
    say(f"wrote {out}: {manifest['rows']} rows, sha256 {manifest['sha256']} as packed")
    for extra in extras:
        say(f"wrote {out.parent / extra.name}")
    return manifest
