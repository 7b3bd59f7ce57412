"""Server-Timing: how long the server spent on a request, in a header browsers' developer tools show.

First in the middleware list, so the figure covers every middleware, the view and the template; it excludes
the time a request waited for a free worker. bench/review_latency.py reads it to report server time apart
from the latency its clients see.
"""

from __future__ import annotations

import time


class ServerTimingMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response
