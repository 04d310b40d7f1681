"""The "phantom complete" marker: one owner, read back by flarelib.datasets."""

from __future__ import annotations

from flarelib.config import params_from_dict
from flarelib import datasets as prepare
from flarelib.data.phantom import marker


def test_marker_round_trip(tmp_path):
    params = params_from_dict({"phantom": {"n_amos": 1}})
    other = params_from_dict({"phantom": {"n_amos": 2}})
    assert marker.marker_key(tmp_path) is None
    path = marker.write_marker(params, tmp_path)
    assert path == tmp_path / marker.MARKER == tmp_path / "GENERATED.json"
    assert marker.marker_key(tmp_path) == marker.phantom_key(params) != marker.phantom_key(other)
    marker.clear_marker(tmp_path)
    marker.clear_marker(tmp_path)  # nothing to remove: no error
    assert not path.exists()


def test_unreadable_marker_has_no_key(tmp_path):
    for text in ("{not json", "[1, 2]", '{"key": 3}'):
        (tmp_path / marker.MARKER).write_text(text)
        assert marker.marker_key(tmp_path) is None


def test_prepare_uses_the_phantom_marker():
    assert prepare.MARKER is marker.MARKER
    assert prepare.write_marker is marker.write_marker and prepare.phantom_key is marker.phantom_key
