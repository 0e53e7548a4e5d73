"""Settings: declared defaults < TOML file < PINPOINT_* environment < command-line flags, strictly checked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import ConfigError, Settings, load_settings
from service.tools.defaults_file import render_defaults

DEFAULTS_FILE = Path(__file__).resolve().parents[1] / "service" / "defaults.toml"


def test_defaults_listen_on_loopback_8080():
    settings = load_settings(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.image_root is None and settings.models.name == "models" and settings.models.is_absolute()


def test_each_layer_overrides_the_one_below(tmp_path):
    config = tmp_path / "pinpoint.toml"
    config.write_text('port = 9000\nthreads = 4\nimage_root = "/srv/images"\n')
    settings = load_settings(config, environ={"PINPOINT_PORT": "9100", "PINPOINT_FORMATS": "jpeg,PNG"},
                             overrides={"port": 9200, "host": None})  # None: the flag was not given
    assert settings.port == 9200 and settings.threads == 4
    assert settings.image_root == Path("/srv/images") and settings.formats == ("JPEG", "PNG")
    assert load_settings(config, environ={"PINPOINT_PORT": "9100"}).port == 9100
    assert load_settings(config, environ={}).port == 9000


def test_a_mistyped_boolean_is_refused_with_its_name():
    with pytest.raises(ConfigError, match=r"^draft_decode: .*valid boolean; got 'treu' from PINPOINT_DRAFT_DECODE"):
        load_settings(environ={"PINPOINT_DRAFT_DECODE": "treu"})
    assert load_settings(environ={"PINPOINT_DRAFT_DECODE": "false"}).draft_decode is False


def test_a_fractional_port_is_refused_not_truncated():
    with pytest.raises(ConfigError, match=r"^port: .*valid integer; got '8080.9' from PINPOINT_PORT"):
        load_settings(environ={"PINPOINT_PORT": "8080.9"})


def test_a_port_beyond_65535_is_refused():
    with pytest.raises(ConfigError, match=r"^port: .*65535; got 80800 from --port"):
        load_settings(environ={}, overrides={"port": 80800})


def test_flags_arrive_as_text_and_are_parsed_as_the_environment_is():
    settings = load_settings(environ={}, overrides={"port": "9000", "image_root": "/srv/images"})
    assert settings.port == 9000 and settings.image_root == Path("/srv/images")
    with pytest.raises(ConfigError, match=r"^port: .*valid integer; got '8080.9' from --port"):
        load_settings(environ={}, overrides={"port": "8080.9"})


def test_an_unknown_key_in_the_file_is_refused_with_a_suggestion(tmp_path):
    config = tmp_path / "pinpoint.toml"
    config.write_text("prot = 9000\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'prot' \(did you mean 'port'\?\)") as refused:
        load_settings(config, environ={})
    assert str(config) in str(refused.value)


def test_an_unknown_pinpoint_variable_is_refused():
    with pytest.raises(ConfigError, match=r"^PINPOINT_MAX_BACH: unknown setting 'max_bach'"):
        load_settings(environ={"PINPOINT_MAX_BACH": "1"})


def test_a_toml_file_must_give_each_setting_its_type(tmp_path):
    config = tmp_path / "pinpoint.toml"
    config.write_text('port = "9000"\n')  # a string: environment variables are parsed, a file's values are not
    with pytest.raises(ConfigError, match=rf"^port: .*valid integer; got '9000' from {config}"):
        load_settings(config, environ={})
    config.write_text("draft_decode = 1\n")
    with pytest.raises(ConfigError, match="^draft_decode: "):
        load_settings(config, environ={})
    config.write_text('port = 9000\ntrusted_proxies = ["10.0.0.0/8"]\n[rate_limit_keys]\nproduct = [500, 1000]\n')
    settings = load_settings(config, environ={})
    assert settings.port == 9000 and settings.trusted_proxies == ("10.0.0.0/8",)
    assert settings.rate_limit_keys == {"product": (500.0, 1000)}


def test_tables_come_from_the_environment_as_json():
    digest = hashlib.sha256(b"secret").hexdigest()
    settings = load_settings(environ={"PINPOINT_API_KEYS": f'{{"product": "{digest.upper()}"}}',
                                      "PINPOINT_RATE_LIMIT_KEYS": '{"product": [500, 1000]}',
                                      "PINPOINT_TRUSTED_PROXIES": '["10.0.0.0/8", "127.0.0.1"]'})
    assert settings.api_keys == {"product": digest}
    assert settings.rate_limit_keys == {"product": (500.0, 1000)}
    assert settings.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    with pytest.raises(ConfigError, match="^api_keys: PINPOINT_API_KEYS must be a JSON object"):
        load_settings(environ={"PINPOINT_API_KEYS": "product=abc"})
    with pytest.raises(ConfigError, match="^api_keys.product: must be a SHA-256 hex digest"):
        load_settings(environ={"PINPOINT_API_KEYS": '{"product": "secret"}'})


def test_an_empty_variable_clears_a_path_and_is_refused_for_a_number(tmp_path):
    config = tmp_path / "pinpoint.toml"
    config.write_text('image_root = "/srv/images"\n')
    assert load_settings(config, environ={"PINPOINT_IMAGE_ROOT": ""}).image_root is None
    with pytest.raises(ConfigError, match="^port: "):
        load_settings(environ={"PINPOINT_PORT": ""})


@pytest.mark.parametrize("content, environ, name", [
    ("port = 'eighty'\n", {}, "port"),
    ("", {"PINPOINT_PORT": "eighty"}, "port"),
    ("", {"PINPOINT_MAX_BATCH": "0"}, "max_batch"),
    ("", {"PINPOINT_DEADLINE_MS": "nan"}, "deadline_ms"),
    ("log_format = 'xml'\n", {}, "log_format"),
    ("log_level = 'loud'\n", {}, "log_level"),
    ("rate_limit_backend = 'memcached://x'\n", {}, "rate_limit_backend"),
    ("trusted_proxies = ['10.0.0.0/33']\n", {}, "trusted_proxies"),
    ("[rate_limit_keys]\nproduct = [500]\n", {}, "rate_limit_keys.product"),
])
def test_mistakes_are_reported_by_name(tmp_path, content, environ, name):
    config = tmp_path / "pinpoint.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=rf"^{name}[.:]"):
        load_settings(config, environ=environ)


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the settings file .*nope.toml"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        load_settings(broken, environ={})


def test_settings_cannot_be_changed_after_loading():
    settings = load_settings(environ={})
    with pytest.raises(ValidationError, match="Instance is frozen"):
        settings.port = 1
    assert settings.model_copy(update={"max_batch": 1}).max_batch == 1  # a variant is a copy


def test_the_defaults_file_users_copy_is_the_declaration():
    """service/defaults.toml documents every setting; it is generated from the one declaration
    (`python -m service.tools.defaults_file > service/defaults.toml`) and loads to exactly the defaults."""
    assert DEFAULTS_FILE.read_text() == render_defaults(), \
        "run: python -m service.tools.defaults_file > service/defaults.toml"
    # It loads to exactly the defaults, its relative paths read against the file's own directory.
    from service.config import PATH_SETTINGS

    copied, defaults = load_settings(DEFAULTS_FILE, environ={}), load_settings(environ={})
    assert copied.model_copy(update={name: None for name in PATH_SETTINGS}) == \
        defaults.model_copy(update={name: None for name in PATH_SETTINGS})
    assert copied.models == DEFAULTS_FILE.parent / "models" and defaults.models == defaults.home / "models"
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} needs its one-line doc"
