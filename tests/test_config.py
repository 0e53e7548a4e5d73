"""Settings: shipped defaults < TOML file < PINPOINT_* environment < command-line flags."""

from __future__ import annotations

import pytest

from service.config import ConfigError, load_settings


def test_defaults_listen_on_loopback_8080():
    settings = load_settings(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.image_root is None and settings.models.name == "models"


def test_each_layer_overrides_the_one_below(tmp_path):
    config = tmp_path / "pinpoint.toml"
    config.write_text('port = 9000\nthreads = 4\nimage_root = "/srv/images"\n')
    settings = load_settings(config, environ={"PINPOINT_PORT": "9100", "PINPOINT_FORMATS": "JPEG,PNG"},
                             overrides={"port": 9200, "host": None})
    assert settings.port == 9200 and settings.threads == 4
    assert str(settings.image_root) == "/srv/images" and settings.formats == ("JPEG", "PNG")
    assert load_settings(config, environ={"PINPOINT_PORT": "9100"}).port == 9100


@pytest.mark.parametrize("content, environ", [
    ("prot = 1\n", {}),
    ("port = 'eighty'\n", {}),
    ("", {"PINPOINT_PORT": "eighty"}),
    ("", {"PINPOINT_MAX_BATCH": "0"}),
    ("log_format = 'xml'\n", {}),
])
def test_mistakes_are_reported_by_name(tmp_path, content, environ):
    config = tmp_path / "pinpoint.toml"
    config.write_text(content)
    with pytest.raises(ConfigError):
        load_settings(config, environ=environ)
