"""flarelib.study.export: the reported model as a self-contained file with its model card."""

import json

import torch

from flarelib.checkpoint import load_checkpoint, load_model, save_checkpoint
from flarelib.config import compose_params
from flarelib.models.unet import unet_from_params
from flarelib.paths import display_path, project_root
from flarelib.study.export import export_model, export_name


def test_export_writes_a_model_predict_loads_alone_and_its_card(tmp_path, monkeypatch):
    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path / "outputs"))
    params = compose_params(project_root() / "params/runs/proposed.yaml", "smoke", "real")
    net = unet_from_params(params.unet)
    torch.nn.init.constant_(next(net.parameters()), 0.125)
    source = tmp_path / "outputs/smoke/proposed_real/04_stage3/model_best.pt"
    source.parent.mkdir(parents=True)
    save_checkpoint(source, {"state_dict": net.state_dict(), "which": "teacher"})
    metrics = {
        "mean_dsc": 0.5,
        "std_dsc": 0.1,
        "mean_nsd": 0.6,
        "std_nsd": 0.1,
        "n_cases": 4,
        "per_organ": {"liver": {"dsc": 0.9, "nsd": 0.8}, "spleen": {"dsc": 0.25, "nsd": 0.3}},
    }
    dest = export_model(source, params, metrics, "make reproduce PROFILE=smoke DATA=real RUNS=proposed")

    assert export_name(params) == "real_t2w_proposed"
    assert dest == tmp_path / "outputs/models/smoke/real_t2w_proposed.pt"
    ckpt = load_checkpoint(dest)
    assert "optimizers" not in ckpt and ckpt["source"] == display_path(source)
    model, loaded_params, info = load_model(dest)  # no params file: they travel inside
    assert loaded_params.data.track == "real" and info["weights"] == "teacher"
    torch.testing.assert_close(next(model.parameters()), next(net.parameters()))
    card = dest.with_suffix(".md").read_text()
    assert "| liver | 90.0 | 80.0 |" in card and "| **mean over cases** | 50.0 | 60.0 |" in card
    assert "--model outputs/models/smoke/real_t2w_proposed.pt" in card and "RUNS=proposed" in card
    assert str(tmp_path) not in card  # no machine path in a card that travels
    facts = json.loads(dest.with_suffix(".json").read_text())
    assert facts["sequence"] == "T2W" and facts["metrics"]["n_cases"] == 4
