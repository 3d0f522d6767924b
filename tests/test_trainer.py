"""Tests of livedance.model.trainer: schedule, resumable safetensors checkpoints, 2-process gloo DDP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from livedance.errors import ConfigError
from livedance.model.checkpoint import load_tensors
from livedance.model.tokenizer import Tokenizer, TokenizerConfig
from livedance.model.trainer import TrainConfig, Trainer, lr_at, seed_everything

torch.set_num_threads(1)

TINY = dict(part_dims=(("lower", 5), ("upper", 4)), levels=2, codebook_size=16, latent_dim=8, width=16, depth=1)


class SineWindows(torch.utils.data.Dataset):
    """Windows (16 frames x 9 features) of 4 slow sinusoid patterns, plus a random offset drawn from
    torch's RNG (augmentation: must be restored exactly on resume)."""

    def __init__(self, n: int = 64):
        g = torch.Generator().manual_seed(123)
        self.freq = torch.rand(4, 1, 9, generator=g) * 0.2 + 0.05
        self.phase = torch.rand(4, 1, 9, generator=g) * 6.28
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        t = torch.arange(16.0)[:, None]
        jitter = torch.rand(()) * 0.1
        return 2.0 * torch.sin(self.freq[i % 4] * t + self.phase[i % 4]) + jitter


def tok_loss(model, x):
    out = model(x)
    rec = (out["recon"] - x).abs().mean()
    return rec + out["commit"], {"recon": rec.detach()}


def _make(out: Path, steps: int = 12, resume: bool = False, run_config=None, loss=tok_loss, ema_decay: float = 0.0):
    seed_everything(0)
    model = Tokenizer(TokenizerConfig(**TINY))
    cfg = TrainConfig(steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, seed=0, log_every=2, ckpt_every=3,
                      progress=False, ema_decay=ema_decay)
    return model, Trainer(model, SineWindows(), loss, cfg, out, resume=resume, run_config=run_config or {"m": 1})


def test_lr_schedule_warms_up_then_anneals_to_floor():
    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(1e-4)
    assert lr_at(cfg, 9, 0.09) > lr_at(cfg, 4, 0.04)
    assert lr_at(cfg, 50, 0.5) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lr_at(cfg, 99, 1.0) == pytest.approx(1e-4)
    with pytest.raises(ConfigError):
        TrainConfig(steps=0)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    model_a, tr = _make(tmp_path / "a")
    res = tr.fit()
    assert res.step == 12 and res.stopped_by == "steps"
    files = sorted(p.name for p in (tmp_path / "a" / "checkpoint").iterdir())
    assert files == ["model.safetensors", "optimizer.safetensors", "trainer.json"]  # no pickle anywhere

    calls = {"n": 0}

    def crashing(model, x):
        calls["n"] += 1
        if calls["n"] == 8:  # dies during step 8; the last checkpoint is at step 6
            raise KeyboardInterrupt
        return tok_loss(model, x)

    _, tr_b = _make(tmp_path / "b", loss=crashing)
    with pytest.raises(KeyboardInterrupt):
        tr_b.fit()
    assert json.loads((tmp_path / "b" / "checkpoint" / "trainer.json").read_text())["step"] == 6
    model_b, tr_b2 = _make(tmp_path / "b", resume=True)
    res_b = tr_b2.fit()
    assert res_b.step == 12
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    # the saved optimizer state matches the live one
    opt = load_tensors(tmp_path / "b" / "checkpoint" / "optimizer.safetensors")
    st = tr_b2.optimizer.state_dict()["state"]
    assert torch.equal(opt["state.0.exp_avg"], st[0]["exp_avg"])


def test_resume_refuses_missing_or_foreign_checkpoints(tmp_path):
    _, tr = _make(tmp_path / "none", resume=True)
    with pytest.raises(ConfigError, match="no checkpoint"):
        tr.fit()
    _, tr = _make(tmp_path / "x", steps=3)
    tr.fit()
    _, tr = _make(tmp_path / "x", steps=3, resume=True, run_config={"m": 2})
    with pytest.raises(ConfigError, match="another model"):
        tr.fit()


