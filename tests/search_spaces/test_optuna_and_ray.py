"""The space drives real Optuna studies (define-by-run) and Ray Tune's variant generator validly."""
import collections

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.variant_generator import generate_variants

from search_spaces.optuna_space import define_by_run, suggest_configuration, without_helper_parameters
from search_spaces.ray_space import ray_param_space
from search_spaces.sampling import configuration_problems
from search_spaces.space import SpaceRequest, build_search_space

from .nvidia import COSMOS, DINO, MASK2FORMER, NVIDIA_RTDETR, OURS, read

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACES = {
    "nvidia-rtdetr": lambda: build_search_space(read(NVIDIA_RTDETR, with_rtdetr_hints=True)),
    "ours-conditional": lambda: build_search_space(read(OURS), request=SpaceRequest(
        add=("train.optim.optimizer", "train.enable_ema"))),
    "dino": lambda: build_search_space(read(DINO)),
    "mask2former": lambda: build_search_space(read(MASK2FORMER)),
    "cosmos-reason": lambda: build_search_space(read(COSMOS), request=SpaceRequest(add=("train.optm_warmup_epochs",))),
}


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_optuna_trials_are_always_valid(name, sampler):
    space = SPACES[name]()
    chosen = optuna.samplers.RandomSampler(seed=0) if sampler == "random" else \
        optuna.samplers.TPESampler(seed=0, n_startup_trials=5)
    study = optuna.create_study(direction="maximize", sampler=chosen)
    for index in range(40):
        trial = study.ask()
        configuration = suggest_configuration(trial, space)
        assert configuration_problems(space, configuration) == []
        study.tell(trial, float(index % 7))


def test_optuna_random_sampler_follows_option_weights():
    space = SPACES["cosmos-reason"]()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    counts = collections.Counter()
    for _ in range(1500):
        trial = study.ask()
        counts[suggest_configuration(trial, space)["train.optm_decay_type"]] += 1
        study.tell(trial, 0.0)
    assert counts["cosine"] / 1500 == pytest.approx(0.4, abs=0.05)
    assert counts["linear"] / 1500 == pytest.approx(0.1, abs=0.04)


def test_define_by_run_returns_the_values_that_are_not_trial_params():
    space = SPACES["cosmos-reason"]()
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2)).ask()
    constants = define_by_run(space)(trial)
    assert set(constants) == {"train.optm_decay_type", "train.optm_warmup_epochs"}
    assert "train.optm_decay_type#quantile" in trial.params


@pytest.mark.parametrize("name", sorted(SPACES))
def test_ray_tune_variants_are_always_valid(name):
    space = SPACES[name]()
    param_space = ray_param_space(space, seed=0)
    for _ in range(150):
        for _, configuration in generate_variants(param_space):
            configuration = {k: v for k, v in configuration.items() if v is not None}
            assert configuration_problems(space, configuration) == []


def test_ray_optuna_search_runs_the_define_by_run_space():
    space = SPACES["cosmos-reason"]()
    searcher = OptunaSearch(space=define_by_run(space), metric="val_mAP50", mode="max",
                            sampler=optuna.samplers.RandomSampler(seed=0))
    for index in range(10):
        config = without_helper_parameters(searcher.suggest(f"trial_{index}"))
        assert configuration_problems(space, config) == []
        searcher.on_trial_complete(f"trial_{index}", {"val_mAP50": index / 10})
