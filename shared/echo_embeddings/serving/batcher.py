"""Dynamic batching: texts from concurrent requests share the encoder's length-sorted forward passes.

One worker thread owns the model. Requests put their texts in a bounded queue (counted in texts) and wait; the
worker takes the oldest text's form (query or document, and instruction), gathers up to ``batch_size`` queued
texts of that form, oldest first, and encodes them together; each text's token count comes from that same
tokenization. Clients whose texts shared a pass get their answers together and send their next texts moments
apart, so before a pass the worker waits, briefly, until as many texts are queued as the last pass held: otherwise
the first few to return would run alone in a small, slow pass. A request's texts may be split across passes; its
vectors come back in its own order. A full queue refuses new work at once ([QueueFull][]) instead of growing
without bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import EchoEmbeddingsError

if TYPE_CHECKING:
    from ..encoder import EchoEncoder

Form = tuple[bool, str | None]
"""How a text is embedded: (query form?, instruction)."""


class QueueFull(EchoEmbeddingsError):
    """The batcher's queue cannot take the request's texts now; retry later."""


class Embedded(NamedTuple):
    """What [DynamicBatcher.embed][] answers: row i of each array for text i."""

    vectors: np.ndarray
    tokens: np.ndarray
    """Tokens of each text as given ([EncodeStats.text_tokens][echo_embeddings.EncodeStats.text_tokens])."""
    truncated: np.ndarray
    """Whether each text was cut to the encoder's ``max_text_tokens``."""


@dataclass(eq=False)
class _Request:
    texts: list[str]
    form: Form
    out: Embedded
    done: Callable[[Embedded | None, BaseException | None], None]
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = len(self.texts)


class DynamicBatcher:
    """Runs ``encoder.encode`` on a worker thread over texts gathered from concurrent [embed][] calls.

    ``capacity``: texts queued at most (waiting, not yet running). ``batch_size``: texts per encode call (the
    encoder splits them further by its own token budget). Before a pass the worker waits for the queue to hold as
    many texts as the last pass did, for at most the longer of ``wait_s`` and a tenth of the last pass's time (so
    with a small ``wait_s`` waiting adds at most about 10% to a pass). A lone client never waits: its last pass
    held one text. ``on_pass(texts, seconds)`` is told of every pass that succeeded.
    """

    def __init__(
        self,
        encoder: EchoEncoder,
        *,
        capacity: int,
        batch_size: int,
        wait_s: float = 0.0,
        on_pass: Callable[[int, float], None] | None = None,
    ) -> None:
        self.encoder, self.capacity, self.batch_size, self.wait_s = encoder, capacity, batch_size, wait_s
        self._on_pass = on_pass
        self._last_size, self._last_seconds = 1, 0.0  # the last pass: texts, and seconds it took
        self._pending: deque[tuple[_Request, int]] = deque()
        self._condition = threading.Condition()
        self._running = True
        self._worker = threading.Thread(target=self._run, name="echo-batcher", daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        """Texts waiting in the queue."""
        return len(self._pending)

    async def embed(self, texts: list[str], *, query: bool = False, instruction: str | None = None) -> Embedded:
        """The vectors of ``texts`` and their token counts, computed with whatever else is queued."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Embedded] = loop.create_future()

        def done(out: Embedded | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, out, error)

        n = len(texts)
        out = Embedded(np.empty((n, self.encoder.dim), np.float32), np.zeros(n, np.int64), np.zeros(n, bool))
        request = _Request(texts, (query, instruction), out, done)
        if not texts:
            return out
        with self._condition:
            if not self._running:
                raise QueueFull("the server is shutting down")
            if len(self._pending) + len(texts) > self.capacity:
                raise QueueFull(f"the queue holds {len(self._pending)} of {self.capacity} texts; retry shortly")
            self._pending.extend((request, i) for i in range(len(texts)))
            self._condition.notify()
        return await future

    def close(self) -> None:
        """Finish every queued text, then stop the worker."""
        with self._condition:
            self._running = False
            self._condition.notify()
        self._worker.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._pending and self._running:
                    self._condition.wait()
                if not self._pending:
                    return
                expected = min(self.batch_size, self._last_size)
                deadline = time.monotonic() + max(self.wait_s, self._last_seconds / 10)
                while len(self._pending) < expected and self._running:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._condition.wait(remaining)  # embed() notifies as texts arrive
            self._encode(self._take())

    def _take(self) -> list[tuple[_Request, int]]:
        """Up to ``batch_size`` queued texts of the oldest text's form, oldest first; the rest stay queued."""
        with self._condition:
            form = self._pending[0][0].form
            taken: list[tuple[_Request, int]] = []
            kept: deque[tuple[_Request, int]] = deque()
            while self._pending:
                item = self._pending.popleft()
                (taken if item[0].form == form and len(taken) < self.batch_size else kept).append(item)
            self._pending = kept
            return taken

    def _encode(self, items: list[tuple[_Request, int]]) -> None:
        query, instruction = items[0][0].form
        start = time.perf_counter()
        try:
            vectors, stats = self.encoder.encode(
                [request.texts[i] for request, i in items], query=query, instruction=instruction, return_stats=True
            )
            self._last_size, self._last_seconds = len(items), time.perf_counter() - start
        except Exception as error:  # every waiting request learns of it; the worker goes on
            for request in {id(r): r for r, _ in items}.values():
                request.remaining = 0
                request.done(None, error)
            return
        if self._on_pass is not None:
            self._on_pass(len(items), self._last_seconds)
        for j, (request, i) in enumerate(items):
            request.out.vectors[i] = vectors[j]
            request.out.tokens[i] = stats.text_tokens[j]
            request.out.truncated[i] = stats.truncated[j]
            request.remaining -= 1
            if request.remaining == 0:
                request.done(request.out, None)


def _settle(future: asyncio.Future, out: Embedded | None, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(out)
