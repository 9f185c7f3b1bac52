"""A PEP 503 "simple" index served from /www, with PyPI's caching headers: files never change
(cached for good), index pages for ten minutes (INDEX_MAX_AGE seconds if set, for tests of what
happens once they are stale). Each request is logged on stderr."""
import functools
import http.server
import os

INDEX_MAX_AGE = int(os.environ.get("INDEX_MAX_AGE", "600"))


class Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        if self.path.endswith(".whl"):
            self.send_header("Cache-Control", "max-age=365000000, immutable, public")
        else:
            self.send_header("Cache-Control", f"max-age={INDEX_MAX_AGE}, public")
        super().end_headers()


server = http.server.ThreadingHTTPServer(("", 80), functools.partial(Handler, directory="/www"))
server.serve_forever()
