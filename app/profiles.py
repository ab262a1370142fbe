"""The app's personal profiles (`fer_core.profile`), remembered between launches: one JSON file
per profile in a `profiles` folder beside the settings (the user's config folder, or beside the
`--settings` file). A file that cannot be read is listed as broken, with its one-line reason,
and never overwritten or deleted by the listing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fer_core.profile import Profile, ProfileError

SUFFIX = ".profile.json"


def file_stem(name: str) -> str:
    """A file name for a profile name: letters, digits, '-' and '_' kept, the rest '_'."""
    stem = re.sub(r"[^\w-]+", "_", name.strip(), flags=re.UNICODE).strip("_")
    return stem[:64] or "profile"


@dataclass(frozen=True)
class Stored:
    path: Path
    profile: Profile | None  # None: the file could not be read
    problem: str = ""

    @property
    def name(self) -> str:
        return self.profile.name if self.profile else self.path.name


class ProfileStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def list(self) -> list[Stored]:
        """Every profile file, by name; broken ones with their reason."""
        if not self.folder.is_dir():
            return []
        out = []
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                out.append(Stored(path, Profile.load(path)))
            except ProfileError as error:
                out.append(Stored(path, None, str(error)))
        return sorted(out, key=lambda s: s.name.lower())

    def find(self, name: str) -> Stored | None:
        return next((s for s in self.list() if s.profile and s.profile.name == name), None)

    def save(self, profile: Profile, replace_name: str | None = None) -> Path:
        """Write `profile`, over the file of the profile of its name (or of `replace_name`,
        when renaming), else as a new file that takes no other profile's place."""
        old = self.find(replace_name or profile.name)
        if old is not None:
            path = old.path
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            stem, n = file_stem(profile.name), 1
            path = self.folder / f"{stem}{SUFFIX}"
            while path.exists():
                n += 1
                path = self.folder / f"{stem}-{n}{SUFFIX}"
        profile.save(path)
        if replace_name and old is not None and replace_name != profile.name:
            wanted = self.folder / f"{file_stem(profile.name)}{SUFFIX}"
            if not wanted.exists():  # the file follows the new name where it is free
                path.rename(wanted)
                path = wanted
        return path

    def delete(self, name: str) -> bool:
        """Remove the file of the profile `name` (only a profile file this store lists)."""
        stored = self.find(name)
        if stored is None:
            return False
        stored.path.unlink()
        return True
