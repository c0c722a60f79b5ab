"""Built-in uploaders (registered through the public `reasonkit` entry-point group): `hf` and `s3`."""

from reasonkit.hookspecs import hookimpl


@hookimpl
def reasonkit_register_uploaders(register):
    # A hub repo holds one model: the final export goes to the repo itself (dest "" = the repo_id option), and
    # there is no folder in it for checkpoints (an hf dest is a repo id).
    register("hf", "reasonkit.storage.hf:HFUploader", options="reasonkit.storage.hf:HFOptions", final_dest="",
             checkpoints=False, description="Hugging Face Hub repo (create_repo + upload_folder); token from HF_TOKEN")
    register("s3", "reasonkit.storage.s3:S3Uploader", options="reasonkit.storage.s3:S3Options",
             description="S3 or S3-compatible store (boto3, multipart, retries); AWS_* environment")
