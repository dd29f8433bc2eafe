"""Read shared state while other threads write it, the way a ROS timer meets worker threads."""
from __future__ import annotations

import threading
from typing import Callable


def errors_reading_while_writing(write: Callable[[int, int], None], read: Callable[[], object],
                                 reads: int = 2000, writers: int = 2) -> list[Exception]:
    """Run `write(writer, i)` in a loop on `writers` threads while calling `read()` `reads`
    times; returns what `read` raised (a race shows as "mutated during iteration" and the like)."""
    stop, errors = threading.Event(), []

    def loop(w: int) -> None:
        i = 0
        while not stop.is_set():
            write(w, i)
            i += 1

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    try:
        for _ in range(reads):
            try:
                read()
            except Exception as e:  # noqa: BLE001 -- collected for the assertion
                errors.append(e)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return errors