def test_a_fresh_run_into_a_used_folder_is_refused_and_a_fresh_log_starts_empty(tmp_path):
    """A fresh run must not overwrite an earlier run's checkpoint (the run could no longer be resumed) nor append its
    log to the earlier run's: ``--out`` with a checkpoint needs ``--resume``."""
    from livedance.model.trainer import prepare_run_dir

    d = tmp_path / "run"
    _, tr = _make(d, steps=6)
    tr.fit()
    with pytest.raises(ConfigError, match="holds an earlier run's checkpoint.*--resume"):
        prepare_run_dir(d, resume=False)
    assert prepare_run_dir(d, resume=True) == d
    e = tmp_path / "crashed-before-a-save"
    e.mkdir()
    (e / "log.jsonl").write_text('{"step": 99, "loss": 1.0}\n')  # no checkpoint: a fresh run may go here
    prepare_run_dir(e, resume=False)
    _, tr = _make(e, steps=6)
    tr.fit()
    steps = [json.loads(line)["step"] for line in (e / "log.jsonl").read_text().splitlines()]
    assert steps and 99 not in steps and steps == sorted(steps)


def _crash_at(call: int):
    """tok_loss that raises KeyboardInterrupt on its ``call``-th call (during step ``call``)."""
    calls = {"n": 0}

    def crashing(model, x):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return tok_loss(model, x)

    return crashing


def test_resume_upgrades_a_saved_run_config_written_before_a_setting_existed(tmp_path):
    _, tr = _make(tmp_path / "old", steps=9, loss=_crash_at(7))
    with pytest.raises(KeyboardInterrupt):
        tr.fit()  # checkpoint at step 6; saved run_config {"m": 1}: written before the "new" setting existed
    seed_everything(0)
    cfg = TrainConfig(steps=9, batch_size=8, lr=3e-3, warmup_steps=2, seed=0, log_every=2, ckpt_every=3, progress=False)
    now = {"m": 1, "new": 0}
    plain = Trainer(Tokenizer(TokenizerConfig(**TINY)), SineWindows(), tok_loss, cfg, tmp_path / "old", resume=True,
                    run_config=now)
    with pytest.raises(ConfigError, match="another model"):
        plain.fit()
    up = Trainer(Tokenizer(TokenizerConfig(**TINY)), SineWindows(), tok_loss, cfg, tmp_path / "old", resume=True,
                 run_config=now, upgrade_run_config=lambda saved: {**saved, "new": 0})
    assert up.fit().step == 9  # resumed from step 6
    other = Trainer(Tokenizer(TokenizerConfig(**TINY)), SineWindows(), tok_loss, cfg, tmp_path / "old", resume=True,
                    run_config={"m": 1, "new": 1}, upgrade_run_config=lambda saved: {**saved, "new": 0})
    with pytest.raises(ConfigError, match="another model"):  # a real difference is still refused
        other.fit()


def test_generator_run_config_upgrade_fills_new_fields_with_defaults():
    from livedance.model.generator import GeneratorConfig
    from livedance.model.train_generator import upgrade_run_config

    new = GeneratorConfig(d_model=64).to_dict()
    old = {k: v for k, v in new.items() if k not in ("top_k", "min_p", "dropout")}
    saved = {"model": "livedance", "generator": old, "tokens": 64}
    assert upgrade_run_config(saved) == {"model": "livedance", "generator": new, "tokens": 64, "corrupt": 0.0,
                                         "mirror": False, "style_balance": 0.0, "speeds": [], "align_weight": 0.0,
                                         "init": None, "timbre": True}
    assert "corrupt" not in upgrade_run_config(saved, run_options=False)
    with pytest.raises(ConfigError, match="unknown fields"):
        upgrade_run_config({"generator": {**new, "from_the_future": 1}})


def test_dataset_smaller_than_a_batch_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        Trainer(torch.nn.Linear(2, 2), SineWindows(4), tok_loss, TrainConfig(batch_size=8, progress=False), tmp_path)


