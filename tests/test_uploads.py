"""Uploaders against real servers on localhost.

S3: moto's threaded server is a real HTTP S3 endpoint; boto3 talks to it through AWS_ENDPOINT_URL exactly as it
would to AWS or MinIO. HF hub: no hub server runs offline, so a small HTTP server written here plays the three
hub endpoints an upload of small files touches (create repo, preupload, commit). huggingface_hub's real client
code builds and sends the requests; the test checks what arrives. Not covered: the LFS/Xet path the real hub
asks for with large files (this fake answers "regular" for every file).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reasonkit.errors import ReasonkitError
from reasonkit.storage.background import UploadQueue
from reasonkit.storage.s3 import MiB, S3Uploader, parse_s3_url

ACCESS_KEY = "AKIDREASONKITTEST01"
SECRET_KEY = "reasonkit-test-secret-key-do-not-leak"


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, s3_endpoint):
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def bucket(aws_env):
    import boto3

    name = f"rk-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def s3_objects(bucket: str, prefix: str = "") -> dict[str, dict]:
    """key → {size, etag, sha256} of what the server actually stores."""
    import boto3

    client = boto3.client("s3")
    out = {}
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        out[obj["Key"]] = {"size": obj["Size"], "etag": obj["ETag"].strip('"'),
                           "sha256": hashlib.sha256(body).hexdigest()}
    return out


def make_folder(root: Path, big_bytes: int = 0) -> dict[str, bytes]:
    files = {"config.json": b'{"a": 1}', "sub/dir/optim.bin": os.urandom(3000), "complete.json": b'{"step": 1}'}
    if big_bytes:
        files["model.safetensors"] = os.urandom(big_bytes)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_parse_s3_url():
    assert parse_s3_url("s3://bkt/a/b/") == ("bkt", "a/b")
    assert parse_s3_url("s3://bkt") == ("bkt", "")
    with pytest.raises(ReasonkitError):
        parse_s3_url("bkt/a")


def test_s3_upload_folder_with_forced_multipart(tmp_path, bucket):
    files = make_folder(tmp_path / "step_000010", big_bytes=6 * MiB + 123)
    # Threshold 1 MiB forces multipart for the 6 MiB file; parts are 5 MiB (S3's minimum) → 2 parts.
    uploader = S3Uploader(multipart_threshold=1 * MiB, multipart_chunksize=5 * MiB)
    url = uploader.upload(tmp_path / "step_000010", f"s3://{bucket}/runs/exp1/step_000010")

    assert url == f"s3://{bucket}/runs/exp1/step_000010"
    stored = s3_objects(bucket)
    assert set(stored) == {f"runs/exp1/step_000010/{rel}" for rel in files}
    for rel, data in files.items():
        obj = stored[f"runs/exp1/step_000010/{rel}"]
        assert obj["size"] == len(data)
        assert obj["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["runs/exp1/step_000010/model.safetensors"]["etag"].endswith("-2")  # multipart, 2 parts
    assert "-" not in stored["runs/exp1/step_000010/config.json"]["etag"]  # single PUT


def test_s3_destination_from_bucket_and_prefix_options(tmp_path, bucket):
    make_folder(tmp_path / "export")
    uploader = S3Uploader(bucket=bucket, prefix="/team/run7/")
    assert uploader.upload(tmp_path / "export", "final") == f"s3://{bucket}/team/run7/final"
    assert "team/run7/final/sub/dir/optim.bin" in s3_objects(bucket)
    with pytest.raises(ReasonkitError, match="bucket"):
        S3Uploader().upload(tmp_path / "export", "final")


def test_s3_missing_bucket_is_a_clear_error_without_retries(tmp_path, aws_env, caplog):
    make_folder(tmp_path / "f")
    with pytest.raises(ReasonkitError, match="NoSuchBucket"):
        S3Uploader(attempts=5, backoff_s=30).upload(tmp_path / "f", "s3://no-such-bucket-rk/x")  # 30 s if retried
    assert "retrying" not in caplog.text


def test_upload_queue_uploads_in_background(tmp_path, bucket):
    for name in ("step_000001", "step_000002"):
        make_folder(tmp_path / name)
    queue = UploadQueue(S3Uploader(bucket=bucket), name="s3")
    futures = [queue.submit(tmp_path / name, name) for name in ("step_000001", "step_000002")]
    assert queue.close() == []
    assert [f.result() for f in futures] == queue.results == [f"s3://{bucket}/step_000001",
                                                              f"s3://{bucket}/step_000002"]
    assert queue.in_use() == []
    assert len(s3_objects(bucket)) == 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_is_retried_then_reported_never_raised(tmp_path, aws_env, caplog):
    make_folder(tmp_path / "step_000005")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    uploader = S3Uploader(endpoint_url=dead, attempts=2, backoff_s=0.01, connect_timeout_s=1)
    queue = UploadQueue(uploader, name="s3", attempts=2, backoff_s=0.01)
    with caplog.at_level(logging.WARNING, logger="reasonkit.storage"):
        future = queue.submit(tmp_path / "step_000005", "s3://bkt/run/step_000005")  # the training-side call
        failures = queue.close()
    assert future.result() is None
    assert len(failures) == 1
    failure = failures[0]
    assert failure.folder == tmp_path / "step_000005" and failure.dest == "s3://bkt/run/step_000005"
    assert "Could not connect" in failure.error or "Connect" in failure.error
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 3  # the uploader's own retry in each of the 2 queue attempts, and the queue's retry
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("failed after retries" in r.getMessage() and "step_000005" in r.getMessage() for r in errors)
    assert SECRET_KEY not in caplog.text and ACCESS_KEY not in caplog.text


def test_uploaders_are_plugins(fresh_plugins):
    from reasonkit.storage import make_uploader
    from reasonkit.storage.hf import HFUploader

    assert isinstance(make_uploader("s3", bucket="b", prefix="p"), S3Uploader)
    assert isinstance(make_uploader("hf", repo_id="me/model"), HFUploader)
    assert {"hf", "s3"} <= set(fresh_plugins.get_plugins().names("uploaders"))
    assert fresh_plugins.get_uploader_factory("s3") is S3Uploader


def test_cosmos_rl_upload_keys_are_hf_and_s3_entries(fresh_plugins, tmp_path):
    from reasonkit.errors import ConfigError
    from reasonkit.storage.hf import HFUploader
    from reasonkit.train.recipe import load_recipe
    from reasonkit.train.uploads import upload_targets

    path = tmp_path / "r.toml"
    path.write_text('[train]\noutput_dir = "%s"\n[train.train_policy]\ntype = "sft"\ndataset.name = "x"\n'
                    '[train.ckpt]\nupload_hf = true\nhf_repo_name = "me/m"\nupload_s3 = "all"\ns3_bucket = "b"\n'
                    's3_prefix = "team/run1"\n' % (tmp_path / "out"))
    legacy = [(t.name, t.when, t.final_dest, t.options) for t in upload_targets(load_recipe(path))]
    assert [(name, when, dest, options["repo_id" if name == "hf" else "bucket"]) for name, when, dest, options
            in legacy] == [("hf", "final", "", "me/m"), ("s3", "all", "final", "b")]  # what the run used to do
    table = load_recipe(path, ["train.ckpt.upload_hf=false", "train.ckpt.upload_s3=false", "train.ckpt.upload="
                               "[{name: hf, options: {repo_id: me/m}}, {name: s3, when: all, options: {bucket: b, "
                               "prefix: team/run1}}]"])
    assert [(t.name, t.when, t.final_dest, t.options) for t in upload_targets(table)] == legacy
    assert [type(t.build()) for t in upload_targets(table)] == [HFUploader, S3Uploader]
    with pytest.raises(ConfigError, match=r"key 'train.ckpt.upload.0.options.repo_type': Input should be 'model', "
                                          r"'dataset' or 'space' \(got 'modle'\)$"):
        load_recipe(path, ["train.ckpt.upload=[{name: hf, options: {repo_type: modle}}]"])
    with pytest.raises(ConfigError, match=r"train.ckpt.upload.0.when: uploader 'hf' takes the final export only"):
        load_recipe(path, ["train.ckpt.upload=[{name: hf, when: all}]"])


# -- HF hub -------------------------------------------------------------------------------------------------


class FakeHub(BaseHTTPRequestHandler):
    """Answers create-repo / preupload / commit like the hub does for small files, and records every request."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        endpoint = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            payload = json.loads(body)
            reply = {"url": f"{endpoint}/{payload['organization']}/{payload['name']}"}
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            reply = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        elif "/commit/" in self.path:
            repo = self.path.split("/api/models/")[1].split("/commit/")[0]
            reply = {"commitUrl": f"{endpoint}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40}
        else:
            self.send_error(404)
            return
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub.constants

    FakeHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # conftest sets HF_HUB_OFFLINE=1 for the suite (read once at import); this test talks to localhost only.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield FakeHub.requests
    server.shutdown()
    server.server_close()


def test_hf_upload_creates_private_repo_and_commits_files(tmp_path, fake_hub, monkeypatch):
    from reasonkit.storage.hf import HFUploader

    token = "hf_reasonkitFakeTokenForTests0123456789"
    monkeypatch.setenv("HF_TOKEN", token)
    files = make_folder(tmp_path / "export")
    url = HFUploader(private=True).upload(tmp_path / "export", "acme/tiny-reasoner")

    assert url == f"{os.environ['HF_ENDPOINT']}/acme/tiny-reasoner"
    assert [r["path"].split("?")[0] for r in fake_hub] == [
        "/api/repos/create", "/api/models/acme/tiny-reasoner/preupload/main",
        "/api/models/acme/tiny-reasoner/commit/main"]
    assert all(r["auth"] == f"Bearer {token}" for r in fake_hub)
    create = json.loads(fake_hub[0]["body"])
    assert create["name"] == "tiny-reasoner" and create["organization"] == "acme"
    assert create["visibility"] == "private"
    lines = [json.loads(line) for line in fake_hub[2]["body"].splitlines()]
    assert lines[0]["key"] == "header"
    committed = {v["value"]["path"]: base64.b64decode(v["value"]["content"]) for v in lines if v["key"] == "file"}
    assert committed == files


def test_hf_upload_needs_hf_token_and_network(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from reasonkit.storage.hf import HFUploader

    make_folder(tmp_path / "export")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ReasonkitError, match="HF_TOKEN"):
        HFUploader().upload(tmp_path / "export", "acme/m")
    monkeypatch.setenv("HF_TOKEN", "hf_reasonkitFakeTokenForTests0123456789")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ReasonkitError, match="HF_HUB_OFFLINE"):
        HFUploader().upload(tmp_path / "export", "acme/m")
    with pytest.raises(ReasonkitError, match="repo id"):
        HFUploader().upload(tmp_path / "export", "a/b/c")
