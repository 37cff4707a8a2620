"""The exported model directory's file names, shared by the exporter and the scorer (which needs nothing else)."""

CARD = "cxrzoo.json"  # the model card: labels, input contract, precision, metrics, thresholds
XML = "model.xml"  # the OpenVINO IR (with model.bin beside it)