DDP_SCRIPT = """
import json, random, sys
from pathlib import Path
import numpy as np
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_trainer import TINY, SineWindows, tok_loss
from livedance.model.checkpoint import save_tensors
from livedance.model.tokenizer import Tokenizer, TokenizerConfig
from livedance.model.trainer import TrainConfig, Trainer, init_distributed, seed_everything, shutdown_distributed

out = Path(sys.argv[1])
dist = init_distributed()
assert dist.world_size == 2 and dist.backend == "gloo"
seed_everything(0)
model = Tokenizer(TokenizerConfig(**TINY))  # built after init: its codebooks sync over the process group
cfg = TrainConfig(steps=40, batch_size=8, lr=1e-2, warmup_steps=2, seed=0, log_every=5, ckpt_every=20, progress=False)
trainer = Trainer(model, SineWindows(), tok_loss, cfg, out / "run", dist=dist)
rng = [torch.get_rng_state()[-64:].tolist(), int(np.random.get_state()[1][0]), random.getstate()[1][:4]]
(out / f"rank{{dist.rank}}.rng.json").write_text(json.dumps(rng))  # this rank's streams as training starts
res = trainer.fit()
save_tensors(out / f"rank{{dist.rank}}.safetensors", model.state_dict())
(out / f"rank{{dist.rank}}.json").write_text(json.dumps(res.history))
shutdown_distributed()
"""


def test_two_process_gloo_ddp_ends_identical_and_learns(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).resolve().parent)))
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=180, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s0, s1 = load_tensors(tmp_path / "rank0.safetensors"), load_tensors(tmp_path / "rank1.safetensors")
    assert set(s0) == set(s1) and any("_codebook.embed" in k for k in s0)
    for k in s0:
        assert torch.equal(s0[k], s1[k]), f"ranks differ in {k}"
    h0 = json.loads((tmp_path / "rank0.json").read_text())
    h1 = json.loads((tmp_path / "rank1.json").read_text())
    assert [(r["step"], r["loss"]) for r in h0] == [(r["step"], r["loss"]) for r in h1]  # rank-averaged
    assert h0[-1]["loss"] < 0.85 * h0[0]["loss"]
    # only rank 0 wrote the run folder, and its checkpoint is the final state
    ck = load_tensors(tmp_path / "run" / "checkpoint" / "model.safetensors")
    for k in s0:
        assert torch.equal(ck[k], s0[k])
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == len(h0)
    # each rank draws from its own torch / numpy / python streams (seed + rank): dropout and augmentation differ
    r0, r1 = (json.loads((tmp_path / f"rank{r}.rng.json").read_text()) for r in (0, 1))
    assert all(a != b for a, b in zip(r0, r1))


def test_resume_refuses_other_training_settings_but_not_reporting_ones(tmp_path):
    _, tr = _make(tmp_path / "x", steps=3)
    tr.fit()
    for change, field in ((dict(lr=1e-3), "lr: saved 0.003, now 0.001"), (dict(seed=1), "seed: saved 0, now 1"),
                          (dict(batch_size=4), "batch_size"), (dict(minutes=5.0), "minutes: saved None, now 5.0"),
                          (dict(steps=4), "steps: saved 3, now 4")):
        kw = dict(steps=3, batch_size=8, lr=3e-3, warmup_steps=2, seed=0, log_every=2, ckpt_every=3, progress=False)
        cfg = TrainConfig(**{**kw, **change})
        tr = Trainer(Tokenizer(TokenizerConfig(**TINY)), SineWindows(), tok_loss, cfg, tmp_path / "x", resume=True,
                     run_config={"m": 1})
        with pytest.raises(ConfigError, match="other training settings") as e:
            tr.fit()
        assert field in str(e.value) and str(tmp_path / "x" / "checkpoint") in str(e.value)
    # reporting and checkpoint-cadence fields may change
    cfg = TrainConfig(steps=3, batch_size=8, lr=3e-3, warmup_steps=2, seed=0, log_every=1, ckpt_every=1,
                      ckpt_every_minutes=9.0, progress=False)
    tr = Trainer(Tokenizer(TokenizerConfig(**TINY)), SineWindows(), tok_loss, cfg, tmp_path / "x", resume=True,
                 run_config={"m": 1})
    assert tr.fit().step == 3
    # a checkpoint written before a TrainConfig field existed reads it as its default
    tj = tmp_path / "x" / "checkpoint" / "trainer.json"
    doc = json.loads(tj.read_text())
    del doc["train_config"]["min_lr_ratio"]
    tj.write_text(json.dumps(doc))
    _, tr = _make(tmp_path / "x", steps=3, resume=True)
    assert tr.fit().step == 3


