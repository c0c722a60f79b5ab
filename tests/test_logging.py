"""Experiment loggers (console, jsonl, real wandb in offline mode) and secret redaction.

The wandb run is read back from its own offline ``.wandb`` file (the LevelDB-log framing of wandb's protobuf
records, which wandb-core writes and ``wandb sync`` reads), so the values asserted are what would be uploaded.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from reasonkit.errors import ConfigError
from reasonkit.secrets import MASK, is_secret_key, redact, scrub_text
from reasonkit.train.logging import JsonlLogger, make_loggers, resolve_wandb_mode, save_config

SECRETS = {
    "HF_TOKEN": "hf_SeCrEtTokenValueForReasonkitTests0042",
    "AWS_ACCESS_KEY_ID": "AKIAREASONKITTESTKEY",
    "AWS_SECRET_ACCESS_KEY": "aws/secret+Value/For/Reasonkit/Tests/0042",
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
}


@pytest.fixture
def secret_env(monkeypatch):
    for var, value in SECRETS.items():
        monkeypatch.setenv(var, value)
    return SECRETS


def test_secret_key_names():
    for key in ("hf_token", "HF_TOKEN", "aws_secret_access_key", "api_key", "apiKey", "wandb_key", "password",
                "db_passwd", "credentials", "access_key", "Authorization"):
        assert is_secret_key(key), key
    for key in ("max_tokens", "max_new_tokens", "tokenizer", "tokenizer_path", "key_frames", "keyword",
                "author", "secretary_count", "model_name_or_path", "num_tokens"):
        assert not is_secret_key(key), key


def test_redact_masks_secret_keys_and_live_secret_values(secret_env):
    config = {
        "train": {"optm_lr": 2e-6, "max_tokens": 1024, "hf_token": "anything", "password": None},
        "ckpt": {"upload_s3": True, "note": f"keys {secret_env['AWS_SECRET_ACCESS_KEY']} inside"},
        "urls": [f"https://user:{secret_env['HF_TOKEN']}@example.com/x", "plain"],
        "innocent": secret_env["AWS_ACCESS_KEY_ID"],
        "pasted": "hf_" + "x" * 34,  # an HF-token-shaped value that is not the current HF_TOKEN
        "pair": (1, secret_env["WANDB_API_KEY"]),
    }
    out = redact(config)
    assert out["train"] == {"optm_lr": 2e-6, "max_tokens": 1024, "hf_token": MASK, "password": None}
    assert out["ckpt"] == {"upload_s3": True, "note": f"keys {MASK} inside"}
    assert out["urls"] == [f"https://user:{MASK}@example.com/x", "plain"]
    assert out["innocent"] == MASK and out["pasted"] == MASK and out["pair"] == (1, MASK)
    assert config["train"]["hf_token"] == "anything"  # a copy: the caller's config is untouched
    assert all(v not in json.dumps(out) for v in secret_env.values())
    assert scrub_text(f"error talking with {secret_env['HF_TOKEN']}") == f"error talking with {MASK}"


def test_console_logger_prints_one_line_per_call(tmp_path, capsys):
    loggers = make_loggers(["console"], project="p", experiment="e", out_dir=tmp_path)
    loggers.log({"loss": 0.412345678, "lr": 2e-6, "tokens": 128}, step=10)
    loggers.close()
    assert capsys.readouterr().out == "step 10 | loss 0.4123 | lr 2e-06 | tokens 128\n"


def test_jsonl_logger_and_saved_config_are_redacted(tmp_path, secret_env):
    import torch

    config = {"policy": {"model_name_or_path": "tiny"}, "upload": {"hf_token": secret_env["HF_TOKEN"]},
              "env_copy": dict(secret_env)}
    loggers = make_loggers("jsonl", project="p", experiment="e", out_dir=tmp_path, config=config)
    loggers.log({"loss": torch.tensor(0.5), "acc": 0.25}, step=1)
    loggers.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 1 and records[0]["loss"] == 0.5 and records[0]["acc"] == 0.25
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["policy"] == {"model_name_or_path": "tiny"} and saved["upload"]["hf_token"] == MASK
    save_config(config, tmp_path / "recipe.json")
    for path in (tmp_path / "config.json", tmp_path / "recipe.json"):
        assert not any(v in path.read_text() for v in secret_env.values())


def test_unknown_logger_name_suggests(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'wandb'"):
        make_loggers(["wandbb"], project="p", experiment="e", out_dir=tmp_path)


def test_non_main_rank_logs_nothing(tmp_path):
    loggers = make_loggers(["jsonl"], project="p", experiment="e", out_dir=tmp_path / "out", is_main=False)
    loggers.log({"loss": 1.0}, step=1)
    loggers.close()
    assert not (tmp_path / "out").exists()


def test_wandb_stays_offline_unless_the_recipe_or_wandb_mode_says_online(tmp_path, monkeypatch):
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    monkeypatch.setenv("NETRC", str(netrc_file))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # credentials alone used to switch the run online
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert resolve_wandb_mode() == "offline"
    assert resolve_wandb_mode("online") == "online"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert resolve_wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")  # the user's explicit choice wins over the recipe
    assert resolve_wandb_mode("online") == "offline"


def test_online_wandb_without_a_reachable_server_falls_back_to_offline_with_one_warning(tmp_path, monkeypatch,
                                                                                         capsys):
    import socket
    import time

    with socket.socket() as probe:  # a port nothing listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    start = time.monotonic()
    with make_loggers(["wandb"], project="p", experiment="e", out_dir=tmp_path, wandb_mode="online") as loggers:
        loggers.log({"loss": 1.0}, step=1)
        assert loggers.loggers[0].run.settings.mode == "offline"
    assert time.monotonic() - start < 60
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "unreachable" in line]
    assert len(warnings) == 1 and "logging offline" in warnings[0] and "Traceback" not in err
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def test_jsonl_log_of_a_resumed_run_keeps_each_step_once(tmp_path):
    logger = JsonlLogger(out_dir=tmp_path)
    for step in (1, 2, 3, 4, 5):  # the run logged 5 steps, its newest checkpoint was step 3, then it crashed
        logger.log({"loss": float(step)}, step)
    logger.close()
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 6, "lo')  # torn by the crash
    logger = JsonlLogger(out_dir=tmp_path, resumed_step=3)
    for step in (4, 5, 6):
        logger.log({"loss": step + 0.5}, step)
    logger.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in records] == [1.0, 2.0, 3.0, 4.5, 5.5, 6.5]


def wandb_records(path: Path):
    """Protobuf records of an offline ``.wandb`` file (LevelDB log framing: 32 KiB blocks, 7-byte headers)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding up to the end of the block
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # FULL/FIRST start a record, MIDDLE/LAST extend
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def test_wandb_offline_run_records_metrics_and_redacted_config(tmp_path, secret_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = {"train": {"optm_lr": 2e-6, "epoch": 2}, "hf_token": secret_env["HF_TOKEN"],
              "s3": {"aws_secret_access_key": secret_env["AWS_SECRET_ACCESS_KEY"], "bucket": "b"},
              "innocent": secret_env["WANDB_API_KEY"]}
    loggers = make_loggers(["wandb", "jsonl"], project="reasonkit-test", experiment="sft-tiny", out_dir=tmp_path,
                           config=config)
    for step in (1, 2, 3):
        loggers.log({"loss": 1.0 / step, "reward/mean": step * 0.1}, step=step)
    loggers.close()

    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    history, logged_config = {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = _items(record.history.item)
            history[row["_step"]] = row
        elif kind == "config":
            logged_config.update(_items(record.config.update))
        elif kind == "run":
            assert record.run.display_name == "sft-tiny" and record.run.project == "reasonkit-test"
    assert sorted(history) == [1, 2, 3]
    for step in (1, 2, 3):
        assert history[step]["loss"] == pytest.approx(1.0 / step)
        assert history[step]["reward/mean"] == pytest.approx(step * 0.1)
    assert logged_config["train"] == {"optm_lr": 2e-6, "epoch": 2}
    assert logged_config["hf_token"] == MASK and logged_config["innocent"] == MASK
    assert logged_config["s3"] == {"aws_secret_access_key": MASK, "bucket": "b"}

    # No secret anywhere under the output folder: run files, logs, metadata, jsonl, saved config.
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        blob = path.read_bytes()
        for var, value in secret_env.items():
            assert value.encode() not in blob, f"{var} leaked into {path}"
