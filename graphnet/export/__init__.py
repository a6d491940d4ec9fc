"""Exporting a model to other formats. ``onnx``: ``export_onnx(model, "model.onnx")``.

The exporters sit at the edge of the layering (beside the CLI): they may import optional packages
(onnx), always lazily, and nothing below them imports them. Nothing is imported here, so
``import graphnet.export`` costs nothing when onnx is not installed.
"""
