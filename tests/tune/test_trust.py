"""Sweep resume unpickles only state this user's fedray signed: crafted pickles are refused, not run."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from fedray.errors import FedRayError
from fedray.tune.trust import (
    KEY_FILE,
    SIGNATURE_FILE,
    UntrustedStateError,
    drop_trial_errors,
    sign_state,
    signing_key,
    verify_state,
)

ROOT = Path(__file__).resolve().parents[2]


class _Planted:
    """Unpickling this creates ``marker``: proof that a crafted file was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    directory = tmp_path / "config"
    monkeypatch.setenv("FEDRAY_CONFIG_DIR", str(directory))
    return directory


def fake_sweep(root: Path) -> Path:
    """A sweep directory shaped like Tune's: state at the top, trial directories below."""
    sweep = root / "sweep"
    (sweep / "trial_a" / "run").mkdir(parents=True)
    (sweep / "tuner.pkl").write_bytes(pickle.dumps({"trainable": "fedray_trial"}))
    (sweep / "experiment_state-2026.json").write_text('{"trial_data": []}')
    (sweep / "basic-variant-state-2026.json").write_bytes(pickle.dumps([1, 2]))
    (sweep / "trial_a" / "error.pkl").write_bytes(pickle.dumps(ValueError("x")))
    (sweep / "trial_a" / "run" / "history.jsonl").write_text("{}\n")
    (sweep / "results.csv").write_text("trial\n")
    return sweep


def test_the_key_is_created_once_private_and_reused(config_dir):
    key = signing_key()
    path = config_dir / KEY_FILE
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_key() == key
    path.chmod(0o644)
    with pytest.raises(FedRayError, match="chmod 600"):
        signing_key()


def test_signed_state_verifies_and_fedray_outputs_are_not_state(tmp_path):
    sweep = fake_sweep(tmp_path)
    sign_state(str(sweep))
    (sweep / "results.csv").write_text("changed afterwards\n")  # fedray's own output: not Tune state
    (sweep / "trial_a" / "run" / "history.jsonl").write_text("{}\n{}\n")  # the run directory is not either
    verify_state(str(sweep))


@pytest.mark.parametrize("tamper", ["replace tuner.pkl", "add a newer experiment state", "replace error.pkl",
                                    "add a callback state", "drop a signed file"])
def test_changed_state_is_refused(tmp_path, tamper):
    sweep = fake_sweep(tmp_path)
    sign_state(str(sweep))
    planted = pickle.dumps(_Planted(tmp_path / "executed"))
    target = {"replace tuner.pkl": "tuner.pkl", "add a newer experiment state": "experiment_state-2027.json",
              "replace error.pkl": "trial_a/error.pkl", "add a callback state": "callback-states-2027.pkl",
              "drop a signed file": None}[tamper]
    if target is None:
        (sweep / "basic-variant-state-2026.json").unlink()
    else:
        (sweep / target).write_bytes(planted)
    with pytest.raises(UntrustedStateError, match="does not match its fedray signature") as info:
        verify_state(str(sweep))
    assert (target or "basic-variant-state-2026.json") in str(info.value)
    assert not (tmp_path / "executed").exists()


def test_unsigned_state_and_another_users_signature_are_refused(tmp_path, config_dir, monkeypatch):
    sweep = fake_sweep(tmp_path)
    with pytest.raises(UntrustedStateError, match="has no fedray signature"):
        verify_state(str(sweep))
    sign_state(str(sweep), key=b"k" * 32)  # signed, but with a key that is not this user's
    signing_key()
    with pytest.raises(UntrustedStateError, match="was not made with this user's key"):
        verify_state(str(sweep))
    monkeypatch.setenv("FEDRAY_CONFIG_DIR", str(tmp_path / "fresh"))  # a user who never signed anything
    with pytest.raises(UntrustedStateError, match="never signed"):
        verify_state(str(sweep))


def test_resume_refuses_a_crafted_tuner_pickle_without_running_it(tmp_path):
    """The real resume path: a sweep directory holding a malicious tuner.pkl (the state Tune unpickles
    first) is refused before Tune reads it, signed before the swap or not at all."""
    from fedray.tune import load_space
    from fedray.tune.trainable import restore_tuner

    space = load_space(ROOT / "tune_spaces" / "mini-asha.yaml")
    marker = tmp_path / "executed"
    for signed in (False, True):
        sweep = fake_sweep(tmp_path / str(signed))
        if signed:
            sign_state(str(sweep))  # this user's sweep, then the swap
        (sweep / "tuner.pkl").write_bytes(pickle.dumps(_Planted(marker)))
        with pytest.raises(UntrustedStateError):
            restore_tuner(space, str(sweep))
        assert not marker.exists()


def test_verified_trial_errors_are_dropped_before_a_resume(tmp_path):
    sweep = fake_sweep(tmp_path)
    sign_state(str(sweep))
    drop_trial_errors(str(sweep))
    assert not (sweep / "trial_a" / "error.pkl").exists() and (sweep / "tuner.pkl").exists()
    assert (sweep / SIGNATURE_FILE).exists()


@pytest.mark.ray
def test_fedray_tune_resume_refuses_a_planted_sweep_with_a_clear_message(ray_cluster, tmp_path, capsys):
    from fedray.cli.main import main

    storage = tmp_path / "storage"
    sweep = fake_sweep(storage)  # the sweep "sweep" in --storage
    marker = tmp_path / "executed"
    (sweep / "tuner.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    space = tmp_path / "s.yaml"
    space.write_text(f"name: sweep\nscenario: {ROOT / 'scenarios' / 'mini.yaml'}\n"
                     "overrides: {data.validation_fraction: 0.1, resources.actors: 1}\n")
    assert main(["tune", str(space), "--storage", str(storage), "--resume"]) == 2
    assert "has no fedray signature" in capsys.readouterr().err
    assert not marker.exists()
