"""Convolution and pooling ops for graphnet, registered through the ``graphnet.ops`` entry points
of this package's pyproject.toml: ``conv2d``, ``max_pool2d``, ``avg_pool2d``, ``global_avg_pool``,
``batch_norm`` (with running statistics as op state).

Images are NCHW: per sample (channels, height, width). Everything is vectorised numpy: a
convolution is one im2col copy and one matrix product forward, one product per gradient
backward; the only Python loops run over the kh * kw taps of a kernel. float32 stays float32.
"""
