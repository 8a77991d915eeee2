"""Progress of long work that is not a Trainer loop (evaluation, probes, GRI scoring).

The library does not log: it calls the caller's `on_step(what, done, total)` as each step
begins (`done` steps finished of `total`), and the caller shows it: a log line, a progress
artifact, a bar. The step names never carry record text."""

from __future__ import annotations

from collections.abc import Callable

StepCallback = Callable[[str, int, int], None]


class Steps:
    """Counts the steps of one piece of work and announces each as it begins."""

    def __init__(self, total: int, on_step: StepCallback | None) -> None:
        self.total, self.done, self.on_step = total, 0, on_step

    def begin(self, what: str) -> None:
        if self.on_step is not None:
            self.on_step(what, self.done, self.total)
        self.done += 1
