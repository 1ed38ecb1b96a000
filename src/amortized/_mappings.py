"""Room for more compiled programs: the process's memory mappings against the system's limit.

XLA's CPU backend loads each compiled program as several memory mappings (code, constants,
data: about a dozen per program), and JAX keeps every program that a jitted function may
call again in its caches. Linux limits the mappings of one process (``vm.max_map_count``,
65,530 by default); a process that compiles tens of thousands of programs (a long notebook
session, a service fitting many models, a test suite) reaches it, and the next compilation
then dies with a segmentation fault inside XLA instead of an error. :func:`relieve_mappings`
checks before work that compiles and, past a share of the limit, clears JAX's caches (their
programs are unloaded and compile again when next needed), with a warning that says so.
"""

from __future__ import annotations

import warnings

LIMIT_FILE = "/proc/sys/vm/max_map_count"
MAPS_FILE = "/proc/self/maps"
#: share of the limit past which the caches are cleared
CLEAR_AT = 0.5


def process_mappings() -> tuple[int, int] | None:
    """``(mappings held by this process, the system's limit)``, or ``None`` where the system
    does not say (not Linux).

    >>> held = process_mappings()
    >>> held is None or 0 < held[0] < held[1]
    True
    """
    try:
        with open(LIMIT_FILE) as fh:
            limit = int(fh.read().split()[0])
        with open(MAPS_FILE, "rb") as fh:
            held = sum(1 for _ in fh)
    except (OSError, ValueError, IndexError):
        return None
    return held, limit


def clear_if_crowded(clear_at: float) -> tuple[int, int, int | None] | None:
    """Clear JAX's caches when this process holds more than ``clear_at`` of the system's
    memory mappings: ``(held before, the limit, held after)`` when it did, else ``None``."""
    held = process_mappings()
    if held is None or held[0] <= clear_at * held[1]:
        return None
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    after = process_mappings()
    return held[0], held[1], None if after is None else after[0]


def relieve_mappings(where: str, clear_at: float = CLEAR_AT) -> bool:
    """:func:`clear_if_crowded`, with a warning naming ``where`` when it cleared; returns
    whether it did."""
    cleared = clear_if_crowded(clear_at)
    if cleared is None:
        return False
    before, limit, after = cleared
    now = "fewer" if after is None else f"{after:,}"
    warnings.warn(
        f"{where}: this process held {before:,} memory mappings of the system's limit of "
        f"{limit:,} (vm.max_map_count), most of them JAX's compiled programs; past the "
        f"limit the next compilation crashes. JAX's caches were cleared ({now} mappings "
        f"now): what runs next compiles again.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True
