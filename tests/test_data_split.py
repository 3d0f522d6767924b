"""Tang 2018 train/val/test split: deterministic, stratified by style, by whole sequence."""

from __future__ import annotations

import json

import pytest

from livedance.data.split import SPLIT_PATH, make_tang_split, split_names
from livedance.data.tang import style_of
from livedance.errors import ConfigError, DataError

NAMES = (
    [f"DANCE_C_{i}" for i in (2, 4, 6, 7)]
    + [f"DANCE_R_{i}" for i in (2, 3, 4, 5, 7, 8)]
    + ["DANCE_T_5"]
    + [f"DANCE_W_{i}" for i in (1, 3, 4, 5, 6, 7, 10, 11, 12, 14, 15, 16, 17, 18, 20, 21, 22, 23, 25, 26, 27, 28, 29, 30, 31, 32, 34)]
)


def test_deterministic_and_order_independent():
    a = make_tang_split(NAMES, seed=3)
    b = make_tang_split(list(reversed(NAMES)), seed=3)
    assert a == b
    assert make_tang_split(NAMES, seed=4) != a  # the seed matters


def test_partition_and_stratification():
    s = make_tang_split(NAMES, seed=0)
    parts = [set(s[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(NAMES) and set().union(*parts) == set(NAMES)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    styles = {style_of(n) for n in NAMES}
    for style in styles:
        n = sum(style_of(x) == style for x in NAMES)
        in_test = sum(style_of(x) == style for x in s["test"])
        in_val = sum(style_of(x) == style for x in s["val"])
        if n >= 2:
            assert in_test >= 1, style
        if n >= 3:
            assert in_val >= 1, style
        assert n - in_test - in_val >= 1  # every style trains
    assert 0.6 <= len(s["train"]) / len(NAMES) <= 0.8


def test_bad_inputs():
    with pytest.raises(ConfigError):
        make_tang_split(NAMES, val_frac=0.7)
    with pytest.raises(ConfigError):
        make_tang_split(NAMES + NAMES[:1])
    with pytest.raises(DataError):
        make_tang_split(["DANCE_Q_1"])
    with pytest.raises(ConfigError):
        split_names("holdout")


def test_committed_split_is_reproducible(tmp_path):
    data = json.loads(SPLIT_PATH.read_text())
    names = data["train"] + data["val"] + data["test"]
    assert sorted(names) == sorted(NAMES)
    redo = make_tang_split(names, seed=data["seed"], val_frac=data["val_frac"], test_frac=data["test_frac"])
    assert {k: redo[k] for k in ("train", "val", "test")} == {k: data[k] for k in ("train", "val", "test")}
    assert split_names("all") == sorted(NAMES)
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"train": ["A"], "val": ["A"], "test": []}))
    with pytest.raises(DataError, match="more than one split"):
        split_names("train", bad)


def test_fractions_that_leave_a_style_no_train_sequence_are_refused():
    with pytest.raises(ConfigError, match=r"leave style cha-cha \(4 sequences: 2 val, 2 test\) no train sequence"):
        make_tang_split(NAMES, val_frac=0.5, test_frac=0.5)
    split = make_tang_split(NAMES, val_frac=0.5, test_frac=0.25)  # every style keeps at least one train sequence
    assert all(c["train"] >= 1 for c in split["by_style"].values())


def test_align_tang_refuses_an_unknown_sequence_before_it_writes(tmp_path):
    from livedance.cli import main
    from livedance.data.tang import default_data_root

    if not (default_data_root() / "dance-tang2018").is_dir():
        pytest.skip("Tang 2018 data not found")
    out = tmp_path / "align.json"
    assert main(["data", "align-tang", "--only", "DANCE_X_99", "--out", str(out)]) == 2
    assert not out.exists()  # an empty study would have replaced the committed alignment
