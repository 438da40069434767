"""A stop control for tests of interrupted training runs."""

from corpusqa.reader.training import StopControl


class StopAfter(StopControl):
    """Stops the run after a given optimizer step, as a signal or a spent time budget would."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def reached(self, global_step: int) -> bool:
        if global_step >= self.step:
            self.request("test")
        return super().reached(global_step)
