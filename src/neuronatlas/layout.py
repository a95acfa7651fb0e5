"""A run folder's layout (docs/format.md): the one module that names its files. The
maths never builds a path; the stores (a run folder, a study) ask this module where a
thing lives.

::

    RUN/model.safetensors, config.json, metrics.jsonl, owner.json, .neuronatlas.lock
    RUN/checkpoints/latest.safetensors     RUN/snapshots/step-00000000.safetensors
    RUN/replaced/                          the run --overwrite replaces, until saved
    RUN/evaluation-test.json               RUN/analysis/{dead,examples,...}.json, .npz
    RUN/atlas-cache/cfg-*.npz, layer1-exact.npz (the pictures), explanations.npz
    RUN/atlas/ (the site)
"""

from __future__ import annotations

from pathlib import Path

MODEL = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
OWNER = "owner.json"  # the model a folder without MODEL holds artefacts of
LOCK = ".neuronatlas.lock"
CHECKPOINT = "checkpoints/latest.safetensors"
SNAPSHOTS = "snapshots"
REPLACED = "replaced"  # where --overwrite keeps a finished run until the new one is saved
ANALYSIS = "analysis"
EXAMPLES = "examples.npz"  # in ANALYSIS, beside examples.json
VISUALIZATIONS = "visualizations.npz"  # in ANALYSIS, beside visualizations.json
GALLERY = "atlas-cache"  # the atlas's pictures: <config id>.npz, keyed by model and targets
LAYER1_EXACT = "layer1-exact.npz"  # in GALLERY: layer 1's exact optimum
EXPLANATIONS = "explanations.npz"  # in GALLERY: every neuron explained (explanations/run.py)
ATLAS = "atlas"  # the site
# a study's folder: one run folder per network, and
STUDY_RECORD = "study.json"  # the spec and every task's record
STUDY_STORE = "study.zarr"  # the results, through xarray
TASK_FILE = "task.json"  # in a network's run folder: the key of the task that made it
COMPARISONS = "comparisons"  # <a>~<b>.json
FORMATION = "formation"  # <network>.json
STUDY_EXAMPLES = "examples"  # <network>.npz: every hidden neuron's top examples
STUDY_PICTURES = "pictures"  # <network>.npz: every hidden neuron's picture, and its film
STUDY_PAGE_FILES = "page"  # the study page's sprite sheets


def model_file(run: str | Path) -> Path:
    return Path(run) / MODEL


def analysis_dir(run: str | Path) -> Path:
    return Path(run) / ANALYSIS


def snapshot_file(run: str | Path, step: int) -> Path:
    return Path(run) / SNAPSHOTS / f"step-{step:08d}.safetensors"


def evaluation_file(run: str | Path, split: str, suffix: str = "") -> Path:
    """``RUN/evaluation-<split><suffix>.json`` (a suffix for another dataset's numbers)."""
    return Path(run) / f"evaluation-{split}{suffix}.json"
