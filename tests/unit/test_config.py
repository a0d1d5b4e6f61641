"""Config rules: keyword > LEAKWATCH_* > default; bad keywords raise, bad env values warn."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from leakwatch.config import OPTIONS, Config
from leakwatch.errors import ConfigError


def test_defaults_match_the_option_table():
    config = Config.from_options(env={})
    for opt in OPTIONS:
        assert getattr(config, opt.name) == opt.default, opt.name
        if opt.intervals is not None:
            assert opt.default == opt.intervals * config.interval, opt.name


def test_keyword_beats_env_beats_default():
    env = {"LEAKWATCH_INTERVAL": "2", "LEAKWATCH_WARMUP": "7"}
    config = Config.from_options(env=env, interval=0.5)
    assert config.interval == 0.5
    assert config.warmup == 7.0
    assert config.window == 24.0  # 48 intervals


def test_env_understands_units_and_booleans():
    env = {
        "LEAKWATCH_INTERVAL": "500ms",
        "LEAKWATCH_WINDOW": "5m",
        "LEAKWATCH_TRACE_MAX_MEMORY": "8MiB",
        "LEAKWATCH_USS": "yes",
        "LEAKWATCH_CENSUS": "off",
        "LEAKWATCH_TRACEMALLOC": "OFF",
    }
    config = Config.from_options(env=env)
    assert (config.interval, config.window, config.trace_max_memory) == (0.5, 300.0, 8 * 1024**2)
    assert (config.uss, config.census, config.tracemalloc) == (True, False, "off")


def test_sub_second_interval_works():
    config = Config.from_options(env={}, interval=0.1, window=2, trace_window=1)
    assert config.interval == 0.1


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("interval", 0, "from 0.01 to 60"),
        ("interval", 61, "from 0.01 to 60"),
        ("interval", "5", "a number"),
        ("tracemalloc", "sometimes", "'off', 'auto', 'always'"),
        ("trace_frames", 1.5, "an integer"),
        ("census", 1, "true or false"),
        ("max_series", float("nan"), "an integer"),
        ("port", 65536, "from 0 to 65535"),
        ("port", "10464", "an integer"),
        ("host", "", "a non-empty string without spaces"),
        ("max_suspect_series", 0, "from 1 to 10000"),
        ("cpu_budget", 2, "from 0.0001 to 1"),
    ],
)
def test_bad_keyword_raises_naming_option_value_and_what_is_allowed(option, value, allowed):
    with pytest.raises(ConfigError) as info:
        Config.from_options(env={}, **{option: value})
    message = str(info.value)
    assert repr(option) in message
    assert allowed in message
    assert info.value.option == option


def test_unknown_keyword_lists_the_options():
    with pytest.raises(ConfigError, match="interval") as info:
        Config.from_options(env={}, intervall=5)
    assert "intervall" in str(info.value)


def test_window_shorter_than_five_intervals_is_refused_for_keywords():
    with pytest.raises(ConfigError, match="at least 5 times interval"):
        Config.from_options(env={}, interval=10, window=20)


def test_time_options_not_given_follow_the_interval():
    config = Config.from_options(env={}, interval=0.1)
    assert (config.warmup, config.window, config.trace_window) == (0.6, 4.8, 1.2)
    config = Config.from_options(env={"LEAKWATCH_INTERVAL": "60"}, window=600)
    assert (config.warmup, config.window, config.trace_window) == (360.0, 600.0, 720.0)


def test_bad_env_value_warns_and_falls_back(caplog):
    with caplog.at_level(logging.WARNING, logger="leakwatch.config"):
        config = Config.from_options(env={"LEAKWATCH_INTERVAL": "fast", "LEAKWATCH_USS": "maybe"})
    assert config.interval == 5.0
    assert config.uss is False
    text = caplog.text
    assert "LEAKWATCH_INTERVAL='fast'" in text and "from 0.01 to 60" in text
    assert "LEAKWATCH_USS='maybe'" in text


def test_server_options_from_env_and_their_bad_values(caplog):
    config = Config.from_options(env={"LEAKWATCH_PORT": "10464", "LEAKWATCH_HOST": "0.0.0.0", "LEAKWATCH_MEMORY_LIMIT": "2GiB"})
    assert (config.port, config.host, config.memory_limit) == (10464, "0.0.0.0", 2 * 1024**3)
    assert Config.from_options(env={}).port is None  # no server unless asked
    with caplog.at_level(logging.WARNING, logger="leakwatch.config"):
        config = Config.from_options(env={"LEAKWATCH_PORT": "http", "LEAKWATCH_HOST": "0.0.0.0 ::"})
    assert (config.port, config.host) == (None, "127.0.0.1")
    assert "LEAKWATCH_PORT='http'" in caplog.text and "LEAKWATCH_HOST='0.0.0.0 ::'" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leakwatch.config"):
        config = Config.from_options(env={"LEAKWATCH_PORT": "", "LEAKWATCH_HOST": " "})
    assert (config.port, config.host) == (None, "127.0.0.1")
    assert caplog.text == ""  # empty variables from a template count as unset


def test_host_keyword_is_trimmed_and_checked():
    assert Config.from_options(env={}, host=" ::1 ").host == "::1"
    for bad in ("", "0.0.0.0\x00", "local host"):
        with pytest.raises(ConfigError, match="non-empty string without spaces"):
            Config.from_options(env={}, host=bad)


def test_env_window_too_short_for_interval_warns_and_widens(caplog):
    with caplog.at_level(logging.WARNING, logger="leakwatch.config"):
        config = Config.from_options(env={"LEAKWATCH_INTERVAL": "10", "LEAKWATCH_WINDOW": "20"})
    assert config.window == 50.0
    assert "LEAKWATCH_WINDOW" in caplog.text


def test_unknown_env_variable_is_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="leakwatch.config"):
        Config.from_options(env={"LEAKWATCH_INTERVL": "5"})
    assert "LEAKWATCH_INTERVL" in caplog.text


def test_config_is_frozen():
    config = Config.from_options(env={})
    with pytest.raises(AttributeError):
        config.interval = 1  # type: ignore[misc]


def test_config_is_validated_however_it_is_built():
    with pytest.raises(ConfigError, match="interval"):
        Config(interval=-1)
    with pytest.raises(ConfigError, match="window"):
        Config(interval=1.0, window=2.0)  # less than 5 intervals
    with pytest.raises(ConfigError, match="tracemalloc"):
        Config(tracemalloc="sometimes")
    assert Config(interval=2).interval == 2.0 and isinstance(Config(interval=2).interval, float)
    assert dataclasses.replace(Config(), top_k=3).top_k == 3
    with pytest.raises(ConfigError, match="top_k"):
        dataclasses.replace(Config(), top_k=-3)


def test_config_fields_are_the_options_and_their_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(Config) if f.name != "explicit"}
    assert fields == {o.name: o.default for o in OPTIONS}


def test_a_watcher_given_a_config_and_keywords_keeps_both():
    from leakwatch.watcher import Watcher

    direct = dataclasses.replace(Config(interval=2.0), top_k=3)
    merged = Watcher(direct, log_suspects=False).config
    assert (merged.interval, merged.top_k, merged.log_suspects) == (2.0, 3, False)
    assert merged.window == 48 * 2.0, "a time option not set follows the interval, as from_options has it"
    built = Config.from_options(env={}, interval=0.5)
    merged = Watcher(built, top_k=4).config
    assert (merged.interval, merged.window, merged.top_k) == (0.5, 24.0, 4)
    assert merged.explicit == {"interval", "top_k"}
