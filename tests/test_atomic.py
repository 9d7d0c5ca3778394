import pytest

from sessionrec._atomic import atomic_file, atomic_folder


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary left


def test_atomic_folder_swaps_whole_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "a").write_text("old a")
    (target / "b").write_text("old b")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a").write_text("new a")
        raise RuntimeError("crash")
    assert (target / "a").read_text() == "old a" and (target / "b").exists()
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("new a")
    assert [p.name for p in target.iterdir()] == ["a"]
    assert (target / "a").read_text() == "new a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
