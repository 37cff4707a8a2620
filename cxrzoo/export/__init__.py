"""Export: trained models to OpenVINO IR (FP32, BF16 or INT8)."""
from cxrzoo.export.graph import WeightMismatchError, build_openvino_model, check_weights
from cxrzoo.export.ir import export_openvino
from cxrzoo.export.precision import PRECISIONS, PrecisionRefusedError, cpu_supports_bf16

__all__ = ["PRECISIONS", "PrecisionRefusedError", "WeightMismatchError", "build_openvino_model", "check_weights",
           "cpu_supports_bf16", "export_openvino"]
