"""Every use of a Gradio private name, in one place (checked against the installed Gradio by
tests/test_gradio_compat.py, which says what moved when an upgrade breaks one of them).

Written for gradio 6.31. Each function says why the public API does not do the job.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gradio as gr

GRADIO_VERSION = gr.__version__


# -- components ---------------------------------------------------------------------------------------------------
def override_preprocess(component: gr.components.Component, preprocess: Callable[[Any], Any]) -> gr.components.Component:
    """Replace how one component instance turns the client's payload into the function's argument.

    An instance attribute, not a subclass: Gradio writes a .pyi stub next to any module that subclasses a component.
    Gradio looks the method up on the instance (`block.preprocess(...)` in blocks.py).
    """
    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def override_input_schema(component: gr.components.Component, schema: dict[str, Any]) -> gr.components.Component:
    """The JSON schema the API page and MCP show for an input (gr.JSON says `{"type": {}}`, which MCP rejects)."""
    component.api_info_as_input = lambda: dict(schema)  # type: ignore[method-assign]
    return component


def api_endpoint(fn: Callable, inputs: list, outputs: list, api_name: str, **kwargs: Any) -> None:
    """A named API endpoint with typed components and no trigger on the page (gr.on with no triggers).

    gr.api would type inputs from the function's hints, but it cannot give the output a Gallery (gradio_client
    downloads its pictures) nor an Image input with our own checks.
    """
    gr.on([], fn, inputs, outputs, api_name=api_name, **kwargs)


def pad_api_inputs(demo: gr.Blocks, api_names) -> None:
    """Let a raw-HTTP call of these endpoints omit trailing optional arguments (sent as None: the default), as
    gradio_client already does, so that parameters added later (dedup, box, …) keep older programs working.

    Gradio refuses a `data` list shorter than the event's inputs in `Blocks.validate_inputs`, which `process_api`
    calls on the Blocks instance (an instance attribute overrides it), with the request's own list.
    """
    names = set(api_names)
    check = demo.validate_inputs

    def validate_inputs(block_fn, inputs):
        missing = len(block_fn.inputs) - len(inputs)
        if missing > 0 and getattr(block_fn, "api_name", None) in names and isinstance(inputs, list):
            inputs.extend([None] * missing)
        return check(block_fn, inputs)

    demo.validate_inputs = validate_inputs  # type: ignore[method-assign]


# -- requests -------------------------------------------------------------------------------------------------------
def root_url(request: gr.Request | None) -> str:
    """The app's public root URL as the client sees it (proxy headers included), "" when unknown."""
    raw = getattr(request, "request", None) if request is not None else None
    return root_url_of(raw) if raw is not None else ""


def root_url_of(raw) -> str:
    """The same for a plain Starlette request (the app's own routes, e.g. /api/v1/search): Gradio's own reading of
    the proxy headers and root path, so both APIs give the same thumbnail URLs."""
    try:
        from gradio import route_utils

        path = raw.url.path.rstrip("/")
        at = path.rfind("/gradio_api/")  # the route below the app's root: /gradio_api/queue/join, .../run/predict
        return route_utils.get_root_url(request=raw, route_path=path[at:] if at >= 0 else path,
                                        root_path=raw.scope.get("root_path") or None).rstrip("/")
    except Exception:  # an unusual proxy setup: root-relative URLs still work against the app's address
        return ""


# -- files ----------------------------------------------------------------------------------------------------------
def upload_folder() -> Path:
    """Where Gradio stores uploads (GRADIO_TEMP_DIR, read when gradio is imported)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def untrack_upload(demo: gr.Blocks, path: str) -> None:
    """Drop a file we deleted from Gradio's purge list (it would otherwise try again at every purge)."""
    demo.upload_file_set.discard(path)
    demo.upload_file_set.discard(str(Path(path).resolve()))


class _SnapshotSet(set):
    """A set whose iteration walks a copy.

    Gradio's cache purge (delete_cache) iterates its sets of temporary files in a worker thread while uploads add to
    them and the upload janitor removes from them; a plain set would end the purge task for good with "Set changed
    size during iteration". `set.copy` is one C call, atomic under the GIL.
    """

    def __iter__(self):
        return iter(set.copy(self))


def purge_safely(demo: gr.Blocks) -> None:
    """Make Gradio's temporary-file sets safe to change while its purge walks them."""
    swapped: dict[int, _SnapshotSet] = {}

    def snap(files: set) -> set:
        if isinstance(files, _SnapshotSet):
            return files
        if id(files) not in swapped:
            swapped[id(files)] = _SnapshotSet(files)
        return swapped[id(files)]

    demo.upload_file_set = snap(demo.upload_file_set)
    for block in demo.blocks.values():
        if isinstance(getattr(block, "temp_files", None), set):
            block.temp_files = snap(block.temp_files)
    demo.temp_file_sets = [snap(files) for files in demo.temp_file_sets]


# -- sessions -------------------------------------------------------------------------------------------------------
def drop_session(demo: gr.Blocks, session_hash: str) -> None:
    """Forget one API call's Gradio session (a ~90 KB copy of the page's config): programs keep no state here.
    Gradio has no public way to end a session; it keeps up to `state_session_capacity` of them."""
    holder = getattr(demo, "state_holder", None)  # set at launch
    if holder is None:
        return
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        getattr(holder, "time_last_used", {}).pop(session_hash, None)


def session_count(demo: gr.Blocks) -> int:
    holder = getattr(demo, "state_holder", None)
    return len(holder.session_data) if holder is not None else 0


def queue_max_size(demo: gr.Blocks) -> int | None:
    """How many events the queue holds before it answers "queue is full" (set by the public `demo.queue(max_size=)`,
    readable only on the private queue object)."""
    return demo._queue.max_size
