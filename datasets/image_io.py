"""Reading image files with errors that name the file (a corrupt file stops a run with one line, not a traceback)."""
from __future__ import annotations

import os

from PIL import Image


class UnreadableImageError(OSError):
    """An image file exists but cannot be decoded (truncated, corrupt or not an image)."""


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """The image at ``path`` as RGB; :class:`UnreadableImageError` naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as handle:
            return handle.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"cannot read image '{path}' ({type(error).__name__}: {error}); replace the file "
                                   f"or remove it from the dataset") from error
