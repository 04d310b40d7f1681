"""A run's reported model, exported to a stable place with a model card.

``outputs/models/<profile>/<name>.pt`` is a self-contained model file
(:func:`flarelib.checkpoint.save_model_file`: the network's weights and the resolved params, nothing
of the optimiser), so ``flarelib predict IN OUT --model outputs/models/<profile>/<name>.pt`` needs
nothing else; ``<name>.md`` is its model card (data,
organs, spacing and configuration, scores on the labelled MR it was evaluated on, the command that
made it) and ``<name>.json`` the same facts for programs. The name is
``<track>_<target sequence>_<run>`` (e.g. ``real_t2w_proposed``); a run exports when
``study.export`` is true.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flarelib.config import Params
from flarelib.paths import atomic_write_text, display_path, outputs_root

__all__ = ["export_model", "export_name", "model_card"]


def export_name(params: Params) -> str:
    """``<track>_<target sequence>_<run name>``, lower case."""
    seq = params.cyclegan.target_sequence.lower()
    return f"{params.data.track}_{seq}_{params.run.name}".lower()


def model_card(params: Params, metrics: dict[str, Any], source: str, command: str) -> str:
    """The model card (Markdown) of a model evaluated with ``metrics`` (a ``05_evaluate``
    ``metrics.json``)."""
    from flarelib.labels import ORGANS
    from flarelib.study.flow import labelled_sources

    organs = metrics.get("per_organ", {})
    lines = [
        f"# Model card: {export_name(params)}",
        "",
        f"- **What**: the `{params.run.name}` run of flare-study (FLARE24 Task 3 method), data track "
        f"`{params.data.track}`, profile `{params.run.profile}`, seed {params.run.seed}.",
        f"- **Input**: {params.cyclegan.target_sequence} MR volumes (NIfTI, DICOM series, MHA/NRRD), any "
        "orientation and spacing; the output label map lies on the input's grid.",
        f"- **Organs** (FLARE24 ids): {', '.join(f'{k} {v}' for k, v in ORGANS.items())}. "
        f"Scored below: the organs the evaluation labels annotate ({', '.join(organs) or 'none'}).",
        f"- **Network**: U-Net, configuration `{params.unet.configuration}`, channels "
        f"{list(params.unet.channels)}, trained at spacing {list(params.preprocess.target_spacing_zyx)} mm "
        f"(z, y, x), sliding window {list(params.infer.window_zyx)}.",
        f"- **Trained from**: labelled CT ({params.data.track} track) and unlabelled MR; study settings "
        f"stage 1 {params.study.stage1}, stage 2 labelled {labelled_sources(params)}, "
        f"stage-3 iterations {params.study.stage3.iterations} (reported: "
        f"{params.study.stage3.final_iteration or 'the last'}).",
        f"- **Source checkpoint**: `{source}`.",
        f"- **Made by**: `{command}`.",
        "",
        f"## Scores on the labelled MR ({metrics.get('n_cases')} cases, FLARE-exact, x100)",
        "",
        "| organ | DSC | NSD |",
        "|---|---|---|",
    ]
    for organ, s in organs.items():
        lines.append(f"| {organ} | {100 * (s.get('dsc') or 0):.1f} | {100 * (s.get('nsd') or 0):.1f} |")
    lines += [
        f"| **mean over cases** | {100 * metrics.get('mean_dsc', float('nan')):.1f} | "
        f"{100 * metrics.get('mean_nsd', float('nan')):.1f} |",
        "",
        "## Use",
        "",
        "```",
        f"flarelib predict MY_MR_FOLDER MY_OUTPUT_FOLDER --model "
        f"outputs/models/{params.run.profile}/{export_name(params)}.pt",
        "```",
        "",
        "A research model from a small CPU-profile training run: read the scores above before trusting "
        "its output; not for clinical use.",
    ]
    return "\n".join(lines) + "\n"


def export_model(
    checkpoint: str | Path,
    params: Params,
    metrics: dict[str, Any],
    command: str,
    folder: str | Path | None = None,
) -> Path:
    """Write ``<folder>/<name>.pt`` (default folder ``outputs/models/<profile>``), its model card ``.md`` and
    ``.json``; every file atomically. Returns the model file."""
    from flarelib.checkpoint import load_model, save_model_file

    folder = Path(folder) if folder is not None else outputs_root() / "models" / params.run.profile
    folder.mkdir(parents=True, exist_ok=True)
    name = export_name(params)
    model, _, info = load_model(checkpoint, params)
    source = display_path(checkpoint)
    dest = save_model_file(
        folder / f"{name}.pt",
        params,
        {info["weights"]: model.state_dict()},
        stage="export",
        source=source,
        scores={k: metrics.get(k) for k in ("mean_dsc", "std_dsc", "mean_nsd", "std_nsd", "n_cases")},
    )
    atomic_write_text(folder / f"{name}.md", model_card(params, metrics, source, command))
    facts = {
        "model": f"{name}.pt",
        "source": source,
        "command": command,
        "track": params.data.track,
        "sequence": params.cyclegan.target_sequence,
        "spacing_zyx_mm": list(params.preprocess.target_spacing_zyx),
        "configuration": params.unet.configuration,
        "metrics": metrics,
    }
    atomic_write_text(folder / f"{name}.json", json.dumps(facts, indent=2) + "\n")
    return dest
