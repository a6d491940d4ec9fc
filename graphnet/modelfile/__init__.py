"""Model files (``.gnm``): the spec, the weights and everything learned with them, as data only.

docs/model-format.md specifies the format. In short (format 2)::

    prelude   magic b"\\x89GNM\\r\\n\\x1a\\n", format 2, header length, header SHA-256   (56 bytes)
    header    one msgpack map: graphnet version, canonical spec, ops (version, distribution),
              dtype, the tensor directory (params / state / optimizer: name, dtype, shape,
              offset, nbytes, sha256), preprocess, classes, data, log, metrics, resume
    tensors   raw little-endian bytes, each at a multiple of 64, in directory order

The modules, top-down: ``layout`` (bytes: prelude, alignment, streaming with hashing), ``plain``
(msgpack decoding with limits; what a header may hold), ``header`` (the pydantic models),
``sniff`` (naming files that are not model files), ``format1`` (reading and migrating graphnet
0.1's files), ``read`` (headers, tensors, models), ``write`` (deterministic, atomic writes),
``rng`` (random generator states as header data).

The API the commands build on::

    header = read_header("m.gnm")          # validated Header, tensors not read (fast at any size)
    header_dict("m.gnm")                   # the same as plain JSON-compatible data
    loaded = load_model("m.gnm")           # .model .log .metrics .preprocess .classes .data
                                           # .resume .state .optimizer .header
    contents = read_contents("m.gnm")      # header + {group: {name: array}}, no graph built
    save_model("m.gnm", model, log, metrics, preprocess=..., classes=..., data=...,
               resume=..., optimizer={...}, state={...})
    write_model_file("m.gnm", header_fields, {"params": {...}, ...})   # e.g. convert from JSON

Loading never executes code, never unpickles, never imports a module a file names; every
malformed file is one ModelFileError that starts with the file's name.
"""

from __future__ import annotations

from .header import HEADER_KEYS, Classes, Header, Labels, Log, OpRecord, Preprocess, TensorEntry, Tensors
from .layout import ALIGN, DTYPES, FORMAT, GROUPS, MAGIC, MAX_FILE_BYTES, MAX_HEADER_BYTES
from .read import MAX_NODES, Contents, ModelFile, check_model, header_dict, load_model, read_contents, read_header
from .rng import BIT_GENERATORS, generator_from_plain, rng_state_from_plain, rng_state_to_plain
from .sniff import is_model_file
from .write import atomic_file, check_output, model_fields, op_records, save_model, write_atomic, write_model_file

__all__ = [
    "ALIGN",
    "BIT_GENERATORS",
    "DTYPES",
    "FORMAT",
    "GROUPS",
    "HEADER_KEYS",
    "MAGIC",
    "MAX_FILE_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_NODES",
    "Classes",
    "Contents",
    "Header",
    "Labels",
    "Log",
    "ModelFile",
    "OpRecord",
    "Preprocess",
    "TensorEntry",
    "Tensors",
    "atomic_file",
    "check_model",
    "check_output",
    "generator_from_plain",
    "header_dict",
    "is_model_file",
    "load_model",
    "model_fields",
    "op_records",
    "read_contents",
    "read_header",
    "rng_state_from_plain",
    "rng_state_to_plain",
    "save_model",
    "write_atomic",
    "write_model_file",
]
