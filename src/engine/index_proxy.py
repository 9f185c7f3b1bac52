"""berth's recording package-index proxy (Python standard library only, run in the job's own image).

  index_proxy.py serve record|replay STORE   listen on 127.0.0.1:PORT, then go to the background
  index_proxy.py report STORE                what STORE holds, one line

The tools' index variables point at http://127.0.0.1:PORT/i/<n>/, the n-th of the upstream indexes
in BERTH_INDEX_UPSTREAMS (space-separated). Pages (PEP 503 HTML, PEP 691 JSON, PyPI's JSON API)
are fetched from the upstream and their file links rewritten to /f/<base64 of the file's
directory>/<file name>, so files come through here too. `record` fetches pages again each time and
files once, and stores both in STORE; `replay` (no network) answers from STORE alone, with no
freshness limit, and 404 for what was never recorded.
"""
import base64
import hashlib
import html
import http.server
import json
import os
import re
import socketserver
import sys
import urllib.error
import urllib.parse
import urllib.request

PORT = int(os.environ.get("BERTH_INDEX_PORT", "47831"))
HERE = f"http://127.0.0.1:{PORT}"


def split_auth(url):
    """(url without user:password@, Authorization header or None)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    header = "Basic " + base64.b64encode(token.encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), header


UPSTREAMS = []
AUTH = {}  # host -> Authorization, for the files of an index that needs it
for raw in os.environ.get("BERTH_INDEX_UPSTREAMS", "").split():
    bare, header = split_auth(raw)
    UPSTREAMS.append(bare.rstrip("/"))
    if header:
        AUTH[urllib.parse.urlsplit(bare).netloc] = header


def b64(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def local(url):
    """Where a link of an upstream page points through this proxy."""
    url, frag = urllib.parse.urldefrag(url)
    url, _ = split_auth(url)
    frag = f"#{frag}" if frag else ""
    for n, base in enumerate(UPSTREAMS):
        if url.startswith(base + "/"):
            return f"{HERE}/i/{n}/{url[len(base) + 1:]}{frag}"
    if not url.startswith(("http://", "https://")):
        return url + frag
    directory, _, name = url.rpartition("/")
    return f"{HERE}/f/{b64(directory)}/{name}{frag}"


def rewrite(body, content_type, page_url):
    if "json" in content_type:
        data = json.loads(body)

        def walk(v):
            if isinstance(v, dict):
                for k, x in v.items():
                    if k == "url" and isinstance(x, str):
                        v[k] = local(urllib.parse.urljoin(page_url, x))
                    else:
                        walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(data)
        return json.dumps(data).encode()
    if "html" in content_type:
        text = body.decode("utf-8", "replace")

        def sub(m):
            target = local(urllib.parse.urljoin(page_url, html.unescape(m.group(2))))
            return f"{m.group(1)}{html.escape(target)}{m.group(1)[-1]}"

        return re.sub(r"""(href=["'])([^"']*)["']""", sub, text).encode()
    return body


class Store:
    def __init__(self, root, writable):
        self.root = root
        # A replay writes nothing: an empty volume stays empty (`berth cache import` fills it).
        if writable:
            os.makedirs(os.path.join(root, "pages"), exist_ok=True)
            os.makedirs(os.path.join(root, "files"), exist_ok=True)

    def path(self, kind, key):
        return os.path.join(self.root, kind, hashlib.sha256(key.encode()).hexdigest())

    def get(self, kind, key):
        p = self.path(kind, key)
        try:
            with open(p + ".json") as f:
                meta = json.load(f)
            with open(p, "rb") as f:
                return meta, f.read()
        except OSError:
            return None

    def put(self, kind, key, meta, body):
        p = self.path(kind, key)
        for target, data in ((p, body), (p + ".json", json.dumps(meta).encode())):
            tmp = f"{target}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (MODE, fmt % args))

    def answer(self, status, content_type, body, cacheable=False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Files never change: the tools may keep them in their own caches for good.
        self.send_header("Cache-Control", "max-age=365000000, immutable" if cacheable else "max-age=0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def fetch(self, url):
        bare, header = split_auth(url)
        req = urllib.request.Request(bare, headers={"User-Agent": "berth-index-proxy"})
        header = header or AUTH.get(urllib.parse.urlsplit(bare).netloc)
        if header:
            req.add_header("Authorization", header)
        accept = self.headers.get("Accept")
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.geturl(), r.headers.get("Content-Type", "application/octet-stream"), r.read()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        try:
            kind, _, rest = self.path.lstrip("/").partition("/")
            head, _, tail = rest.partition("/")
            if kind == "i":
                self.page(UPSTREAMS[int(head)] + "/" + tail)
            elif kind == "f":
                self.file(unb64(head) + "/" + tail)
            else:
                self.answer(404, "text/plain", b"not an index path\n")
        except (ValueError, IndexError, UnicodeDecodeError):
            self.answer(404, "text/plain", b"not an index path\n")

    def page(self, url):
        accept = self.headers.get("Accept", "")
        if MODE == "record":
            try:
                final, ctype, body = self.fetch(url)
            except urllib.error.HTTPError as e:
                return self.answer(e.code, "text/plain", f"{url}: {e.reason}\n".encode())
            except OSError as e:
                return self.answer(502, "text/plain", f"{url}: {e}\n".encode())
            meta = {"url": url, "final": final, "type": ctype}
            STORE.put("pages", url + "\n" + accept, meta, body)
            # Another tool asking with another Accept still gets an answer offline.
            STORE.put("pages", url, meta, body)
        else:
            got = STORE.get("pages", url + "\n" + accept) or STORE.get("pages", url)
            if got is None:
                return self.answer(404, "text/plain", f"{url}: not recorded by berth warm\n".encode())
            meta, body = got
            final, ctype = meta["final"], meta["type"]
        self.answer(200, ctype, rewrite(body, ctype, final))

    def file(self, url):
        got = STORE.get("files", url)
        if got is None and MODE == "record":
            try:
                _, ctype, body = self.fetch(url)
            except urllib.error.HTTPError as e:
                return self.answer(e.code, "text/plain", f"{url}: {e.reason}\n".encode())
            except OSError as e:
                return self.answer(502, "text/plain", f"{url}: {e}\n".encode())
            STORE.put("files", url, {"url": url, "type": ctype}, body)
            got = ({"type": ctype}, body)
        if got is None:
            return self.answer(404, "text/plain", f"{url}: not recorded by berth warm\n".encode())
        self.answer(200, got[0]["type"], got[1], cacheable=True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def report(root):
    counts = {"pages": 0, "files": 0}
    size = 0
    for kind in counts:
        d = os.path.join(root, kind)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if not name.endswith((".json", ".tmp")):
                counts[kind] += 1
                size += os.path.getsize(os.path.join(d, name))
    # Each page is stored twice (by Accept and without): count it once.
    print(
        f"berth warm: recorded index: {counts['pages'] // 2} pages, {counts['files']} files, "
        f"{size / 1e6:.1f} MB, from {' '.join(UPSTREAMS) or 'no index'}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["report"]:
        report(sys.argv[2])
        sys.exit(0)
    MODE, root = sys.argv[2], sys.argv[3]
    STORE = Store(root, MODE == "record")
    server = Server(("127.0.0.1", PORT), Handler)
    what = "recording" if MODE == "record" else "replaying (no network)"
    print(f"berth: {what} the package index ({' '.join(UPSTREAMS)}) at {HERE}", flush=True)
    # Listening already: the job's next command can use it once the parent has returned.
    if os.fork():
        os._exit(0)
    os.setsid()
    # In the container, not the volume: a replay leaves the recording as it was.
    log = os.open("/tmp/berth-index-proxy.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    server.serve_forever()
