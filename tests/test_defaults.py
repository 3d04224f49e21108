"""One home per rule: the CLI, the stage functions and the classes read each default and bound from one record."""

from __future__ import annotations

import inspect
from dataclasses import fields, replace

import click
import pytest

from colorize.cli import cli
from colorize.dataset import PREP_BOUNDS, PrepParams, check_prep_params, option_name
from colorize.errors import UsageError
from colorize.models.net import DEFAULT_WIDTH, ROUTER_MIN_CONFIDENCE
from colorize.scraper import MIN_KEYWORD_SCORE, SCRAPE_DEFAULTS


def _options(command: str) -> dict[str, click.Option]:
    return {p.name: p for p in cli.commands[command].params if isinstance(p, click.Option)}


@pytest.mark.parametrize("field", sorted(PREP_BOUNDS))
def test_a_prep_bound_is_the_same_rule_for_the_cli_and_for_python(field):
    lo, hi = PREP_BOUNDS[field]
    option = _options("prep")[field]
    assert (option.type.min, option.type.max) == (lo, hi) and option.default == getattr(PrepParams, field)
    assert option_name(field) in option.opts
    step = 1 if isinstance(getattr(PrepParams, field), int) else 0.5
    for bad in [lo - step] + ([] if hi is None else [hi + step]):
        with pytest.raises(UsageError, match=option_name(field)):
            check_prep_params(replace(PrepParams(), **{field: type(getattr(PrepParams, field))(bad)}))
    check_prep_params(replace(PrepParams(), **{field: type(getattr(PrepParams, field))(lo)}))


def test_scrape_defaults_come_from_one_record():
    from colorize.scraper.scrape import run_scrape
    from colorize.scraper.unsplash_dataset.scrape import run_dataset_scrape

    record = {f.name: getattr(SCRAPE_DEFAULTS, f.name) for f in fields(SCRAPE_DEFAULTS)}
    cli_defaults = {name: o.default for name, o in _options("scrape").items()}
    web = inspect.signature(run_scrape).parameters
    dataset = inspect.signature(run_dataset_scrape).parameters
    for name, value in record.items():
        if name == "min_keyword_score":
            assert dataset["min_confidence"].default == value == MIN_KEYWORD_SCORE
            continue
        assert cli_defaults[name] == value, name
        assert web[name].default == value, name
        if name in dataset:
            assert dataset[name].default == value, name


def test_the_two_confidences_have_two_names_and_their_help_is_generated():
    assert _options("predict")["min_confidence"].default == ROUTER_MIN_CONFIDENCE
    assert f"[{MIN_KEYWORD_SCORE:g}]" in _options("scrape")["min_confidence"].help


def test_one_default_model_width():
    from colorize.models.net.checkpoint import CONFIG_FALLBACKS
    from colorize.models.net.unet import ColorUNet
    from colorize.models.train.config import TRAIN_DEFAULTS

    assert inspect.signature(ColorUNet).parameters["width"].default == DEFAULT_WIDTH
    assert TRAIN_DEFAULTS["width"] == CONFIG_FALLBACKS["width"] == DEFAULT_WIDTH
    assert _options("train")["width"].default == DEFAULT_WIDTH
