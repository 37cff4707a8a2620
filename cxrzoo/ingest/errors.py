"""The ingest stage's exception: one type for every file that cannot become an image row."""

from cxrzoo.errors import InputError


class ImageDecodeError(InputError):
    """The bytes are not a decodable image (the message says why)."""
