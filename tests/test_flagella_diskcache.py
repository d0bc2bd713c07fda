"""labkit.flagella.diskcache: one JSON record per key, atomic, misses on damage."""

from __future__ import annotations

import hashlib
import json

import pytest

from labkit.flagella import FlagellaError, sphere_convergence
from labkit.flagella.diskcache import JsonCache


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    return tmp_path


def test_round_trip_miss_and_damage(cache_root):
    c = JsonCache("demo")
    key = {"v": 1, "n": 3, "x": 0.5}
    assert c.get(key) is None
    path = c.put(key, {"value": [1.0, 2.0]})
    assert path.parent == cache_root / "flagella" and path.name.startswith("demo_")
    assert c.get(key) == {"value": [1.0, 2.0]}
    assert c.get(key, required=("other",)) is None  # a record without the field is a miss
    path.write_text("{not json")
    assert c.get(key) is None
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    with pytest.raises(FlagellaError):
        JsonCache("../x")


def test_file_names_match_the_earlier_caches(cache_root):
    # the file-name scheme the sphere sweep's and the bundle's existing caches use
    key = [1, 200, 0.35]
    old = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]
    assert JsonCache("sphere").path(key).name == f"sphere_{old}.json"
    d = {"v": 2, "pitch": 2.2e-6, "n": 3, "spacing": None}
    old = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:20]
    assert JsonCache("bundle").path(d).name == f"bundle_{old}.json"


def test_sphere_convergence_reuses_its_records(cache_root):
    first = sphere_convergence([40], cache=True)
    again = sphere_convergence([40], cache=True)
    assert first.seconds[0, 0] > 0 and again.seconds[0, 0] == 0
    assert again.translation_error[0, 0] == first.translation_error[0, 0]
    assert len(list((cache_root / "flagella").glob("sphere_*.json"))) == 1
