"""The server's lifecycle has one owner (the engine plugin): what runs in the background starts at
boot, and a reload (SIGHUP) reaches every part that holds settings."""

from __future__ import annotations

import signal
import time

import graphs
from fixtures import assert_error, split_image, start_server, stop_server


def wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def store(server) -> str:
    stored = server.post("/v1/images", data=split_image(), headers={"Content-Type": "image/png"})
    assert stored.status_code == 201, stored.text
    return stored.json()["image_id"]


def reload(server, config, text):
    config.write_text(text)
    marks = server.log().count('"reloaded"')
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: server.log().count('"reloaded"') > marks)


def test_expired_images_are_swept_from_boot_with_no_request_asking(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    server = start_server(tmp_path, models, labels, env={"PINPOINT_UPLOAD_RETENTION_S": "1"})
    try:
        image_id = store(server)
        assert (tmp_path / "uploads" / image_id).exists()
        wait_for(lambda: not (tmp_path / "uploads" / image_id).exists())
    finally:
        stop_server(server)


def test_after_a_reload_the_sweeper_follows_the_new_settings(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    config = tmp_path / "pinpoint.toml"
    config.write_text("upload_retention_s = 3600\n")
    server = start_server(tmp_path, models, labels, "--config", str(config))
    try:
        image_id = store(server)
        reload(server, config, "upload_retention_s = 1\n")
        wait_for(lambda: not (tmp_path / "uploads" / image_id).exists())  # the new store's retention
        assert "No thread running" not in server.log()
    finally:
        stop_server(server)


def test_a_reload_reaches_the_http_guard(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    config = tmp_path / "pinpoint.toml"
    config.write_text("max_body_bytes = 1000000\nrate_limit_per_s = 0\n")
    server = start_server(tmp_path, models, labels, "--config", str(config))
    body = split_image(size=(400, 400), fmt="BMP")  # ~480 kB
    try:
        assert server.post("/v1/classify?x=1&y=1", data=body, headers={"Content-Type": "image/bmp"}).status_code == 200
        reload(server, config, "max_body_bytes = 100000\nrate_limit_per_s = 0\n")
        refused = server.post("/v1/classify?x=1&y=1", data=body, headers={"Content-Type": "image/bmp"})
        assert_error(refused, 413, "payload_too_large")
        chunked = server.post("/v1/classify?x=1&y=1", data=iter([body]), headers={"Content-Type": "image/bmp"})
        assert_error(chunked, 413, "payload_too_large")  # the streaming limit follows too
    finally:
        stop_server(server)
