"""Video decoding and frame sampling shared by evaluation and training (so a model trains on what it is
evaluated on)."""

from reasonkit.media.decode import load_frames
from reasonkit.media.sampling import frame_indices, frame_size, num_frames

__all__ = ["load_frames", "frame_indices", "frame_size", "num_frames"]
