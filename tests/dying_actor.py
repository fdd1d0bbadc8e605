"""A Ray chunk actor that dies once in the middle of a chunk: it ends its
own process before dreaming its third frame, as a machine that goes away
would. Its class travels to the workers by value (see test_ray)."""
import itertools
import os

from dream_core.batch.on_ray import ChunkDreamer


class DiesOnce(ChunkDreamer):
    marker = ""  # a file: the first actor to reach the third frame creates it and dies

    def __init__(self, *args) -> None:
        super().__init__(*args)
        dream_next, count = self.backend.dream_next, itertools.count()

        def dying(sequence, picture, progress=None):
            if next(count) == 2:
                try:
                    os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
                    os._exit(1)
                except FileExistsError:
                    pass  # died once already
            return dream_next(sequence, picture, progress)

        self.backend.dream_next = dying
