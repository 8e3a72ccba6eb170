"""The manifests of generated DisEnt datasets (``python -m datasets.make_disent_data``) and their verification.

A manifest (``manifest.json`` beside the split folders it describes) records, per split, the image count and the
sha256 of the sorted lines ``<path relative to the split folder> <sha256 of the file>``, and its own digest
(``manifest_sha256``: the sha256 of its canonical JSON without that entry), so that neither the images nor the
manifest (e.g. its palette) can change unnoticed.

:func:`verify_generated_data` checks the data a run reads: the image counts every time, and the per-split sha256
when the data are first used: the verdict is cached by a digest of every file's (relative path, size, mtime_ns),
in ``.verified.json`` beside the manifest when that folder is writable, else under the user's cache folder, so a
sweep hashes each folder once. Data without a manifest (DisEnt's released data, BFFHQ) are not checked. Manifests
written before the manifest digest existed (generator ``disent-data/1``) are refused with a one-line message
telling how to regenerate the data (the generator is deterministic: the same flags give the same images).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
VERDICT_NAME = ".verified.json"
DIGEST_KEY = "manifest_sha256"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
LOADER_SPLIT_FOLDERS = ("align", "conflict", "valid")
"""Subfolders of a ratio's folder that the loaders read when present (a manifest must record each one there)."""


class DataMismatchError(ValueError):
    """Generated data that contradict their manifest, or whose manifest contradicts what the flags say the data are
    (palette, renderer, valid split)."""


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys, no whitespace) without its own ``manifest_sha256``."""
    content = {key: value for key, value in manifest.items() if key != DIGEST_KEY}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def split_digest(file_digests: Iterable[tuple[str, str]]) -> str:
    """A split's sha256 from ``(relative path, sha256 of the file)`` pairs, in any order."""
    lines = sorted(f"{relative} {digest}\n" for relative, digest in file_digests)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def regenerate_hint(root: Path) -> str:
    """How to rebuild a generated dataset whose folder is ``root`` (``OUT/<dataset>``)."""
    return (f"regenerate it with python -m datasets.make_disent_data {root.name} --out {root.parent} and the flags "
            f"that made it")


def split_folder(manifest_dir: Path, manifest: dict[str, Any], split: str) -> Path:
    """The folder of one recorded split: the manifest's own folder for the shared test split (``split_group``
    ``test``), its subfolder ``split`` otherwise."""
    return manifest_dir if split == manifest.get("split_group") else manifest_dir / split


def _images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def _read(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataMismatchError(f"'{path}' cannot be read as JSON ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise DataMismatchError(f"'{path}' is not a manifest of python -m datasets.make_disent_data (no 'splits')")
    return manifest


def _verdict_path(manifest_dir: Path) -> Path:
    """Where the cached verdict of a manifest's folder lives: beside it if writable, else in the user cache."""
    if os.access(manifest_dir, os.W_OK):
        return manifest_dir / VERDICT_NAME
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "debias" / "verified"
    return cache / (hashlib.sha256(str(manifest_dir.resolve()).encode()).hexdigest()[:32] + ".json")


def _cached_key(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def _store_key(path: Path, key: str) -> None:
    """Write the verdict atomically; a cache that cannot be written only means hashing again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"key": key}) + "\n")
        os.replace(temporary, path)
    except OSError:
        pass


def verify_manifest(manifest_dir: Path, dataset_root: Path) -> str:
    """Check one manifest's folder (see the module docstring) and return the manifest's digest; any disagreement
    raises :class:`DataMismatchError` naming the manifest or folder."""
    path = manifest_dir / MANIFEST_NAME
    manifest = _read(path)
    hint = regenerate_hint(dataset_root)
    if DIGEST_KEY not in manifest:
        raise DataMismatchError(f"'{path}' was written by an older generator ({manifest.get('generator')}) "
                                f"without a manifest digest, so its settings cannot be checked: {hint}")
    digest = manifest_digest(manifest)
    if digest != manifest[DIGEST_KEY]:
        raise DataMismatchError(f"'{path}' was edited after it was written (its content no longer matches its "
                                f"recorded digest): restore it or {hint}")
    unrecorded = [name for name in LOADER_SPLIT_FOLDERS
                  if name not in manifest["splits"] and (manifest_dir / name).is_dir()]
    if unrecorded:
        raise DataMismatchError(f"'{manifest_dir / unrecorded[0]}' is not a split recorded in '{path}': remove it "
                                f"or {hint}")
    files: dict[str, list[Path]] = {}
    for split, stats in manifest["splits"].items():
        folder = split_folder(manifest_dir, manifest, split)
        files[split] = _images(folder)
        if len(files[split]) != stats.get("count"):
            raise DataMismatchError(f"'{folder}' holds {len(files[split])} images but '{path}' records "
                                    f"{stats.get('count')}: {hint}")
    listing = hashlib.sha256(digest.encode())
    for split_files in files.values():
        for file in split_files:
            status = file.stat()
            listing.update(f"{file.relative_to(manifest_dir).as_posix()} {status.st_size} {status.st_mtime_ns}\n"
                           .encode())
    key = listing.hexdigest()
    verdict = _verdict_path(manifest_dir)
    if _cached_key(verdict) == key:
        return digest
    for split, split_files in files.items():
        folder = split_folder(manifest_dir, manifest, split)
        found = split_digest((file.relative_to(folder).as_posix(), hashlib.sha256(file.read_bytes()).hexdigest())
                             for file in split_files)
        if found != manifest["splits"][split].get("sha256"):
            raise DataMismatchError(f"the images of '{folder}' differ from those '{path}' records (sha256 "
                                    f"mismatch): {hint}")
    _store_key(verdict, key)
    return digest


def verify_generated_data(dataset_root: str | os.PathLike, group: str) -> dict[str, str] | None:
    """Verify the generated folders a run of one ratio reads, ``dataset_root/<group>`` and the shared
    ``dataset_root/test``, against their manifests; return ``{folder name: manifest digest}`` for those that have
    one (None when neither has: data not made by this project's generator)."""
    root = Path(dataset_root)
    digests = {name: verify_manifest(root / name, root) for name in (group, "test")
               if (root / name / MANIFEST_NAME).exists()}
    return digests or None
