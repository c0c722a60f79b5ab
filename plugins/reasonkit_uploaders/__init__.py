"""Built-in uploaders (registered through the public `reasonkit` entry-point group): `hf` and `s3`."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_uploaders(register):
    register("hf", "reasonkit.storage.hf:HFUploader",
             description="Hugging Face Hub repo (create_repo + upload_folder); token from HF_TOKEN")
    register("s3", "reasonkit.storage.s3:S3Uploader",
             description="S3 or S3-compatible store (boto3, multipart, retries); AWS_* environment")
