"""The ingest stage's exception: one type for every file that cannot become an image row."""


class ImageDecodeError(ValueError):
    """The bytes are not a decodable image (the message says why)."""
