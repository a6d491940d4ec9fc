"""Optimizers over one flat parameter buffer.

All of a model's parameters live in one flat 1-D array (float32 or float64) and all gradients in
another of the same size. An optimizer updates the parameter buffer in place with a few vectorized
numpy ops per step, and keeps its state (momentum, Adam moments) as flat buffers of the same dtype.
Weight decay applies only where ``decay_mask`` is 1.0 (weights), not where it is 0.0 (biases).

The update rules follow PyTorch's ``torch.optim.SGD``, ``Adam`` and ``AdamW`` so results can be
compared with it (``wd`` below is ``weight_decay * decay_mask``, elementwise)::

    sgd    g = grad + wd * p                      (coupled L2: the original's alpha)
           v = momentum * v + g                   (no dampening; v starts at 0, so v_1 = g)
           u = g + momentum * v if nesterov else v     (u = g when momentum is 0)
           p = p - lr * u

    adam   g = grad + wd * p
           m = b1 * m + (1 - b1) * g
           v = b2 * v + (1 - b2) * g^2
           p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    adamw  p = p * (1 - lr * wd)                  (decoupled decay, before the Adam step)
           then adam on the raw gradient (no L2 term)

``step`` never modifies ``grads``. It works in preallocated scratch buffers, so the hot path
allocates no array the size of the model.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Mapping, Union

import numpy as np

from ..errors import TrainingError
from ..spec import AdamSpec, SGDSpec

State = dict[str, Union[np.ndarray, int]]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Optimizer:
    """Base class: owns the flat state buffers of one model's parameters.

    Subclasses list their buffers in ``buffer_names`` (each a flat array of ``size`` values of
    ``dtype``) and implement ``_update``.
    """

    buffer_names: tuple[str, ...] = ()

    def __init__(self, size: int, dtype, decay_mask: np.ndarray, weight_decay: float) -> None:
        self.size = int(size)
        self.dtype = np.dtype(dtype)
        if self.dtype not in FLOAT_DTYPES:
            raise TrainingError(
                f"optimizers work on float32 or float64 parameters; received dtype {self.dtype}",
                hint="store the parameters as float32 or float64",
            )
        if self.size < 0:
            raise TrainingError(f"parameter count must be >= 0; received {size}")
        mask = np.asarray(decay_mask)
        if mask.shape != (self.size,):
            raise TrainingError(
                f"decay_mask must be a flat array of {self.size} values (one per parameter); "
                f"received shape {mask.shape}"
            )
        if not np.all((mask == 0) | (mask == 1)):
            raise TrainingError(
                "decay_mask must hold only 0.0 (no decay) and 1.0 (decay)",
                hint="build it from the parameters' decay flags",
            )
        self.weight_decay = float(weight_decay)
        # weight_decay * mask, precomputed once; None when there is no decay at all.
        self._decay: np.ndarray | None = None
        if self.weight_decay != 0.0 and np.any(mask):
            self._decay = mask.astype(self.dtype) * self.dtype.type(self.weight_decay)
        self.steps = 0
        for name in self.buffer_names:
            setattr(self, "_" + name, np.zeros(self.size, self.dtype))

    # -- the hot path -----------------------------------------------------------------------

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        """Update ``params`` in place from ``grads`` with learning rate ``lr``.

        ``grads`` is read, never written.
        """
        self._check(params, "params")
        self._check(grads, "grads")
        self.steps += 1
        self._update(params, grads, float(lr))

    def _update(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        raise NotImplementedError

    def _check(self, array: np.ndarray, what: str) -> None:
        if array.shape != (self.size,) or array.dtype != self.dtype:
            raise TrainingError(
                f"optimizer step expects {what} as a flat {self.dtype} array of {self.size} "
                f"values; received {array.dtype} with shape {array.shape}"
            )

    # -- resuming ---------------------------------------------------------------------------

    def state(self) -> State:
        """Everything needed to resume bit-identically: the step count and copies of the buffers."""
        state: State = {"step": self.steps}
        for name, buffer in self.buffers().items():
            state[name] = buffer.copy()
        return state

    def buffers(self) -> dict[str, np.ndarray]:
        """The state buffers themselves, by name (no copy: a checkpoint writes them as they are).
        They change at the next ``step``; never write to them."""
        return {name: getattr(self, "_" + name) for name in self.buffer_names}

    def load_state(self, state: Mapping[str, object]) -> None:
        """Restore a ``state()``; checks names, sizes and dtypes before changing anything."""
        kind = type(self).__name__
        expected = {"step", *self.buffer_names}
        received = set(state)
        if received != expected:
            missing = sorted(expected - received)
            extra = sorted(received - expected)
            parts = []
            if missing:
                parts.append("missing " + ", ".join(repr(n) for n in missing))
            if extra:
                parts.append("unexpected " + ", ".join(repr(n) for n in extra))
            raise TrainingError(
                f"optimizer state does not fit a {kind} optimizer: " + "; ".join(parts),
                hint=f"a {kind} state holds " + ", ".join(repr(n) for n in sorted(expected))
                + "; was it saved with another optimizer?",
            )
        steps = state["step"]
        if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, Integral) or steps < 0:
            raise TrainingError(
                f"optimizer state 'step' must be a count >= 0; received {steps!r}"
            )
        arrays = {}
        for name in self.buffer_names:
            value = state[name]
            if not isinstance(value, np.ndarray):
                raise TrainingError(
                    f"optimizer state {name!r} must be an array; received {type(value).__name__}"
                )
            if value.shape != (self.size,):
                raise TrainingError(
                    f"optimizer state {name!r} has shape {value.shape} but the model has "
                    f"{self.size} parameters",
                    hint="the state was saved for a different model",
                )
            if value.dtype != self.dtype:
                raise TrainingError(
                    f"optimizer state {name!r} is {value.dtype} but the parameters are {self.dtype}",
                    hint="resume with the dtype the state was saved with",
                )
            arrays[name] = value
        self.steps = int(steps)
        for name, value in arrays.items():
            np.copyto(getattr(self, "_" + name), value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, dtype={self.dtype}, step={self.steps})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and coupled L2 decay."""

    def __init__(
        self,
        size: int,
        dtype,
        decay_mask: np.ndarray,
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise TrainingError("nesterov needs momentum > 0")
        self.buffer_names = ("momentum",) if self.momentum != 0.0 else ()
        super().__init__(size, dtype, decay_mask, weight_decay)
        self._g = np.empty(self.size, self.dtype)  # the decayed gradient, then lr * update
        self._t = np.empty(self.size, self.dtype) if self.nesterov else None

    def _update(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        g = grads
        if self._decay is not None:
            g = self._g
            np.multiply(self._decay, params, out=g)
            g += grads
        update = g
        if self.momentum != 0.0:
            v = self._momentum
            # NOTE: v starts at zero, so the first step gives v = g exactly, as torch's clone.
            v *= self.momentum
            v += g
            if self.nesterov:
                update = self._t
                np.multiply(v, self.momentum, out=update)
                update += g
            else:
                update = v
        step = self._g
        np.multiply(update, lr, out=step)
        params -= step


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with coupled L2 decay, or AdamW's decoupled decay."""

    buffer_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        size: int,
        dtype,
        decay_mask: np.ndarray,
        *,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(size, dtype, decay_mask, weight_decay)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.eps = float(eps)
        self.decoupled = bool(decoupled)
        self._t = np.empty(self.size, self.dtype)
        coupled = self._decay is not None and not self.decoupled
        self._g = np.empty(self.size, self.dtype) if coupled else None

    def _update(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        t = self._t
        g = grads
        if self._decay is not None:
            if self.decoupled:
                # p = p * (1 - lr * wd): 1 exactly where the mask is 0.
                np.multiply(self._decay, -lr, out=t)
                t += 1.0
                params *= t
            else:
                g = self._g
                np.multiply(self._decay, params, out=g)
                g += grads
        m = self._exp_avg
        v = self._exp_avg_sq
        m *= self.beta1
        np.multiply(g, 1.0 - self.beta1, out=t)
        m += t
        v *= self.beta2
        np.multiply(g, g, out=t)
        t *= 1.0 - self.beta2
        v += t
        # The bias corrections folded into scalars, as torch does; torch's
        # lr/bias1 * m / (sqrt(v)/sqrt(bias2) + eps) is computed, multiplied through by
        # sqrt(bias2), as lr/bias1*sqrt(bias2) * m / (sqrt(v) + eps*sqrt(bias2)): one pass fewer.
        bias1 = 1.0 - self.beta1**self.steps
        root2 = math.sqrt(1.0 - self.beta2**self.steps)
        np.sqrt(v, out=t)
        t += self.eps * root2
        np.divide(m, t, out=t)
        t *= lr / bias1 * root2
        params -= t


def make_optimizer(
    spec: SGDSpec | AdamSpec, size: int, dtype, decay_mask: np.ndarray
) -> Optimizer:
    """The optimizer a spec names, for ``size`` flat parameters of ``dtype``.

    ``decay_mask`` is a flat array of ``size`` values: 1.0 where weight decay applies, 0.0 where
    it does not (biases). The learning rate is not part of the optimizer: ``step`` takes it, so a
    schedule can change it every step.
    """
    if isinstance(spec, SGDSpec):
        return SGD(
            size,
            dtype,
            decay_mask,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
        )
    if isinstance(spec, AdamSpec):
        return Adam(
            size,
            dtype,
            decay_mask,
            beta1=spec.beta1,
            beta2=spec.beta2,
            eps=spec.eps,
            weight_decay=spec.weight_decay,
            decoupled=spec.type == "adamw",
        )
    raise TrainingError(
        f"unknown optimizer spec {type(spec).__name__}",
        hint="use type: sgd, adam or adamw",
    )
