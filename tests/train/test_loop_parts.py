"""The loop's parts on their own: the best-model keeper and the run logs (purge on resume)."""

from __future__ import annotations

import csv
import math

import torch

from flarelib.train.checkpoint import BEST_NAME, load_checkpoint
from flarelib.train.train_log import RunLogs
from flarelib.train.validation import BestModelKeeper


def _keeper(tmp_path, state, save=True):
    return BestModelKeeper(
        tmp_path / BEST_NAME, state, stage="s", params_hash="h", which="teacher", save=save
    )


def test_best_model_keeper_keeps_a_copy_of_the_highest_finite_value(tmp_path):
    net = torch.nn.Linear(2, 1)
    state = {"best_value": None, "best_iteration": None}
    keeper = _keeper(tmp_path, state)
    assert keeper.offer(net, {"dice_mean": 0.5}, 1)
    kept = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not keeper.offer(net, {"dice_mean": 0.4}, 2)  # lower
    assert not keeper.offer(net, {"dice_mean": 0.5}, 3)  # equal is not better
    assert not keeper.offer(net, {"dice_mean": math.nan}, 4)
    assert not keeper.offer(net, {"other": 1.0}, 5)
    assert state == {"best_value": 0.5, "best_iteration": 1}
    assert all(torch.equal(keeper.best_state()[k], kept[k]) for k in kept)  # not the live weights
    best = load_checkpoint(tmp_path / BEST_NAME)
    assert (best["iteration"], best["which"], best["value"]) == (1, "teacher", 0.5)
    assert (best["stage"], best["params_hash"], best["metric"]) == ("s", "h", "dice_mean")
    # a later call of the same run (resumed) keeps nothing better: the file's weights are the best
    assert all(torch.equal(_keeper(tmp_path, dict(state)).best_state()[k], kept[k]) for k in kept)
    assert _keeper(tmp_path, {"best_value": None}).best_state() is None


def test_best_model_keeper_without_save_writes_nothing(tmp_path):
    keeper = _keeper(tmp_path, {}, save=False)
    assert keeper.offer(torch.nn.Linear(2, 1), {"dice_mean": 0.1}, 1)
    assert keeper.best_state() is not None and not (tmp_path / BEST_NAME).exists()


def _iterations(path):
    with path.open() as fh:
        return [int(float(r["iteration"])) for r in csv.DictReader(fh)]


def test_run_logs_buffer_rows_and_drop_those_after_the_resume_point(tmp_path):
    logs = RunLogs(tmp_path, 0, log_every=2, tensorboard=False)
    logs.add_train({"iteration": 1.0, "loss": 1.0})
    assert not (tmp_path / "train_log.csv").exists()  # buffered
    for i in (2, 3, 4):
        logs.add_train({"iteration": float(i), "loss": 1.0 / i})
    assert logs.add_val(4, {"dice_mean": 0.5}) == {"iteration": 4.0, "dice_mean": 0.5}
    logs.close()
    assert _iterations(tmp_path / "train_log.csv") == [1, 2, 3, 4]
    resumed = RunLogs(tmp_path, 3, log_every=1, tensorboard=False)  # interrupted after checkpoint 3
    assert _iterations(tmp_path / "train_log.csv") == [1, 2, 3]
    assert _iterations(tmp_path / "val_log.csv") == []
    resumed.add_train({"iteration": 4.0, "loss": 0.2})
    assert _iterations(tmp_path / "train_log.csv") == [1, 2, 3, 4]
    RunLogs(None, 0, log_every=1, tensorboard=False).add_train({"iteration": 1.0})  # other ranks: no files
    RunLogs(tmp_path, 0, log_every=1, tensorboard=False)  # from scratch: old logs go
    assert not (tmp_path / "train_log.csv").exists()
