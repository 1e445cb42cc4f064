"""How a failure reaches a person: the core's message as it is, anything unexpected as one plain sentence."""
from __future__ import annotations

import logging
from typing import Callable, TypeVar

import gradio as gr

from stylishi import StyliShiError

log = logging.getLogger("stylishi.app")
T = TypeVar("T")
SORRY = "Something went wrong on our side. Please try again in a moment."


def UserError(message: str) -> gr.Error:  # noqa: N802 - reads as the exception it returns
    """A message for the person on the page (or the API caller). Not printed with a traceback in the server log:
    it is no fault of ours, and the message may quote what they sent (an unknown id or filter value)."""
    return gr.Error(message, print_exception=False)


def run(search: Callable[[], T]) -> T:
    """Call the core; its errors are written for people and go to the page (or API caller) as they are."""
    try:
        return search()
    except StyliShiError as exc:
        raise UserError(str(exc)) from None
    except gr.Error:
        raise
    except Exception:
        log.exception("search failed")  # the traceback, never the user's picture or text
        raise UserError(SORRY) from None
