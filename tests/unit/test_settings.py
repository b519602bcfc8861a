"""`flexilib.settings.resolve`: flags over variables, bounds, types, derived defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flexilib.settings import OPTIONS, Limits, Settings, SettingsError, resolve


def test_nothing_given_is_the_documented_defaults():
    settings = resolve({}, {})
    assert settings.port == 8069 and settings.address == "0.0.0.0"
    assert settings.config == Path("proxy.ini")
    assert settings.threads == (os.cpu_count() or 1)
    assert settings.max_threads == max(settings.threads, 64)
    assert settings.worker_timeout == 30.0 and settings.grace_period == 30.0
    assert settings.limits == Limits()


def test_flags_win_over_variables_and_variables_over_defaults():
    environ = {"PORT": "1000", "SERVER_ADDRESS": "::1", "SERVER_WORKERS": "3"}
    settings = resolve({"port": 2000, "address": None, "workers": ""}, environ)
    assert settings.port == 2000  # the flag
    assert settings.address == "::1"  # not given as a flag: the variable
    assert settings.workers == 3  # an empty flag counts as not given


def test_a_blank_variable_is_not_set():
    assert resolve({}, {"PORT": "  ", "SERVER_THREAD_COUNT": ""}) == resolve({}, {})


def test_limits_come_from_their_variables_and_flags():
    settings = resolve(
        {"body_timeout": 2.5},
        {
            "SERVER_MAX_HEADER_BYTES": "4096",
            "SERVER_MAX_BODY_BYTES": "0",
            "SERVER_HEADER_TIMEOUT": "0.5",
            "SERVER_KEEPALIVE_TIMEOUT": "60",
            "SERVER_MAX_CONNECTIONS": "7",
            "SERVER_BODY_TIMEOUT": "99",
        },
    )
    assert settings.limits == Limits(
        max_header_bytes=4096,
        max_body_bytes=0,
        header_timeout=0.5,
        body_timeout=2.5,
        keepalive_timeout=60.0,
        max_connections=7,
    )


@pytest.mark.parametrize(
    "flags, environ, message",
    [
        ({}, {"PORT": "eighty"}, "PORT='eighty' is not a valid int"),
        ({"port": "eighty"}, {}, "--port='eighty' is not a valid int"),
        ({}, {"PORT": "70000"}, "PORT='70000' is out of range (0..65535)"),
        ({"threads": 0}, {}, "--threads='0' is out of range (1..1024)"),
        (
            {},
            {"SERVER_MAX_HEADER_BYTES": "100"},
            "SERVER_MAX_HEADER_BYTES='100' is out of range (>= 256)",
        ),
        ({"header_timeout": "soon"}, {}, "--header-timeout='soon' is not a valid float"),
        ({}, {"SERVER_WORKER_TIMEOUT": "-1"}, "SERVER_WORKER_TIMEOUT='-1' is out of range (>= 0)"),
        ({}, {"SERVER_WORKERS": "1.5"}, "SERVER_WORKERS='1.5' is not a valid int"),
        ({}, {"SERVER_ADDRESS": "localhost"}, "'localhost' is not an IPv4 or IPv6 address"),
    ],
)
def test_bad_values_name_the_flag_or_variable(flags, environ, message):
    with pytest.raises(SettingsError) as caught:
        resolve(flags, environ)
    assert message in str(caught.value)


@pytest.mark.parametrize("threads, expected", [(2, 64), (64, 64), (100, 100)])
def test_max_threads_defaults_to_at_least_the_thread_count(threads, expected):
    assert resolve({"threads": threads}, {}).max_threads == expected


@pytest.mark.parametrize(
    "flags, environ, message",
    [
        (
            {},
            {"SERVER_THREAD_COUNT": "8", "SERVER_MAX_THREADS": "4"},
            "SERVER_MAX_THREADS (4) is below SERVER_THREAD_COUNT (8)",
        ),
        ({"threads": 8, "max_threads": 4}, {}, "--max-threads (4) is below --threads (8)"),
        (
            {"max_threads": 4},
            {"SERVER_THREAD_COUNT": "8"},
            "--max-threads (4) is below SERVER_THREAD_COUNT",
        ),
    ],
)
def test_max_threads_below_threads_is_an_error_naming_what_set_them(flags, environ, message):
    with pytest.raises(SettingsError) as caught:
        resolve(flags, environ)
    assert message in str(caught.value)


def test_max_threads_equal_to_threads_is_a_fixed_pool():
    settings = resolve({"threads": 4, "max_threads": 4}, {})
    assert (settings.threads, settings.max_threads) == (4, 4)


def test_worker_timeout_zero_turns_the_check_off():
    assert resolve({"worker_timeout": "0"}, {}).worker_timeout == 0.0
    assert resolve({}, {"SERVER_WORKER_TIMEOUT": "2.5"}).worker_timeout == 2.5


def test_every_option_names_a_settings_or_limits_field():
    names = set(Settings.__dataclass_fields__) | set(Limits.__dataclass_fields__)
    assert {option.name for option in OPTIONS} <= names
    flags = [option.flag for option in OPTIONS]
    assert len(flags) == len(set(flags))
