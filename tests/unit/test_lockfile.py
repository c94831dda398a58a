"""Installs are reproducible: setup, CI and the images install exact versions with their hashes (`make lock`), and
the images start from base images pinned by digest. A lock that no longer satisfies pyproject.toml fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, how many hashes) of a `uv pip compile --generate-hashes` file."""
    out: dict[str, tuple[str, int]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match.group(1))
            out[name] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            out[name] = (out[name][0], out[name][1] + 1)
    return out


def requirements(*extras: str) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    return reqs + [Requirement(r) for e in extras for r in PROJECT["optional-dependencies"][e]]


@pytest.mark.parametrize(("lock", "extras"), [("requirements.lock", ("model", "train", "dev")),
                                              ("deploy/docker/light.lock", ()),
                                              ("deploy/docker/model.lock", ("model",))])
def test_each_lock_pins_every_dependency_with_hashes(lock: str, extras: tuple[str, ...]) -> None:
    pins = locked(ROOT / lock)
    assert pins and all(hashes for _, hashes in pins.values()), f"{lock}: a pin without a hash"
    for req in requirements(*extras):
        name = canonicalize_name(req.name)
        assert name in pins, f"{lock} lacks {req.name}: run `make lock`"
        version = pins[name][0]
        assert req.specifier.contains(version.split("+")[0], prereleases=True), (
            f"{lock} pins {req.name}=={version}, outside {req.specifier}: run `make lock`")
    if "model" not in extras:
        assert "torch" not in pins, f"{lock}: the light image carries no torch"


def test_the_images_locks_agree_with_the_development_lock() -> None:
    full = locked(ROOT / "requirements.lock")
    for lock in ("deploy/docker/light.lock", "deploy/docker/model.lock"):
        for name, (version, _) in locked(ROOT / lock).items():
            assert full.get(name, (version,))[0] == version, f"{lock} pins {name}=={version}, requirements.lock another"


def test_setup_installs_from_the_lock_and_images_start_from_digests() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--require-hashes -r requirements.lock" in setup and "--no-deps -e ." in setup
    froms = re.findall(r"^FROM (\S+)", (ROOT / "deploy" / "docker" / "Dockerfile").read_text(), re.M)
    bases = [f for f in froms if ":" in f]  # stages built on another stage name none
    assert bases and all(re.search(r"@sha256:[0-9a-f]{64}$", f) for f in bases), froms
