"""Export: trained models to OpenVINO IR."""
from cxrzoo.export.graph import WeightMismatchError, build_openvino_model, check_weights
from cxrzoo.export.ir import export_openvino

__all__ = ["WeightMismatchError", "build_openvino_model", "check_weights", "export_openvino"]
