"""Random generator states as header data, for resuming a run bit for bit.

numpy's ``bit_generator.state`` is a dict whose integers can exceed 64 bits (PCG64's 128-bit
``state`` and ``inc``) and that may hold arrays (MT19937's key), neither of which a header can
hold (msgpack integers are 64-bit; arrays belong in tensor groups). ``rng_state_to_plain`` writes
such a state as plain data: every integer outside the signed 64-bit range becomes a lowercase hex
string with a ``0x`` prefix, every array a list. ``rng_state_from_plain`` reverses it, for the
bit generators named in ``BIT_GENERATORS`` only (a file never names a class to instantiate), and
checks that the result is exactly what it read::

    plain = rng_state_to_plain(generator)            # {"bit_generator": "PCG64", "state": {...}, ...}
    generator = generator_from_plain(plain)          # a Generator continuing the same stream
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelFileError, short
from .plain import INT64

BIT_GENERATORS = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}
_ARRAY_DTYPES = {("MT19937", "key"): np.uint32}  # every other array in these states is uint64


def rng_state_to_plain(rng: np.random.Generator | np.random.BitGenerator | dict) -> dict[str, Any]:
    """A generator's (or a bit generator's, or its ``.state`` dict's) state as plain data."""
    if isinstance(rng, np.random.Generator):
        rng = rng.bit_generator
    state = rng.state if isinstance(rng, np.random.BitGenerator) else rng
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise ModelFileError(f"cannot save the random state of bit generator {short(name)}",
                             hint="supported: " + ", ".join(BIT_GENERATORS))
    return _encode(state)


def rng_state_from_plain(plain: Any, where: str = "resume") -> dict[str, Any]:
    """The ``bit_generator.state`` dict that ``plain`` describes, checked by setting it on a
    fresh bit generator of the named (allowed) kind and reading it back."""
    name = plain.get("bit_generator") if isinstance(plain, dict) else None
    if name not in BIT_GENERATORS:
        raise ModelFileError(
            f"{where}: bit generator {short(name)} is not one graphnet restores",
            hint="supported: " + ", ".join(BIT_GENERATORS))
    try:
        state = _decode(plain, name, "")
        bit_generator = BIT_GENERATORS[name]()
        bit_generator.state = state
        restored = bit_generator.state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise ModelFileError(f"{where}: not a valid {name} state ({short(str(error), 120)})") from None
    if _encode(restored) != plain:
        raise ModelFileError(f"{where}: not a valid {name} state (it does not read back the same)")
    return restored


def generator_from_plain(plain: Any, where: str = "resume") -> np.random.Generator:
    """A Generator continuing exactly where the saved one stopped."""
    state = rng_state_from_plain(plain, where)
    bit_generator = BIT_GENERATORS[state["bit_generator"]]()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_encode(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = int(value)
        return value if INT64[0] <= value <= INT64[1] else hex(value)
    return value


def _decode(value: Any, name: str, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _decode(v, name, k) if k != "bit_generator" else v for k, v in value.items()}
    if isinstance(value, list):
        items = [_decode(item, name, key) for item in value]
        return np.array(items, dtype=_ARRAY_DTYPES.get((name, key), np.uint64))
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    return value
