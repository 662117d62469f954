from __future__ import annotations

from pathlib import Path

import pytest

from lagless import ConfigError, load_config


def test_defaults() -> None:
    cfg = load_config(pyproject=False, env={})
    assert cfg.server_timing is True
    assert cfg.record_params is False
    assert cfg.integrations is None
    assert cfg.sources["server_timing"] == "default"


def test_precedence_kwargs_over_env_over_pyproject(tmp_path: Path) -> None:
    py = tmp_path / "pyproject.toml"
    py.write_text("[tool.lagless]\nslow-request-ms = 50\nring_size = 7\nrecord_params = true\n")
    env = {"LAGLESS_RING_SIZE": "9", "LAGLESS_SERVER_TIMING": "off"}
    cfg = load_config(pyproject=py, env=env, record_params=False)
    assert cfg.slow_request_ms == 50.0
    assert cfg.ring_size == 9
    assert cfg.server_timing is False
    assert cfg.record_params is False
    assert cfg.sources["ring_size"] == "environment variable LAGLESS_RING_SIZE"
    assert cfg.sources["slow_request_ms"] == str(py)


def test_lists_from_env() -> None:
    cfg = load_config(pyproject=False, env={"LAGLESS_INTEGRATIONS": "sqlite3, httpx"})
    assert cfg.integrations == ("sqlite3", "httpx")
    assert load_config(pyproject=False, env={"LAGLESS_INTEGRATIONS": "auto"}).integrations is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LAGLESS_RING_SIZE": "lots"},
            "'ring_size' (from environment variable LAGLESS_RING_SIZE)",
        ),
        ({"LAGLESS_SERVER_TIMING": "maybe"}, "expected a boolean"),
        ({"LAGLESS_SLOW_REQUEST_MS": "-1"}, "expected a number >= 0"),
        ({"LAGLESS_RING_SIZ": "3"}, "did you mean 'ring_size'"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(pyproject=False, env=env)
    assert message in str(info.value)


def test_bad_pyproject(tmp_path: Path) -> None:
    py = tmp_path / "pyproject.toml"
    py.write_text("[tool.lagless]\nmax_spans = 0\n")
    with pytest.raises(ConfigError, match=r"max_spans.*>= 1"):
        load_config(pyproject=py, env={})
    py.write_text("[tool.lagless\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(pyproject=py, env={})


def test_test_and_ci_variables_are_not_settings() -> None:
    env = {
        "LAGLESS_REQUIRE_SERVICES": "1",
        "LAGLESS_PG_DSN": "postgresql://postgres@127.0.0.1:5432/test",
        "LAGLESS_REDIS_URL": "redis://127.0.0.1:6379/0",
        "LAGLESS_MYSQL_DSN": "mysql://root@127.0.0.1/test",
    }
    assert (
        load_config(pyproject=False, env=env).sources
        == load_config(pyproject=False, env={}).sources
    )


def test_unknown_variable_is_an_error_that_says_where_to_look() -> None:
    # An error, not a warning: a misspelt setting must never pass silently.
    with pytest.raises(ConfigError) as info:
        load_config(pyproject=False, env={"LAGLESS_ZZZ_QQQ": "1"})
    assert "'zzz_qqq' (from environment variable LAGLESS_ZZZ_QQQ)" in str(info.value)
    assert "lagless config" in str(info.value)


def test_config_command_lists_the_settings_when_one_is_unknown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error says "`lagless config` lists them"; `lagless config` itself must then list
    them rather than stop on the same error."""
    from lagless.cli import main

    monkeypatch.setenv("LAGLESS_ZZZ_QQQ", "1")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "unknown lagless setting 'zzz_qqq'" in err
    assert "known settings: " in err and "slow_request_ms" in err