def test_resume_refuses_another_world_size(tmp_path):
    _, tr = _make(tmp_path / "w", steps=3)
    tr.fit()
    tj = tmp_path / "w" / "checkpoint" / "trainer.json"
    doc = json.loads(tj.read_text())
    doc["world_size"] = 2  # as if written by a 2-process torchrun
    tj.write_text(json.dumps(doc))
    _, tr = _make(tmp_path / "w", steps=3, resume=True)
    with pytest.raises(ConfigError, match=r"written by 2 process\(es\), this run has 1"):
        tr.fit()


@pytest.mark.parametrize("crash", [9, 5])
def test_resume_after_a_crash_does_not_log_steps_twice(tmp_path, crash):
    """Crash at 9: steps 1..8 done and logged up to 8, checkpoint at 6. Crash at 5: the checkpoint at 3 falls
    between two logged steps (every 2), so step 3's loss is in the log accumulators the checkpoint carries."""
    _, tr = _make(tmp_path / "a")
    tr.fit()
    _, tr = _make(tmp_path / "b", loss=_crash_at(crash))
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    _, tr = _make(tmp_path / "b", resume=True)
    tr.fit()

    def records(run):
        return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"}
                for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]

    assert [r["step"] for r in records("b")] == [2, 4, 6, 8, 10, 12]
    assert records("b") == records("a")  # and the resumed run logs what the uninterrupted one did


def test_a_double_crash_never_loses_the_only_checkpoint(tmp_path, monkeypatch):
    import livedance.model.trainer as trainer_mod

    out = tmp_path / "r"
    _, tr = _make(out, steps=6)
    tr.fit()
    # a crash between "checkpoint -> checkpoint.old" and "checkpoint.tmp -> checkpoint", then .old cleaned up:
    # only the complete checkpoint.tmp (step 6) is left
    (out / "checkpoint").rename(out / "checkpoint.tmp")
    _, tr = _make(out, steps=6, resume=True)
    tr.load_checkpoint()
    assert tr.step == 6  # resumed from checkpoint.tmp

    real = trainer_mod.save_tensors

    def dying(path, *a, **k):  # the next save dies while writing its new checkpoint.tmp
        if Path(path).name == "model.safetensors":
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(trainer_mod, "save_tensors", dying)
    with pytest.raises(KeyboardInterrupt):
        tr.save_checkpoint()
    monkeypatch.setattr(trainer_mod, "save_tensors", real)
    _, tr = _make(out, steps=6, resume=True)
    tr.load_checkpoint()  # the step-6 checkpoint survived (moved to checkpoint/ before the new one was begun)
    assert tr.step == 6 and (out / "checkpoint" / "trainer.json").is_file()


def test_weight_average_follows_the_ema_recursion_and_copies_buffers(tmp_path):
    seen: list[dict[str, torch.Tensor]] = []  # the parameters each step starts from: theta_0 .. theta_{N-1}

    def recording(model, x):
        seen.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return tok_loss(model, x)

    d = 0.8
    model, tr = _make(tmp_path / "ema", steps=5, ema_decay=d, loss=recording)
    tr.fit()
    thetas = seen[1:] + [{k: v.detach() for k, v in model.named_parameters()}]  # theta_1 .. theta_N
    avg = dict(thetas[0])
    for th in thetas[1:]:
        avg = {k: d * avg[k] + (1 - d) * th[k] for k in avg}
    got = dict(tr.averaged.named_parameters())
    for k in avg:
        torch.testing.assert_close(got[k], avg[k], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(got[k], thetas[-1][k]) for k in got)  # the average is not the last step's weights
    for (n, b_avg), (_, b) in zip(tr.averaged.named_buffers(), model.named_buffers()):
        assert torch.equal(b_avg, b), n  # codebooks and counters: the live model's, not averaged
    assert (tmp_path / "ema" / "checkpoint" / "ema.safetensors").is_file()
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_weight_average_resumes_exactly(tmp_path):
    _, tr_a = _make(tmp_path / "a", steps=8, ema_decay=0.7)
    tr_a.fit()
    # dies during step 5; the last checkpoint is at step 3
    _, tr_b = _make(tmp_path / "b", steps=8, ema_decay=0.7, loss=_crash_at(5))
    with pytest.raises(KeyboardInterrupt):
        tr_b.fit()
    _, tr_b2 = _make(tmp_path / "b", steps=8, ema_decay=0.7, resume=True)
    tr_b2.fit()
    sa, sb = tr_a.averaged.state_dict(), tr_b2.averaged.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert tr_b2.ema.n_averaged.item() == 8
