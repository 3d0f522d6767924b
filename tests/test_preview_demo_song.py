"""The bundled demo song (livedance.assets): size, format, attribution and license, packaging, and that
it really is the stated cut of the CC BY-SA original in ../shared/data (skipped when that is absent)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livedance.assets import ASSET_DIR, ATTRIBUTION_FILE, DEMO_SONG, LICENSE_FILE, demo_song

REPO = Path(__file__).resolve().parents[1]
SONG_DIR = REPO.parent / "shared" / "data" / "music" / "muldjord-armygeddon"


def test_demo_song_is_a_small_ogg_vorbis_excerpt():
    path = demo_song()
    assert path.is_file() and path.parent == ASSET_DIR
    assert path.stat().st_size <= 1_000_000
    info = sf.info(str(path))
    assert info.format == "OGG" and info.subtype == "VORBIS"
    assert 30.0 <= info.duration <= 45.0
    assert info.duration == pytest.approx(DEMO_SONG.duration_s, abs=0.01)
    audio, sr = sf.read(str(path), dtype="float32")
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.05  # music, not silence
    beats = DEMO_SONG.beat_times()
    assert beats[0] == 0.0 and np.allclose(np.diff(beats), 60.0 / 170.0)


def test_attribution_and_license_travel_with_it():
    attribution = (ASSET_DIR / ATTRIBUTION_FILE).read_text()
    for needle in ("Muldjord", "El Senator", "CC BY-SA 3.0", "creativecommons.org/licenses/by-sa/3.0",
                   "MODIFICATION", "itself licensed under CC BY-SA 3.0", LICENSE_FILE, DEMO_SONG.file_name):
        assert needle in attribution, needle
    license_text = (ASSET_DIR / LICENSE_FILE).read_text()
    assert "Attribution-ShareAlike 3.0 Unported" in license_text
    assert "Creative Commons may be contacted" in license_text  # the full legal code, to its end
    readme = (ASSET_DIR / "armygeddon-readme.txt").read_text()
    assert "El Senator" in readme and "by-sa/3.0" in readme


def test_package_metadata_ships_the_assets():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    tool = meta["tool"]["setuptools"]
    assert "livedance.assets" in tool["packages"]
    globs = [g for pats in tool["package-data"].values() for g in pats]
    assert "*.ogg" in globs and "*.txt" in globs
    # the data-only folders are listed as packages (setuptools installs them without a warning) with their files
    for pkg, pattern in (("livedance.bridges.preview_static", "*"), ("livedance.calibration.profiles", "*.json")):
        assert pkg in tool["packages"] and pattern in tool["package-data"].get(pkg, []), pkg


def _midi_tempos_bpm(path: Path) -> list[float]:
    data = path.read_bytes()
    return [60e6 / int.from_bytes(m.group(1), "big") for m in re.finditer(rb"\xff\x51\x03(...)", data, re.S)]


@pytest.mark.data
def test_excerpt_is_the_stated_cut_of_the_original():
    song = SONG_DIR / DEMO_SONG.source_name
    if not song.is_file():
        pytest.skip(f"the original song is not at {song} (../shared/data is absent)")
    # The tempo map of the game chart: one constant tempo, the excerpt's bpm, and the cut on a beat.
    tempos = _midi_tempos_bpm(SONG_DIR / "notes.mid")
    assert tempos and all(abs(t - DEMO_SONG.bpm) < 0.01 for t in tempos)
    beats_before = DEMO_SONG.start_s / (60.0 / DEMO_SONG.bpm)
    assert abs(beats_before - round(beats_before)) < 1e-6
    # The audio: 10 s from the excerpt's middle sit at the stated offset in the original.
    ex, sr = sf.read(str(demo_song()), dtype="float32")
    i0, n = int(15 * sr), int(10 * sr)
    ref = ex[i0 : i0 + n].mean(axis=1)
    search = int(0.2 * sr)
    start = int(round((DEMO_SONG.start_s + 15.0) * sr)) - search
    orig, sr2 = sf.read(str(song), dtype="float32", start=start, frames=n + 2 * search)
    assert sr2 == sr
    orig = orig.mean(axis=1)
    from scipy.signal import correlate

    corr = correlate(orig, ref, mode="valid", method="fft")
    lag = int(np.argmax(corr)) - search
    assert abs(lag) <= int(0.002 * sr)
    seg = orig[search + lag : search + lag + n]
    r = float(np.corrcoef(seg, ref)[0, 1])
    assert r > 0.95  # the same audio, only lossy re-encoded
