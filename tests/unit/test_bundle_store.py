"""Bundle manifests: the shipped bundle is exactly what its manifest pins and its weights are not tracked
by git; fetch brings a bundle to its manifest from a folder, a URL or a commit (the manifest's own sources
when none is given), refusing a file whose size or hash is wrong; publish fills a store."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading

import pytest

from shared.bundle_store import MANIFEST, ManifestError, fetch, problems, publish, read_manifest, write_manifest
from tests.conftest import ROOT


@pytest.mark.weights
def test_the_default_bundle_matches_its_manifest() -> None:
    bundle = ROOT / "bundles" / "default"
    assert problems(bundle) == []
    assert {"model.safetensors", "tokenizer.model", "config.json"} <= set(read_manifest(bundle)["files"])
    assert read_manifest(bundle)["sources"], "the shipped manifest must say where its weights come from"


def _tracked(path: str) -> dict[str, int]:
    run = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s", path], capture_output=True, text=True)
    if run.returncode:
        pytest.skip("not a git checkout")
    blobs = [line.split()[1] for line in run.stdout.splitlines()]
    names = [line.split("\t")[1] for line in run.stdout.splitlines()]
    sizes = subprocess.run(["git", "-C", str(ROOT), "cat-file", "--batch-check=%(objectsize)"], input="\n".join(blobs),
                           capture_output=True, text=True).stdout.split()
    return dict(zip(names, map(int, sizes)))


def test_no_bundle_weights_are_tracked_by_git() -> None:
    """Only the tiny test bundle's weights are in git; every other bundle keeps config, notes, plots and
    its manifest there (a new default bundle changes the manifest, never adds megabytes to the history)."""
    tracked = _tracked("bundles")
    for path, size in tracked.items():
        if path.startswith("bundles/tiny/"):
            continue
        folder = ROOT / path.rsplit("/", 1)[0]
        pinned_weights = set(read_manifest(folder)["files"]) - {"config.json", "MODEL_CARD.md"}
        assert path.rsplit("/", 1)[1] not in pinned_weights, f"{path} is a bundle's weights: keep it out of git"
        assert size < 512 * 1024, f"{path} ({size} bytes) is too big for git"
    assert any(p.startswith("bundles/default/") for p in tracked)


def test_fetch_from_git_history_and_from_the_manifests_sources(tmp_path) -> None:
    """git:REV:PATH into an empty folder copies the committed bundle and pins it; a folder holding only that
    manifest is then filled from the manifest's own source (what make setup does on a fresh clone)."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout")
    copy = tmp_path / "copy"
    got = fetch("git:HEAD:bundles/tiny", copy)
    assert "model.safetensors" in got and problems(copy) == []
    assert read_manifest(copy)["sources"] == [f"git:{head.stdout.strip()}:bundles/tiny"]
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(copy / MANIFEST, again / MANIFEST)
    assert "model.safetensors" in fetch(None, again) and problems(again) == []
    with pytest.raises(ManifestError, match="no commit"):
        fetch("git:no-such-rev-0123:bundles/tiny", tmp_path / "nope")
    (again / "model.safetensors").unlink()
    write_manifest(again, [])
    (again / "model.safetensors").write_bytes(b"x")
    write_manifest(again)  # keeps the (empty) sources
    (again / "model.safetensors").unlink()
    with pytest.raises(ManifestError, match="names no source"):
        fetch(None, again)


def test_a_shallow_clone_fetches_the_storage_commit_it_lacks(tmp_path) -> None:
    """`git clone --depth 1` has no history: the weights pinned at an older storage commit come by fetching that
    one commit from the clone's remote."""
    origin, clone = tmp_path / "origin", tmp_path / "clone"

    def git(repo, *args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()

    (origin / "bundles" / "b").mkdir(parents=True)
    git(origin, "init", "-q")
    git(origin, "config", "user.email", "t@example.com")
    git(origin, "config", "user.name", "t")
    (origin / "bundles" / "b" / "model.safetensors").write_bytes(b"weights" * 100)
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "storage")
    storage = git(origin, "rev-parse", "HEAD")
    write_manifest(origin / "bundles" / "b", [f"git:{storage}:bundles/b"])
    git(origin, "rm", "-q", "--cached", "bundles/b/model.safetensors")
    (origin / "bundles" / "b" / "model.safetensors").unlink()
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "weights leave git")
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{origin}", str(clone)], check=True)
    bundle = clone / "bundles" / "b"
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true" and not (bundle / "model.safetensors").exists()
    assert fetch(None, bundle) == ["model.safetensors"] and problems(bundle) == []
    (bundle / "model.safetensors").unlink()
    with pytest.raises(ManifestError, match="fetching it failed"):
        fetch(f"git:{'0' * 40}:bundles/b", bundle)


def test_publish_fills_a_store_and_names_it(source_and_empty, tmp_path) -> None:
    source, _ = source_and_empty
    store = tmp_path / "published"
    publish(source, store)
    assert read_manifest(source)["sources"][0] == str(store)
    dest = tmp_path / "from-store"
    dest.mkdir()
    shutil.copy(source / MANIFEST, dest / MANIFEST)
    fetch(None, dest)
    assert problems(dest) == []
    (source / "config.json").write_text("{}")
    with pytest.raises(ManifestError, match="does not match its manifest"):
        publish(source, store)


@pytest.fixture
def source_and_empty(tiny_bundle, tmp_path):
    source = tmp_path / "store"
    shutil.copytree(tiny_bundle, source)
    write_manifest(source)
    dest = tmp_path / "bundle"
    dest.mkdir()
    shutil.copy(source / MANIFEST, dest / MANIFEST)
    return source, dest


def test_fetch_from_a_folder_fills_the_bundle_and_refuses_a_corrupt_file(source_and_empty) -> None:
    source, dest = source_and_empty
    assert len(problems(dest)) == len(read_manifest(dest)["files"])
    assert "model.safetensors" in fetch(str(source), dest)
    assert problems(dest) == [] and fetch(str(source), dest) == []  # nothing left to fetch
    (dest / "config.json").write_text("{}")
    data = bytearray((source / "config.json").read_bytes())
    data[10] ^= 1
    (source / "config.json").write_bytes(bytes(data))  # same size, other hash
    with pytest.raises(ManifestError, match="config.json"):
        fetch(str(source), dest)
    assert (dest / "config.json").read_text() == "{}"  # the refused file replaced nothing


def test_fetch_from_an_http_url(source_and_empty) -> None:
    source, dest = source_and_empty
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(source))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fetch(f"http://127.0.0.1:{server.server_port}/", dest)
    finally:
        server.shutdown()
    assert problems(dest) == []


def test_cli_verify_and_fetch_exit_codes(source_and_empty, capsys) -> None:
    from services.cli import main

    source, dest = source_and_empty
    assert main(["bundle", "verify", "--dir", str(dest)]) == 3
    assert main(["bundle", "fetch", str(source), "--dir", str(dest)]) == 0
    assert main(["bundle", "verify", "--dir", str(dest)]) == 0
    assert main(["bundle", "fetch", "--dir", str(dest)]) == 0  # complete: nothing to fetch, no source needed
    (dest / "config.json").unlink()
    assert main(["bundle", "fetch", "--dir", str(dest)]) == 2  # the manifest names no source
    assert main(["bundle", "publish", "--dir", str(source)]) == 2  # no store
    assert main(["bundle", "fetch", str(source / "nowhere"), "--dir", str(dest / "missing")]) == 2
