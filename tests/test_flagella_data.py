import math

import numpy as np
import pytest

from labkit.flagella import DARNTON_2007, FlagellaError, load_darnton2007, load_lisevich2024
from labkit.flagella.data import data_path, read_table


def test_darnton_file_reads_with_tags():
    d = load_darnton2007()
    assert d["speed"].mean == pytest.approx(29e-6)
    assert d["bundle_rate"].mean == pytest.approx(2 * math.pi * 131)
    assert d["body_rate"].sd == pytest.approx(2 * math.pi * 8)
    assert math.isnan(d["flagella"].sd)
    assert "[S]" in d["speed"].source and "[R]" in d["speed"].source and "Darnton" in d["speed"].source
    assert "[T]" in d["flagella"].source
    assert DARNTON_2007["speed"] == d["speed"]


def test_lisevich_file_is_consistent():
    s = load_lisevich2024()
    assert len(s.speed) == 10 and sorted(set(s.n_flagella.tolist())) == [2.12, 4.76, 7.57]
    # motor rate = bundle + body rate in every published row (1 Hz rounding)
    assert np.allclose(s.motor_rate, s.bundle_rate + s.body_rate, atol=2 * math.pi * 1.0)
    g = s.by_strain()
    assert g["n_flagella"].tolist() == [2.12, 4.76, 7.57]
    assert np.all(g["speed_se"] > 0)
    # recomputed strain means of the ratios agree with the published columns' means within 5 %
    for n, sp in zip(g["n_flagella"], g["speed_per_turn"], strict=True):
        pub = s.published_speed_per_turn[s.n_flagella == n].mean()
        assert sp == pytest.approx(pub, rel=0.05)


def test_missing_column_and_bad_values_are_named(tmp_path):
    bad = tmp_path / "lis.csv"
    bad.write_text("# comment\nnflag,v0wf,wbwf,v0,wf,wM\n2,0.1,0.1,20,180,210\n")
    with pytest.raises(FlagellaError, match=r"missing column\(s\) \['wb'\]"):
        load_lisevich2024(bad)
    bad.write_text("nflag,v0wf,wbwf,v0,wf,wM,wb\n2,0.1,0.1,fast,180,210,30\n")
    with pytest.raises(FlagellaError, match=r"column 'v0'.*'fast'"):
        load_lisevich2024(bad)
    bad.write_text("nflag,v0wf,wbwf,v0,wf,wM,wb\n2,0.1,0.1,-20,180,210,30\n")
    with pytest.raises(FlagellaError, match=r"column 'v0'.*'-20'"):
        load_lisevich2024(bad)
    bad.write_text("quantity,unit,mean,sd,tag_mean,tag_sd\nspeed,furlongs,29,6,S,R\n")
    with pytest.raises(FlagellaError, match="unknown unit 'furlongs'"):
        load_darnton2007(bad)
    bad.write_text("quantity,unit,mean,sd,tag_mean\nspeed,um/s,29,6,S\n")
    with pytest.raises(FlagellaError, match="tag_sd"):
        load_darnton2007(bad)
    with pytest.raises(FlagellaError, match="cannot read"):
        read_table(tmp_path / "nope.csv", ("a",))
    assert data_path("darnton2007_swimming.csv").exists()
