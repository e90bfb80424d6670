"""Hand-built ONNX graphs with an anomalib 2.x export's input and outputs, for tests whose
oracle is the graph's own arithmetic."""

from __future__ import annotations

from pathlib import Path


def mean_map_export(path: Path) -> Path:
    """Writes a graph ``input (N, 3, H, W) -> anomaly_map (N, 1, H, W)`` = the channel mean,
    ``pred_score (N,)`` = the map's maximum, with anomalib's names and dynamic axes."""
    import onnx
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT
    nodes = [helper.make_node("ReduceMean", ["input"], ["anomaly_map"], axes=[1], keepdims=1),
             helper.make_node("ReduceMax", ["anomaly_map"], ["pred_score"], axes=[1, 2, 3],
                              keepdims=0)]
    g = helper.make_graph(nodes, "mean", [helper.make_tensor_value_info(
        "input", f, ["batch_size", 3, "height", "width"])], [
        helper.make_tensor_value_info("pred_score", f, ["batch_size"]),
        helper.make_tensor_value_info("anomaly_map", f, ["batch_size", 1, "height", "width"])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path
