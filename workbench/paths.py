"""Every file the workbench keeps under WORKBENCH_DATA_DIR: the one module that names them.

    workbench.sqlite3                    the database (embedded default only)
    images/ab/<sha256>.<ext>             imported images, content-addressed (annotations)
    thumbs/<size>/ab/<sha256>.jpg        thumbnails per image content and size (annotations)
    broker/                              embedded broker messages (jobs)
    models/v<N>.pt                       model versions (training)
    models/in-progress/<key>/            a round's resumable checkpoints until it is registered (training)
    signatures/v<N>/vectors.npy, ids.json   signatures of a model version (training)
    graphs/v<N>/<key>.npz                cached cosine neighbour graphs of a version's signatures (clustering)
    maps/v<N>.npz                        the 2-D maps of a version (clustering)
    clusters/run-<id>.npz                labels and strengths of one clustering run (clustering)
    demo/                                the demo collection's files and ground truth
    simulations/sim-<id>/                a simulated review's snapshot: database, data folder, log (review)
    logs/                                worker log and login of bin/start
    .<user>-password                     the local login's password (ensure_demo_user), owner-only

Each app writes only its own folders; every other module asks here. Functions return absolute paths; the
database stores paths relative to the data folder (`relative`), so the folder can move.
The data folder itself comes from settings (read when a function is called: settings import this module).
"""

from __future__ import annotations

from pathlib import Path

DATABASE_FILE = "workbench.sqlite3"
BROKER_FOLDER = "broker"
SERVED_FOLDERS = ("images", "thumbs")  # what the web server hands to logged-in users


def root() -> Path:
    from django.conf import settings

    return settings.DATA_DIR


def absolute(relpath: str) -> Path:
    return root() / relpath


def relative(path: Path) -> str:
    return str(path.relative_to(root()))


# --- annotations: images and thumbnails (relative paths: the database and URLs name them) ---------------


def image_relpath(sha256: str, ext: str) -> str:
    return f"images/{sha256[:2]}/{sha256}.{ext}"


def thumbnail_relpath(sha256: str, size: str) -> str:
    return f"thumbs/{size}/{sha256[:2]}/{sha256}.jpg"


def import_staging(key: str) -> Path:
    """Where an import writes its image files before the database says they belong to artworks."""
    return staging_root() / f"import-{key}"


def staging_root() -> Path:
    return root() / "staging"


def import_lock_file() -> Path:
    """Held while an import places files and writes the database (`annotations.importer`)."""
    return root() / ".import.lock"


def demo_folder() -> Path:
    return root() / "demo"


def logs_folder() -> Path:
    return root() / "logs"


def login_secret_file(username: str) -> Path:
    return root() / f".{username}-password"


# --- training: model versions and their signatures ------------------------------------------------------


def model_file(number: int) -> Path:
    return root() / "models" / f"v{number}.pt"


def training_checkpoints(key: str) -> Path:
    """Resumable checkpoints of a round in progress (removed once its version is registered)."""
    return root() / "models" / "in-progress" / key


def signatures_folder(number: int) -> Path:
    return root() / "signatures" / f"v{number}"


def raw_signatures_folder(number: int) -> Path:
    """A whitened version's signatures before whitening: what clustering and the map use."""
    return signatures_folder(number) / "raw"


def latent_folder(number: int) -> Path:
    """A backward-search version's z before L2 normalisation (its attribute heads read raw z)."""
    return signatures_folder(number) / "latent"


def student_file(number: int) -> Path:
    """The distilled conditional-search student of backward-search version `number`."""
    return root() / "models" / f"v{number}-student.pt"


def synthetic_signatures_folder(number: int) -> Path:
    """Signatures of the synthetic validation images under version `number`, keyed by file name."""
    return signatures_folder(number) / "synthetic"


def local_features_folder() -> Path:
    return root() / "local-features"


def local_features_file(image_sha256: str) -> Path:
    """SIFT keypoints of an image for spatial verification (`training.verification`), by content."""
    return local_features_folder() / image_sha256[:2] / f"{image_sha256}.npz"


def verified_pairs_file(matcher_key: str) -> Path:
    """Inlier counts of image pairs already verified (`clustering.graphs`), by content and matcher."""
    return local_features_folder() / f"pairs-{matcher_key}.npz"


def synthetic_folder() -> Path:
    """Generated validation images (`training.synthetic`): derived, cached, never artworks."""
    return root() / "synthetic"


# --- review: simulated review runs ---------------------------------------------------------------------


def simulation_folder(simulation_id: int) -> Path:
    """A simulated review's snapshot: its own database and data folder (images and models linked)."""
    return root() / "simulations" / f"sim-{simulation_id}"


# --- clustering: graphs, maps and runs --------------------------------------------------------------------


def neighbour_graph_file(number: int, key: str) -> Path:
    return root() / "graphs" / f"v{number}" / f"{key}.npz"


def layout_file(number: int) -> Path:
    return root() / "maps" / f"v{number}.npz"


def cluster_assignments_file(run_id: int) -> Path:
    return root() / "clusters" / f"run-{run_id}.npz"


# Before the restructure of 2026-11, clustering wrote inside training's signature folders. Read by the
# clustering migration that moves those files (`clustering/migrations/0003_move_data_files.py`).
def legacy_layout_file(number: int) -> Path:
    return signatures_folder(number) / "layout.npz"


def legacy_graph_files(number: int) -> list[Path]:
    return sorted(signatures_folder(number).glob("graph-*.npz"))


def face_index_folder(number: int) -> Path:
    """Version `number`'s face index: face crops' signatures (ids = face rows) and how they were chosen."""
    return signatures_folder(number) / "faces"


def pyramids_folder() -> Path:
    """Tiled pyramidal TIFFs, one per image content (`annotations.pyramids`), for the IIIF image server."""
    return root() / "pyramids"


def faces_folder() -> Path:
    return root() / "faces"


def face_choices_file() -> Path:
    """Which detector settings the pages and face indexes use, and which faces an index takes."""
    return faces_folder() / "current.json"


def face_lock_file() -> Path:
    """Held while faces are detected and stored: two detections at once would replace each other's scans."""
    return faces_folder() / ".detect.lock"
