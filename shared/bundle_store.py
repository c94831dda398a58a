"""A bundle described by a manifest (MANIFEST.json: every file's size and sha256), so its weights can
live outside git and be fetched, checked, from one place.

    seedasr bundle manifest DIR            write DIR/MANIFEST.json from the files there
    seedasr bundle verify DIR              every file of the manifest present, of its size and hash
    seedasr bundle fetch [SOURCE] [--dir DIR]
        SOURCE: a folder, an http(s) URL of one (SOURCE/NAME for each file), or git:REV:PATH (a bundle
        committed to this repository's history before weights left git); without SOURCE, the
        manifest's own "sources" in order. Only the files that are missing or wrong are fetched, each
        checked before it replaces anything. Into a folder without a manifest, git:REV:PATH copies the
        whole committed bundle and writes its manifest (how an old bundle becomes a folder to average).
    seedasr bundle publish STORE [--dir DIR]
        copy the pinned files to STORE (a folder, served as is for a URL) and name it in the manifest's
        sources (in front), so the manifest committed afterwards says where its weights are

The manifest is small text and stays in git with the bundle's notes; the weights it pins do not
(.gitignore), so a new bundle changes a few lines of git, not tens of megabytes. CI checks that the
folder matches its manifest and that no pinned file is tracked (tests/unit/test_bundle_store.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO_ROOT / "bundles" / "default"
LUISE_BUNDLE = REPO_ROOT / "bundles" / "luise"  # our own LUISE encoder + MoE LM, trained here (MODEL_CARD.md)
MANIFEST = "MANIFEST.json"
# notes that describe a bundle but are rewritten by tools (make eval): not part of what is pinned
UNPINNED = {MANIFEST, "EVAL.md", "TUNING.md", "alpha_sweep.png", "loss_curves.png"}
# made on the machine that serves the bundle: a TensorRT plan and the int8 ONNX encoder always; encoder.onnx when
# the bundle pins its encoder in a registry package (config.json "encoder_weights"), since setup exports it from that
# package
MACHINE_MADE = {"encoder.plan", "encoder.int8.onnx"}


class ManifestError(RuntimeError):
    pass


def default_bundle_dir() -> Path:
    """SEEDASR_MODEL, else the shipped default bundle (torch-free: every service image reads it)."""
    return Path(os.environ.get("SEEDASR_MODEL", str(DEFAULT_BUNDLE)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpinned(bundle: Path) -> set[str]:
    made = set(MACHINE_MADE)
    config = bundle / "config.json"
    if config.exists() and "encoder_weights" in json.loads(config.read_text()):
        made.add("encoder.onnx")
    return UNPINNED | made


def build_manifest(bundle: Path, sources: list[str] | None = None) -> dict[str, Any]:
    skip = _unpinned(bundle)
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_of(p)}
             for p in sorted(bundle.iterdir()) if p.is_file() and not p.name.startswith(".") and p.name not in skip}
    return {"files": files, "sources": list(sources or [])}


def write_manifest(bundle: Path, sources: list[str] | None = None) -> Path:
    """Pin the folder's files; `sources` (where fetch looks) are kept from an existing manifest unless given."""
    out = bundle / MANIFEST
    if sources is None and out.exists():
        sources = list(json.loads(out.read_text()).get("sources", []))
    out.write_text(json.dumps(build_manifest(bundle, sources), indent=2) + "\n")
    return out


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / MANIFEST
    if not path.exists():
        raise ManifestError(f"{path} does not exist: `seedasr bundle manifest {bundle}` writes it")
    return dict(json.loads(path.read_text()))


def problems(bundle: Path, manifest: dict[str, Any] | None = None) -> list[str]:
    """What differs between the folder and its manifest (empty: the bundle is exactly the pinned one)."""
    manifest = manifest or read_manifest(bundle)
    found = []
    for name, want in manifest["files"].items():
        path = bundle / name
        if not path.exists():
            found.append(f"{name}: missing")
        elif path.stat().st_size != want["size"]:
            found.append(f"{name}: {path.stat().st_size} bytes, the manifest says {want['size']}")
        elif sha256_of(path) != want["sha256"]:
            found.append(f"{name}: sha256 differs from the manifest")
    return found


def _git(repo: Path, *args: str) -> bytes:
    run = subprocess.run(["git", "-C", str(repo), *args], capture_output=True)
    if run.returncode:
        detail = run.stderr.decode().strip().splitlines()
        raise OSError(f"git {' '.join(args)}: {detail[-1] if detail else 'failed'}")
    return run.stdout


def _git_source(source: str, repo: Path) -> tuple[str, str]:
    """'git:REV:PATH' -> (full commit id, PATH without a trailing slash)."""
    rev, sep, path = source.removeprefix("git:").partition(":")
    if not sep or not rev or not path:
        raise ManifestError(f"{source!r}: a git source is git:REV:PATH (a commit and a bundle folder in it)")
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except OSError:
        commit = _fetch_commit(repo, rev, source)
    return commit, path.rstrip("/")


