"""Get upstream data into the layout reasonkit's benchmarks read (upstream's Cosmos-Reason1 layout).

    reasonkit data download --task benchmark --target DATA   # DATA/benchmark/<ds>/{<ds>_benchmark_qa_pairs.json,
                                                             #   clips/<id>.mp4}  (av, robovqa, robofail clips)
    reasonkit data prepare agibot --raw-dir RAW --data-dir DATA  # rebuild agibot/bridgev2/holoassist clips
    reasonkit data verify DATA                                # every annotated clip present and decodable

``download`` (download.py, extract.py, manifest.py) mirrors the hub repo into ``<target>/<task>/`` and extracts
archives beside themselves; ``prepare`` (prepare.py, clip_ids.py, tfrecord.py, encode.py) writes clips next
to the annotation that names them; ``verify`` (verify.py) checks the result. Heavy imports (PyAV,
huggingface_hub) happen inside the functions that use them.
"""

from reasonkit.errors import DataError


class IncompleteData(DataError):
    """Some clips are missing or unusable although the command itself worked: exit code 1, not 2."""

    exit_code = 1
