"""The `s3` uploader: a folder to ``s3://bucket/prefix/`` with boto3 (AWS S3, MinIO, any S3-compatible store).

Credentials and endpoint come from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``) or AWS config
files, never from a recipe. Large files go up in parts (``multipart_threshold``); every file is retried with
exponential backoff, so a flaky network costs one file, not the whole folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from reasonkit.config import keyword_options
from reasonkit.errors import ReasonkitError
from reasonkit.secrets import scrub_text
from reasonkit.storage.retry import with_retries

MiB = 1024 * 1024
# S3 rejects parts under 5 MiB (except the last), and boto3 raises smaller chunk sizes to that anyway.
MIN_PART_SIZE = 5 * MiB
# Uploaded last, so that a reader of the bucket sees a checkpoint's completion marker only once all else is there.
LAST_FILES = ("complete.json",)
# S3 error codes that no retry can fix.
_PERMANENT_CODES = ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                    "InvalidBucketName", "AllAccessDisabled")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise ReasonkitError(f"S3 destination must look like s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ReasonkitError(f"S3 destination {url!r} has no bucket name")
    return bucket, prefix.strip("/")


class S3Uploader:
    """``upload(folder, dest)``: ``dest`` is ``s3://bucket/prefix``, or a sub-prefix under the configured
    ``bucket``/``prefix`` options (empty: the prefix itself)."""

    def __init__(
        self,
        *,
        bucket: str | None = None,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str | None = None,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 64 * MiB,
        max_concurrency: int = 4,
        attempts: int = 5,
        backoff_s: float = 1.0,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
    ):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.addressing_style = addressing_style
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = max(multipart_chunksize, MIN_PART_SIZE)
        self.max_concurrency = max_concurrency
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s

    def destination(self, dest: str) -> tuple[str, str]:
        if dest.startswith("s3://"):
            return parse_s3_url(dest)
        if not self.bucket:
            raise ReasonkitError(f"S3 upload to {dest!r}: give an s3://bucket/prefix destination or a bucket option")
        return self.bucket, "/".join(part for part in (self.prefix, dest.strip("/")) if part)

    def upload(self, folder: Path, dest: str = "") -> str:
        folder = Path(folder)
        if not folder.is_dir():
            raise ReasonkitError(f"S3 upload: {folder} is not a folder")
        bucket, prefix = self.destination(dest)
        client, transfer_config = self._client(), self._transfer_config()
        files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name in LAST_FILES, p))
        for path in files:
            key = "/".join(part for part in (prefix, path.relative_to(folder).as_posix()) if part)
            with_retries(
                lambda path=path, key=key: self._upload_file(client, transfer_config, path, bucket, key),
                attempts=self.attempts, backoff_s=self.backoff_s, what=f"S3 upload of {path} to s3://{bucket}/{key}",
            )
        return f"s3://{bucket}/{prefix}"

    def _upload_file(self, client, transfer_config, path: Path, bucket: str, key: str) -> None:
        from botocore.exceptions import NoCredentialsError

        try:
            client.upload_file(str(path), bucket, key, Config=transfer_config)
        except NoCredentialsError as exc:
            raise ReasonkitError("S3 upload: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                 "(or an AWS profile)") from exc
        except Exception as exc:
            if any(f"({code})" in str(exc) for code in _PERMANENT_CODES):
                raise ReasonkitError(f"S3 upload to s3://{bucket}/{key}: {scrub_text(str(exc))}") from exc
            raise

    def _client(self):
        import boto3
        from botocore.config import Config

        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        # Custom endpoints (MinIO, localhost) rarely resolve bucket sub-domains: path style there.
        style = self.addressing_style or ("path" if endpoint else "auto")
        config = Config(
            retries={"max_attempts": 1, "mode": "standard"},  # retried per file by us, with visible logging
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            s3={"addressing_style": style},
        )
        return boto3.session.Session().client("s3", endpoint_url=endpoint or None, region_name=self.region,
                                              config=config)

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=self.multipart_threshold,
                              multipart_chunksize=self.multipart_chunksize, max_concurrency=self.max_concurrency)


# What [[train.ckpt.upload]] options an `s3` entry takes (the constructor's keywords).
S3Options = keyword_options(S3Uploader)
