"""A driver killed while Ray copied its state to the storage path leaves torn files; --resume mends them."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from automl.sweep.torn_state import is_whole, mend_torn_state
from trainers.errors import UserError

SESSION, EARLIER = "2026-11-23_00-19-58", "2026-11-23_00-10-02"


def _experiment(tmp_path: Path) -> Path:
    """A storage-path experiment folder as Ray leaves it after two driver sessions."""
    experiment = tmp_path / "results/automl/ray/sweep"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(pickle.dumps({"param_space": {"lr": [1e-4, 1e-3]}}))
    for session in (EARLIER, SESSION):
        (experiment / f"experiment_state-{session}.json").write_text(json.dumps({"trial_data": [session]}))
        (experiment / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps({"session": session}))
        (experiment / f"callback-states-{session}.pkl").write_bytes(pickle.dumps({"rungs": [session]}))
    (experiment / "a1b2c3d4").mkdir()   # a trial's driver-side folder: not state
    return experiment


def _staging(ray_root: Path, session: str = SESSION) -> Path:
    staging = ray_root / "session_2026-11-23_00-17-37_118586_16673/artifacts" / session / "sweep/driver_artifacts"
    staging.mkdir(parents=True)
    return staging


def _tear(path: Path) -> bytes:
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


def test_a_pickle_or_json_cut_anywhere_is_torn_and_a_whole_one_is_not(tmp_path):
    state = {"rungs": [[1, {"t1": 0.4, "t2": 0.1}]], "ended": ["t1"], "note": "x" * 300}
    # Ray's search_gen_state-*.json holds a pickle: the content is judged, not the name.
    for name, data in (("s.pkl", pickle.dumps(state, protocol=5)), ("s.json", json.dumps(state).encode()),
                       ("search_gen_state-x.json", pickle.dumps(state, protocol=5))):
        path = tmp_path / name
        path.write_bytes(data)
        assert is_whole(path)
        for cut in range(len(data)):
            path.write_bytes(data[:cut])
            assert not is_whole(path), (name, cut)


class _Trap:
    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checking_a_pickle_never_runs_it(tmp_path):
    trap = _Trap()
    trap.marker = tmp_path / "ran"
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps(trap))
    assert is_whole(path)
    assert not trap.marker.exists()


def test_a_torn_session_is_restored_from_its_staging_copy_and_other_sessions_are_untouched(tmp_path):
    experiment, ray_root = _experiment(tmp_path), tmp_path / "ray"
    torn = experiment / f"callback-states-{SESSION}.pkl"
    whole = _tear(torn)
    staging = _staging(ray_root)
    (staging / torn.name).write_bytes(whole)
    # The staging copy is a save newer than the upload the kill cut short: the session comes back whole.
    newer = {f"experiment_state-{SESSION}.json": json.dumps({"trial_data": [SESSION, "newer"]}).encode(),
             f"searcher-state-{SESSION}.pkl": pickle.dumps({"session": SESSION, "newer": True})}
    for name, data in newer.items():
        (staging / name).write_bytes(data)
    (_staging(ray_root, "2026-11-23_00-30-00") / torn.name).write_bytes(whole)   # another sweep's session
    before = {path.name: path.read_bytes() for path in experiment.iterdir() if path.is_file()}
    lines = []

    assert mend_torn_state(experiment, lines.append, ray_root) == [torn]
    assert {path.name: path.read_bytes() for path in experiment.iterdir() if path.is_file()} == {
        **before, **newer, torn.name: whole}
    assert lines == [f"{experiment}: the killed driver tore {torn.name}; its session's state was restored from "
                     f"Ray's staging copy in {staging}"]


def test_a_staging_copy_that_is_torn_too_is_not_used(tmp_path):
    experiment, ray_root = _experiment(tmp_path), tmp_path / "ray"
    torn = experiment / f"callback-states-{SESSION}.pkl"
    whole = _tear(torn)
    staging = _staging(ray_root)
    for path in experiment.glob(f"*{SESSION}*"):
        (staging / path.name).write_bytes(path.read_bytes())
    (staging / torn.name).write_bytes(whole[:5])

    mend_torn_state(experiment, print, ray_root)
    assert (experiment / f"{torn.name}.torn").exists() and not torn.exists()


def test_without_a_staging_copy_the_torn_session_is_set_aside_and_the_one_before_remains(tmp_path):
    experiment = _experiment(tmp_path)
    torn = experiment / f"searcher-state-{SESSION}.pkl"
    torn_bytes = torn.read_bytes()[:10]
    torn.write_bytes(torn_bytes)
    whole_before = {path.name: path.read_bytes() for path in experiment.iterdir() if path.is_file()}
    lines = []

    mend_torn_state(experiment, lines.append, tmp_path / "no-ray-here")
    # Ray restores one session's state, not a mix: all of the torn session goes aside, nothing is deleted.
    after = {path.name: path.read_bytes() for path in experiment.iterdir() if path.is_file()}
    assert after == {(f"{name}.torn" if SESSION in name else name): data for name, data in whole_before.items()}
    assert lines == [f"{experiment}: the killed driver tore {torn.name} and no staging copy remains; its "
                     f"session's state is set aside as *.torn and the sweep resumes from the session before"]


def test_an_intact_experiment_is_left_as_it_is(tmp_path):
    experiment = _experiment(tmp_path)
    before = {path.name: path.read_bytes() for path in experiment.iterdir() if path.is_file()}
    assert mend_torn_state(experiment, print, tmp_path / "ray") == []
    assert {path.name: path.read_bytes() for path in experiment.iterdir() if path.is_file()} == before


@pytest.mark.parametrize("name", ["tuner.pkl", f"experiment_state-{SESSION}.json"])
def test_a_torn_state_with_nothing_to_fall_back_on_stops_the_resume_with_one_line(tmp_path, name):
    experiment = _experiment(tmp_path)
    (experiment / f"experiment_state-{EARLIER}.json").unlink()   # the first session's state is the only one
    _tear(experiment / name)
    with pytest.raises(UserError) as raised:
        mend_torn_state(experiment, print, tmp_path / "ray")
    message = str(raised.value)
    assert "\n" not in message and name in message and "nothing to resume" in message
    assert (experiment / name).exists() or (experiment / f"{name}.torn").exists()   # kept for a look


def test_a_torn_file_outside_any_session_goes_aside_alone(tmp_path):
    experiment = _experiment(tmp_path)
    stray = experiment / "basic-variant-state.json"
    stray.write_text('{"counter": ')
    mend_torn_state(experiment, print, tmp_path / "ray")
    assert (experiment / "basic-variant-state.json.torn").exists() and is_whole(experiment / "tuner.pkl")
    assert len(list(experiment.glob("*.torn"))) == 1
