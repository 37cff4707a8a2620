"""Old import path of the exported model directory's file names: :mod:`cxrzoo.models.irdir` owns that layout."""
from cxrzoo.models.irdir import CARD, XML

__all__ = ["CARD", "XML"]
