"""The app's profile files: listed by name, a broken one listed with its reason and never
removed, saved over their own file, renamed with their file, deleted only when listed."""

from app.profiles import ProfileStore, file_stem
from fer_core.profile import ModelKey, Profile

MODEL = ModelKey("tiny", "abc", ("happy", "neutral"))


def test_profiles_are_saved_listed_renamed_and_deleted(tmp_path):
    store = ProfileStore(tmp_path / "profiles")
    assert store.list() == []
    ada = Profile("Ada", MODEL).taught_with("happy", [[0.8, 0.2]])
    path = store.save(ada)
    assert path.name == "Ada.profile.json"
    assert store.save(ada.taught_with("neutral", [[0.3, 0.7]])) == path  # the same file
    assert store.find("Ada").profile.taught == ("happy", "neutral")
    (tmp_path / "profiles" / "x.profile.json").write_text("[]")
    listed = store.list()
    assert [s.name for s in listed] == ["Ada", "x.profile.json"]
    assert listed[1].profile is None and "expected a JSON object" in listed[1].problem
    store.save(Profile("Ada L", MODEL, ada.examples), replace_name="Ada")
    assert [s.path.name for s in store.list()] == ["Ada_L.profile.json", "x.profile.json"]
    assert not store.delete("x.profile.json")  # an unreadable file is not a profile to delete
    assert store.delete("Ada L") and [s.name for s in store.list()] == ["x.profile.json"]


def test_a_name_that_is_taken_by_another_file_gets_its_own():
    assert file_stem("  Ana / María ") == "Ana_María"
    assert file_stem("../..") == "profile"


def test_two_names_with_one_file_stem_keep_two_files(tmp_path):
    store = ProfileStore(tmp_path)
    a = store.save(Profile("a b", MODEL))
    b = store.save(Profile("a/b", MODEL))
    assert a != b and {s.name for s in store.list()} == {"a b", "a/b"}