def _fetch_commit(repo: Path, rev: str, source: str) -> str:
    """A commit a shallow clone lacks, fetched alone (depth 1) from the clone's remote: a `git clone --depth 1` gets
    the bundle files pinned at their storage commit without the history before it."""
    shallow = _git(repo, "rev-parse", "--is-shallow-repository").decode().strip() == "true"
    remotes = _git(repo, "remote").decode().split()
    if not shallow or not remotes or not re.fullmatch(r"[0-9a-f]{40}", rev):
        raise ManifestError(f"{source!r}: no commit {rev} in {repo}")
    try:
        _git(repo, "fetch", "--quiet", "--depth", "1", "origin" if "origin" in remotes else remotes[0], rev)
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except OSError as err:
        raise ManifestError(f"{source!r}: no commit {rev} in this shallow clone, and fetching it failed ({err}); "
                            "git fetch --unshallow, or SEEDASR_BUNDLE_SOURCE=DIR|URL make setup") from None


def _repo_of(bundle: Path) -> Path:
    """The git work tree holding the bundle folder, else the current directory's, else this checkout's."""
    for start in (bundle, Path.cwd(), Path(__file__).resolve().parent):
        if start.is_dir():
            try:
                return Path(_git(start, "rev-parse", "--show-toplevel").decode().strip())
            except OSError:
                continue
    raise ManifestError("a git source needs a git checkout of this repository")


def _copy_from(source: str, name: str, dest: Path) -> None:
    if source.startswith("git:"):
        repo = _repo_of(dest.parent)
        commit, path = _git_source(source, repo)
        dest.write_bytes(_git(repo, "cat-file", "blob", f"{commit}:{path}/{name}"))
    elif source.startswith(("http://", "https://")):
        url = source.rstrip("/") + "/" + urllib.parse.quote(name)
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:  # noqa: S310 (http(s) only)
            shutil.copyfileobj(response, out)
    else:
        shutil.copyfile(Path(source) / name, dest)


def checkout(source: str, bundle: Path) -> list[str]:
    """Copy a bundle committed at git:REV:PATH into the folder `bundle` and pin it with a manifest whose
    source is that commit (so `seedasr bundle fetch` can restore it); returns the names written."""
    bundle.mkdir(parents=True, exist_ok=True)
    repo = _repo_of(bundle)
    commit, path = _git_source(source, repo)
    names = []
    for line in _git(repo, "ls-tree", f"{commit}:{path}").decode().splitlines():
        mode_type_hash, name = line.split("\t", 1)
        if mode_type_hash.split()[1] == "blob":
            (bundle / name).write_bytes(_git(repo, "cat-file", "blob", f"{commit}:{path}/{name}"))
            names.append(name)
    if not names:
        raise ManifestError(f"{source}: no files at {path} in {commit[:10]}")
    if MANIFEST not in names:
        write_manifest(bundle, [f"git:{commit}:{path}"])
    return sorted(names)


def fetch(source: str | None, bundle: Path) -> list[str]:
    """Bring `bundle` to its manifest from `source` (None: the manifest's "sources", tried in order for
    each file); returns the names fetched. A file whose size or hash is wrong after the transfer is refused
    (ManifestError) and the old one left in place."""
    if source and source.startswith("git:") and not (bundle / MANIFEST).exists():
        return checkout(source, bundle)
    manifest = read_manifest(bundle)
    sources = [source] if source else list(manifest.get("sources", []))
    wrong = {p.split(":")[0] for p in problems(bundle, manifest)}
    if wrong and not sources:
        raise ManifestError(f"{bundle} lacks {', '.join(sorted(wrong))} and its manifest names no source: "
                            "give SOURCE (or SEEDASR_BUNDLE_SOURCE to make setup)")
    for name in sorted(wrong):
        errors = []
        for where in sources:
            try:
                _fetch_one(where, name, manifest["files"][name], bundle)
                break
            except ManifestError as exc:
                errors.append(str(exc))
        else:
            raise ManifestError("; ".join(errors))
    return sorted(wrong)


def _fetch_one(source: str, name: str, want: dict[str, Any], bundle: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=bundle, prefix=f".{name}.", delete=False) as tmp:
        part = Path(tmp.name)
    try:
        try:
            _copy_from(source, name, part)
        except OSError as exc:
            raise ManifestError(f"cannot fetch {name} from {source}: {exc}") from None
        if part.stat().st_size != want["size"] or sha256_of(part) != want["sha256"]:
            raise ManifestError(f"{name} from {source} does not match the manifest (size or sha256)")
        part.replace(bundle / name)
    finally:
        part.unlink(missing_ok=True)


def publish(bundle: Path, store: Path) -> list[str]:
    """Copy the manifest and every file it pins (checked first) into the folder `store`, which then serves
    as a fetch SOURCE (as a folder, or over http as the URL of that folder)."""
    found = problems(bundle)
    if found:
        raise ManifestError(f"{bundle} does not match its manifest: {'; '.join(found)}")
    store.mkdir(parents=True, exist_ok=True)
    sources = [str(store), *(s for s in read_manifest(bundle).get("sources", []) if s != str(store))]
    write_manifest(bundle, sources)
    names = [*read_manifest(bundle)["files"], MANIFEST]
    for name in names:
        shutil.copyfile(bundle / name, store / name)
    return sorted(names)
