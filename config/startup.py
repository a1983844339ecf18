"""What a web process does once, after loading the application and before serving."""

import gc

from django.urls import get_resolver


def freeze_what_is_loaded() -> None:
    """Load the URLconf (and with it every view module), then move every object the
    process holds into the garbage collector's permanent generation (`gc.freeze`).

    Those objects live as long as the process, yet each full collection walked all of
    them: some 120,000, 50-80 ms. A 10,000-id eligibility batch allocates enough to
    set one off every second or third batch, so one batch in three took half as long
    again (docs/capacity.md, "The collector"). Frozen, they are never scanned; what
    requests allocate is collected as before. Under gunicorn's --preload it also
    spares the forked workers the copy-on-write that collections touching those
    objects would cause (the `gc.freeze` documentation).
    """
    get_resolver().url_patterns  # noqa: B018 (imports the views now, not on the first request)
    gc.collect()
    gc.freeze()
